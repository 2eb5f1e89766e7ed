"""Detections as a COCO results list, and COCO's AP the way CenterNet reports it.

:func:`coco_results` turns decoded detections, mapped back to image pixels
(:func:`centertargets.decode.detections_to_image`), into the results format
of the COCO evaluation server (upstream's ``convert_eval_format``): per
detection ``image_id``, ``category_id`` (the file's id of the class),
``bbox`` ``[x, y, w, h]``, ``score`` and, for pose, ``keypoints`` ``[x, y, 1]``
per joint.  :func:`evaluate` runs pycocotools' ``COCOeval`` on them, for boxes
and keypoints (OKS), and returns the 12 standard numbers of each.
pycocotools is an optional extra: ``pip install 'centertargets[eval]'``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["coco_results", "evaluate", "STAT_NAMES"]

#: COCOeval's ``stats`` in order (bbox and keypoints share the first names; keypoints has 10).
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm",
              "ARl")
_KP_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def coco_results(dets: Any, image_id: int, category_ids: Sequence[int],
                 score_threshold: float = 0.0) -> list[dict[str, Any]]:
    """One image's detections (image pixels, ``(K, 6)`` ctdet or ``(K, 6 + 2J)`` pose rows
    ``x1, y1, x2, y2, score, [joints,] class``) as COCO result dicts.

    ``category_ids``: the file's category id of each class (``CocoDataset.category_ids``);
    rows scoring below ``score_threshold`` are left out (COCOeval keeps the 100 best per
    image and category itself).
    """
    d = np.asarray(dets.detach().cpu().numpy() if hasattr(dets, "detach") else dets,
                   np.float64)
    if d.ndim != 2 or d.shape[1] < 6 or (d.shape[1] - 6) % 2:
        raise ValueError(f"dets has shape {d.shape}: expected (K, 6 + 2J) rows x1, y1, x2, y2, "
                         "score, [joints,] class")
    J = (d.shape[1] - 6) // 2
    out = []
    for row in d:
        score, cls = float(row[4]), int(row[-1])
        if score < score_threshold:
            continue
        if not 0 <= cls < len(category_ids):
            raise ValueError(f"a detection of class {cls}: expected a class in "
                             f"[0, {len(category_ids)}) (category_ids has {len(category_ids)})")
        x1, y1, x2, y2 = (float(v) for v in row[:4])
        r: dict[str, Any] = {"image_id": int(image_id), "category_id": int(category_ids[cls]),
                             "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
        if J:
            pts = row[5:5 + 2 * J].reshape(J, 2)
            r["keypoints"] = [float(v) for p in pts for v in (p[0], p[1], 1.0)]
        out.append(r)
    return out


def evaluate(coco_file: str | os.PathLike[str] | Mapping[str, Any],
             results: Iterable[Mapping[str, Any]],
             iou_types: Sequence[str] = ("bbox", "keypoints"),
             image_ids: Sequence[int] | None = None, verbose: bool = False
             ) -> dict[str, dict[str, float]]:
    """COCO's AP of ``results`` against the annotations of ``coco_file`` (a path or the
    parsed json), with pycocotools' ``COCOeval``.

    ``iou_types``: ``"bbox"`` and/or ``"keypoints"`` (OKS; needs keypoint results and a
    file with keypoints); ``image_ids``: evaluate these images only (default: every image
    of the file).  Returns ``{iou_type: {"AP": ..., "AP50": ..., ...}}`` (COCOeval's
    ``stats``, -1 where undefined); ``verbose`` prints COCOeval's table.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise ImportError("evaluate needs pycocotools: pip install 'centertargets[eval]' "
                          "(or pip install pycocotools)") from exc
    data = coco_file if isinstance(coco_file, Mapping) else \
        json.loads(open(coco_file, encoding="utf-8-sig").read())
    data = dict(data)
    data.setdefault("info", {})
    data.setdefault("licenses", [])
    res = [dict(r) for r in results]
    quiet = contextlib.redirect_stdout(io.StringIO()) if not verbose else contextlib.nullcontext()
    out: dict[str, dict[str, float]] = {}
    with quiet:
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
        for iou_type in iou_types:
            if iou_type not in ("bbox", "keypoints"):
                raise ValueError(f"iou_types has {iou_type!r}: expected 'bbox' or 'keypoints'")
            if not res:
                names = _KP_STAT_NAMES if iou_type == "keypoints" else STAT_NAMES
                out[iou_type] = {n: 0.0 for n in names}
                continue
            if iou_type == "keypoints" and not all("keypoints" in r for r in res):
                raise ValueError("iou_types has 'keypoints': expected every result to carry "
                                 "'keypoints' (pose detections)")
            dt = gt.loadRes(res)
            ev = COCOeval(gt, dt, iou_type)
            if image_ids is not None:
                ev.params.imgIds = [int(i) for i in image_ids]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            names = _KP_STAT_NAMES if iou_type == "keypoints" else STAT_NAMES
            out[iou_type] = {n: float(v) for n, v in zip(names, ev.stats)}
    return out
