"""What the targets of a COCO file lose: the ``centertargets audit`` command's work and table."""

from __future__ import annotations

import sys
from typing import Any

from .tasks import unit_of


def audit(coco, cfg, train: bool = False, image_root: str | None = None
          ) -> tuple[dict[str, Any], list[tuple[int, int, int]]]:
    """Encode every image of ``coco`` with ``cfg``: summed report counts, and the images that
    lost objects as ``(lost, image_id, of which beyond max_objs)``.

    With ``image_root`` the images are read too: ``truncated_images`` counts files that look
    cut short and ``unreadable_images`` files that are missing or do not decode (the audit
    goes on without them); ``truncated_ids`` / ``unreadable_ids`` hold their first ids.
    """
    import warnings

    from tqdm import tqdm

    from .augment import AugmentConfig
    from .images import UndecodableImageError

    unit = unit_of(cfg)
    ds = unit.dataset_class()(coco, cfg, augment=AugmentConfig(train=train), with_report=True,
                              image_root=image_root)
    totals: dict[str, Any] = {}
    worst: list[tuple[int, int, int]] = []
    unreadable: list[int] = []
    with warnings.catch_warnings():         # counted and listed below instead
        warnings.filterwarnings("ignore", message=".*looks cut short", category=RuntimeWarning)
        for i in tqdm(range(len(ds)), desc="images", unit="img", disable=None,
                      file=sys.stderr):
            try:
                rep = ds.item(i, ds.params(i))["report"]
            except (FileNotFoundError, UndecodableImageError):
                unreadable.append(ds.annotations(i).image_id)
                continue
            for k, v in rep.items():
                totals[k] = totals.get(k, 0) + v
            lost = rep["dropped_max_objs"] + rep["degenerate"] + rep["center_collisions"]
            if lost:
                worst.append((lost, ds.annotations(i).image_id, rep["dropped_max_objs"]))
    if image_root is not None:
        totals["truncated_images"] = len(ds.truncated_images)
        totals["truncated_ids"] = sorted(ds.truncated_images)[:10]
        totals["unreadable_images"] = len(unreadable)
        totals["unreadable_ids"] = unreadable[:10]
    totals.update(box_format_check(coco))
    totals.update(unit.dataset_audit(ds))
    worst.sort(reverse=True)
    return totals, worst


def box_format_check(coco) -> dict[str, Any]:
    """Whether the file's ``bbox`` values look like ``[x1, y1, x2, y2]`` stored where COCO has
    ``[x, y, w, h]`` (the usual cause of a training stuck at ``hm_loss`` 9.2085):
    ``boxes_past_image`` counts boxes whose ``x + w`` or ``y + h`` passes the image by more
    than a pixel, and ``xyxy_suspect`` is True when most boxes do while nearly every one has
    ``w >= x`` and ``h >= y`` (as corners would)."""
    past = corner_like = n = 0
    for ann in coco:
        b = ann.boxes_xywh
        if not len(b) or not (ann.width and ann.height):
            continue
        n += len(b)
        past += int(((b[:, 0] + b[:, 2] > ann.width + 1) | (b[:, 1] + b[:, 3] > ann.height + 1))
                    .sum())
        corner_like += int(((b[:, 2] >= b[:, 0]) & (b[:, 3] >= b[:, 1])).sum())
    return {"boxes_checked": n, "boxes_past_image": past,
            "xyxy_suspect": bool(n and past > 0.3 * n and corner_like > 0.95 * n)}


def print_audit(totals: dict[str, Any], worst: list[tuple[int, int, int]], cfg, n_images: int,
                train: bool, top: int = 5, log=print) -> None:
    """The audit table of :func:`audit`."""
    n_obj = max(totals.get("num_objects", 0), 1)
    n_kp = max(totals.get("keypoints_labelled", 0), 1)
    size = cfg.output_size
    log(f"{cfg.task} audit of {n_images} images at {size[0]}x{size[1]}, max_objs={cfg.max_objs}"
        f"{' (training augmentation)' if train else ''}:")
    rows = [("objects", totals.get("num_objects", 0), ""),
            ("  encoded", totals.get("encoded", 0), ""),
            ("  dropped beyond max_objs", totals.get("dropped_max_objs", 0), "objects"),
            ("  degenerate after clipping", totals.get("degenerate", 0), "objects"),
            ("  centre collisions", totals.get("center_collisions", 0), "objects")]
    rows += unit_of(cfg).audit_rows(totals)
    for name, v, of in rows:
        pct = f"{100.0 * v / (n_kp if of == 'keypoints' else n_obj):6.2f}%" if of else ""
        v = f"{v:g}" if isinstance(v, float) else v
        log(f"  {name:<30} {v:>9} {pct}")
    for key, what in (("truncated", "image files cut short (decoded with grey rows)"),
                      ("unreadable", "image files missing or not decodable (skipped)")):
        if f"{key}_images" in totals:
            n, ids = totals[f"{key}_images"], totals[f"{key}_ids"]
            listed = f" (image ids {', '.join(map(str, ids))}{', ...' if n > len(ids) else ''})"
            log(f"  {what}: {n}{listed if ids else ''}")
    if totals.get("boxes_past_image"):
        log(f"  boxes reaching past their image (x + w > width or y + h > height): "
            f"{totals['boxes_past_image']} of {totals['boxes_checked']}")
    if totals.get("xyxy_suspect"):
        log("  WARNING: most boxes reach past their image and have w >= x, h >= y: the file's "
            "'bbox' looks like [x1, y1, x2, y2], where COCO has [x, y, w, h] (convert with "
            "w = x2 - x1, h = y2 - y1); such targets leave hm_loss stuck near 9.2085")
    if worst:
        log("  images losing the most objects (image_id: lost, of which beyond max_objs):")
        for lost, iid, dropped in worst[:top]:
            log(f"    {iid}: {lost}, {dropped}")
