"""The whole sample path, side by side with a stand-in for upstream CenterNet's ``__getitem__``.

Synthetic 640x480 JPEGs with 15 or 32 persons (or 50 objects of 80 classes),
upstream's training transform (random crop, flip, colour), 512 input / 128
output.  Measured in the same run, milliseconds per sample (best of repeats):

* targets: annotations of one image -> all targets (``CenterNetDataset.item``
  without an image; dense, and with ``heatmaps="sparse"``) against the stand-in's
  annotation loop;
* whole sample: image in, network input and targets out, colour included;
* floor: ``cv2.imread`` + ``warp_image`` alone (the flip and ``cv2.warpAffine``, through
  BGRA where that gives the same bytes faster);
* DataLoader samples/s with 0 and 2 workers, fork and spawn, and the first
  epoch of a fresh DataLoader with 2 workers (spawn, fork, and a torch-only
  dataset for what any spawned worker costs);
* the first encode in a fresh process, with an empty and a warm numba cache.

The stand-in (``upstream_style_*``) is this benchmark's own plain-numpy
transcription of how upstream's ``MultiPoseDataset`` / ``CTDetDataset``
``__getitem__`` works: per-annotation dict access, ``affine_transform`` per
point through a 3-vector ``np.dot``, ``gaussian_radius``, ``draw_umich_gaussian``
with a fresh ``np.exp`` Gaussian per object and joint, the arrays upstream
allocates and fills whatever the options (``dense_kps``, ``dense_wh``,
``cat_spec_wh``, the ``gt_det`` list), ``color_aug`` as separate numpy
passes, ``(inp - mean) / std`` and a transpose.  It leaves out upstream's
pycocotools look-ups.  Nothing is asserted.  Run: ``python benchmarks/bench_dataset.py`` (``make bench``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_of  # noqa: E402
from bench_encode import _radius  # noqa: E402

from centertargets import (AugmentConfig, CenterNetDataset, CocoDataset, CtdetConfig,
                           MultiPoseConfig, memory)
from centertargets.augment import (COCO_EIG_VAL, COCO_EIG_VEC, COCO_MEAN_BGR, COCO_STD_BGR,
                                   AugmentParams, warp_image)
from centertargets.coco import COCO_CATEGORY_IDS, COCO_FLIP_IDX
from centertargets.geometry import get_affine_transform
from centertargets.synthetic import detection_scene, person_scene, to_coco


# --- the stand-in for upstream's __getitem__ -----------------------------------------------------

def _affine(pt, t):
    return np.dot(t, np.array([pt[0], pt[1], 1.0], np.float32).T)[:2]


def _gaussian2d(r):
    sigma = (2 * r + 1) / 6
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h


def _draw_umich(hm, center, r, k=1):
    g = _gaussian2d(r)
    x, y = int(center[0]), int(center[1])
    H, W = hm.shape
    left, right = min(x, r), min(W - x, r + 1)
    top, bottom = min(y, r), min(H - y, r + 1)
    mh = hm[y - top:y + bottom, x - left:x + right]
    mg = g[r - top:r + bottom, r - left:r + right]
    if min(mg.shape) > 0 and min(mh.shape) > 0:
        np.maximum(mh, mg * k, out=mh)


def _color_aug(inp, color):
    gs = cv2.cvtColor(inp, cv2.COLOR_BGR2GRAY)
    gs_mean = gs.mean()
    for step in color.order:
        a = getattr(color, step)
        if step == "brightness":
            inp *= a
        elif step == "contrast":
            inp *= a
            inp += gs_mean * (1 - a)
        else:
            inp *= a
            gs2 = gs[:, :, None] * (1 - a)
            inp += gs2
    inp += np.dot(COCO_EIG_VEC, COCO_EIG_VAL * np.asarray(color.lighting))


def upstream_style_input(path, p: AugmentParams, size=512):
    img = cv2.imread(path)
    if p.flipped:
        img = img[:, ::-1, :]
    t = get_affine_transform(np.float32(p.center), p.scale, 0, [size, size])
    inp = cv2.warpAffine(img, t, (size, size), flags=cv2.INTER_LINEAR)
    inp = inp.astype(np.float32) / 255.0
    _color_aug(inp, p.color)
    inp = (inp - COCO_MEAN_BGR) / COCO_STD_BGR
    return inp.transpose(2, 0, 1), img.shape[1]


def upstream_style_pose_targets(anns, width, p: AugmentParams, out=128, M=32, J=17):
    t_out = get_affine_transform(np.float32(p.center), p.scale, 0, [out, out])
    t_rot = get_affine_transform(np.float32(p.center), p.scale, p.rot, [out, out])
    hm = np.zeros((1, out, out), np.float32)
    hm_hp = np.zeros((J, out, out), np.float32)
    dense_kps = np.zeros((J, 2, out, out), np.float32)      # allocated whatever the options
    dense_kps_mask = np.zeros((J, out, out), np.float32)
    wh = np.zeros((M, 2), np.float32)
    kps = np.zeros((M, 2 * J), np.float32)
    reg = np.zeros((M, 2), np.float32)
    ind = np.zeros(M, np.int64)
    reg_mask = np.zeros(M, np.uint8)
    kps_mask = np.zeros((M, 2 * J), np.uint8)
    hp_offset = np.zeros((M * J, 2), np.float32)
    hp_ind = np.zeros(M * J, np.int64)
    hp_mask = np.zeros(M * J, np.int64)
    gt_det = []
    for k in range(min(len(anns), M)):
        ann = anns[k]
        x, y, w0, h0 = ann["bbox"]
        bbox = np.array([x, y, x + w0, y + h0], np.float32)
        cls = int(ann["category_id"]) - 1
        pts = np.array(ann["keypoints"], np.float32).reshape(J, 3)
        if p.flipped:
            bbox[[0, 2]] = width - bbox[[2, 0]] - 1
            pts[:, 0] = width - pts[:, 0] - 1
            for a, b in COCO_FLIP_IDX:
                pts[a], pts[b] = pts[b].copy(), pts[a].copy()
        bbox[:2] = _affine(bbox[:2], t_out)
        bbox[2:] = _affine(bbox[2:], t_out)
        bbox = np.clip(bbox, 0, out - 1)
        h, w = bbox[3] - bbox[1], bbox[2] - bbox[0]
        if h > 0 and w > 0:
            r = max(0, int(_radius(math.ceil(h), math.ceil(w))))
            ct = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], np.float32)
            ci = ct.astype(np.int32)
            wh[k] = w, h
            ind[k] = ci[1] * out + ci[0]
            reg[k] = ct - ci
            reg_mask[k] = 1
            if pts[:, 2].sum() == 0:
                hm[cls, ci[1], ci[0]] = 0.9999
                reg_mask[k] = 0
            r_hp = max(0, int(_radius(math.ceil(h), math.ceil(w))))   # computed twice upstream
            for j in range(J):
                if pts[j, 2] > 0:
                    pts[j, :2] = _affine(pts[j, :2], t_rot)
                    if 0 <= pts[j, 0] < out and 0 <= pts[j, 1] < out:
                        kps[k, 2 * j:2 * j + 2] = pts[j, :2] - ci
                        kps_mask[k, 2 * j:2 * j + 2] = 1
                        pi = pts[j, :2].astype(np.int32)
                        hp_offset[k * J + j] = pts[j, :2] - pi
                        hp_ind[k * J + j] = pi[1] * out + pi[0]
                        hp_mask[k * J + j] = 1
                        _draw_umich(hm_hp[j], pi, r_hp)
            _draw_umich(hm[cls], ci, r)
            gt_det.append([ct[0] - w / 2, ct[1] - h / 2, ct[0] + w / 2, ct[1] + h / 2, 1]
                          + pts[:, :2].reshape(J * 2).tolist() + [cls])
    return {"hm": hm, "hm_hp": hm_hp, "wh": wh, "hps": kps, "reg": reg, "ind": ind,
            "reg_mask": reg_mask, "hps_mask": kps_mask, "hp_offset": hp_offset,
            "hp_ind": hp_ind, "hp_mask": hp_mask}


_CLASS_OF = {c: i for i, c in enumerate(COCO_CATEGORY_IDS)}


def upstream_style_ctdet_targets(anns, width, p: AugmentParams, out=128, M=128, C=80):
    t_out = get_affine_transform(np.float32(p.center), p.scale, 0, [out, out])
    hm = np.zeros((C, out, out), np.float32)
    wh = np.zeros((M, 2), np.float32)
    dense_wh = np.zeros((2, out, out), np.float32)          # allocated whatever the options
    reg = np.zeros((M, 2), np.float32)
    ind = np.zeros(M, np.int64)
    reg_mask = np.zeros(M, np.uint8)
    cat_spec_wh = np.zeros((M, 2 * C), np.float32)          # filled whatever the options
    cat_spec_mask = np.zeros((M, 2 * C), np.uint8)
    gt_det = []
    for k in range(min(len(anns), M)):
        ann = anns[k]
        x, y, w0, h0 = ann["bbox"]
        bbox = np.array([x, y, x + w0, y + h0], np.float32)
        cls = _CLASS_OF[int(ann["category_id"])]
        if p.flipped:
            bbox[[0, 2]] = width - bbox[[2, 0]] - 1
        bbox[:2] = _affine(bbox[:2], t_out)
        bbox[2:] = _affine(bbox[2:], t_out)
        bbox[[0, 2]] = np.clip(bbox[[0, 2]], 0, out - 1)
        bbox[[1, 3]] = np.clip(bbox[[1, 3]], 0, out - 1)
        h, w = bbox[3] - bbox[1], bbox[2] - bbox[0]
        if h > 0 and w > 0:
            r = max(0, int(_radius(math.ceil(h), math.ceil(w))))
            ct = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], np.float32)
            ci = ct.astype(np.int32)
            _draw_umich(hm[cls], ci, r)
            wh[k] = w, h
            ind[k] = ci[1] * out + ci[0]
            reg[k] = ct - ci
            reg_mask[k] = 1
            cat_spec_wh[k, 2 * cls:2 * cls + 2] = wh[k]
            cat_spec_mask[k, 2 * cls:2 * cls + 2] = 1
            gt_det.append([ct[0] - w / 2, ct[1] - h / 2, ct[0] + w / 2, ct[1] + h / 2, 1, cls])
    del dense_wh, cat_spec_wh, cat_spec_mask                # returned only with their options
    return {"hm": hm, "wh": wh, "reg": reg, "ind": ind, "reg_mask": reg_mask}


# --- set-up ------------------------------------------------------------------------------------

def write_dataset(folder: Path, task: str, n_images: int,
                  per_image: int | tuple[int, int]) -> Path:
    """640x480 JPEGs and their COCO json: ``per_image`` persons (multi_pose) or objects of
    80 classes (ctdet) per image, or a count drawn from ``[lo, hi]`` per image."""
    rng = np.random.default_rng(0)
    lo, hi = per_image if isinstance(per_image, tuple) else (per_image, per_image)
    counts = [int(rng.integers(lo, hi + 1)) for _ in range(n_images)]
    if task == "multi_pose":
        scenes = [person_scene(i, num_people=c) for i, c in enumerate(counts)]
    else:
        scenes = [detection_scene(i, num_objects=c) for i, c in enumerate(counts)]
    data = to_coco(scenes, categories="person" if task == "multi_pose" else "coco80")
    for img in data["images"]:
        pixels = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (9, 9), 3)
        cv2.imwrite(str(folder / img["file_name"]), pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    path = folder / f"{task}_{lo}_{hi}.json"
    path.write_text(json.dumps(data))
    return path


def per_sample(fn, n: int, repeat: int, min_seconds: float = 0.1) -> float:
    """Best mean seconds per sample over ``repeat`` rounds, each of whole passes over all
    ``n`` samples lasting at least ``min_seconds`` (fast paths get many passes)."""
    i = [0]

    def one():
        fn(i[0] % n)
        i[0] += 1
    t0 = time.perf_counter()
    for _ in range(n):
        one()
    passes = max(1, math.ceil(min_seconds / max(time.perf_counter() - t0, 1e-9)))
    return best_of(one, repeat, n * passes)


def per_sample_each(fns: dict, n: int, repeat: int, min_seconds: float = 0.1) -> dict:
    """:func:`per_sample` of each of ``fns`` (name -> fn(i)), their rounds taking turns, so
    that a drift of the machine's speed (2x within minutes here) hits them alike and their
    ratio holds."""
    passes, best = {}, {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        passes[name] = max(1, math.ceil(min_seconds / max(time.perf_counter() - t0, 1e-9)))
        best[name] = math.inf
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(passes[name]):
                for i in range(n):
                    fn(i)
            best[name] = min(best[name], (time.perf_counter() - t0) / (n * passes[name]))
    return best


def loader_rate(ds, workers: int, context: str | None, rounds: int = 3) -> float:
    """Samples/s of a DataLoader over ``ds`` (batch 8), after every worker has produced."""
    from torch.utils.data import DataLoader

    loader = DataLoader(ds, batch_size=8, num_workers=workers, shuffle=False,
                        multiprocessing_context=context if workers else None,
                        persistent_workers=bool(workers))
    for _ in range(2):
        for _ in loader:            # start and warm every worker
            pass
    t0 = time.perf_counter()
    n = 0
    for _ in range(rounds):
        for b in loader:
            n += len(b["hm"])
    return n / (time.perf_counter() - t0)


class _Trivial:
    """A dataset of 16 tiny items: what a spawned worker costs before any dataset work."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict:
        return {"hm": np.zeros(3, np.float32)}


def first_epoch(ds, context: str, workers: int = 2) -> float:
    """Seconds of a fresh DataLoader's first pass (batch 8), worker start-up included."""
    from torch.utils.data import DataLoader

    t0 = time.perf_counter()
    for _ in DataLoader(ds, batch_size=8, num_workers=workers, multiprocessing_context=context):
        pass
    return time.perf_counter() - t0


_FIRST = r"""
import time, sys
t0 = time.perf_counter()
from centertargets import CenterNetDataset, CocoDataset, MultiPoseConfig
ds = CenterNetDataset(CocoDataset.load(sys.argv[1]), MultiPoseConfig(output_size=(128, 128)))
ds[0]
print(time.perf_counter() - t0)
"""


def first_encode(path: Path) -> tuple[float, float]:
    """Seconds from a fresh process's imports to its first item, empty cache then warm cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        times = [float(subprocess.run([sys.executable, "-c", _FIRST, str(path)], env=env,
                                      capture_output=True, text=True, check=True).stdout)
                 for _ in range(2)]
    return times[0], times[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-loader", action="store_true", help="skip the DataLoader rows")
    args = ap.parse_args()
    # The per-sample rows run in this process but stand for a DataLoader worker, which tunes
    # malloc for itself; a main process is left alone unless asked (bench_memory.py).
    memory.tune_malloc()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for task, count in (("multi_pose", 15), ("multi_pose", 32), ("ctdet", 50)):
            path = write_dataset(root, task, args.images, count)
            coco = CocoDataset.load(path, category_ids=COCO_CATEGORY_IDS if task == "ctdet"
                                    else None)
            cfg = MultiPoseConfig(output_size=(128, 128)) if task == "multi_pose" else \
                CtdetConfig(output_size=(128, 128))
            aug = AugmentConfig(train=True)
            ds = CenterNetDataset(coco, cfg, augment=aug, image_root=root)
            ds_t = CenterNetDataset(coco, cfg, augment=aug)
            params = [ds.params(i) for i in range(len(ds))]
            anns = json.loads(path.read_text())["annotations"]
            by_image = [[a for a in anns if a["image_id"] == ds.annotations(i).image_id]
                        for i in range(len(ds))]
            files = [str(root / ds.annotations(i).file_name) for i in range(len(ds))]
            n = len(ds)
            stand_in_targets = upstream_style_pose_targets if task == "multi_pose" else \
                upstream_style_ctdet_targets
            ds_s = CenterNetDataset(coco, cfg.replace(heatmaps="sparse"), augment=aug)
            t = per_sample_each({
                "ours": lambda i: ds_t.item(i, params[i]),
                "sparse": lambda i: ds_s.item(i, params[i]),
                "up": lambda i: stand_in_targets(by_image[i], 640, params[i])}, n, args.repeat)
            t_ours, t_sparse, t_up = t["ours"], t["sparse"], t["up"]
            label = f"{task}, {count} {'persons' if task == 'multi_pose' else 'objects'}"
            rows.append((f"targets, {label}", f"{t_ours * 1e3:.3f} ms",
                         f"upstream-style {t_up * 1e3:.2f} ms = {t_up / t_ours:.1f}x"))
            rows.append(("  the same, heatmaps='sparse'", f"{t_sparse * 1e3:.3f} ms",
                         f"{t_up / t_sparse:.1f}x"))
            if count != 15:
                continue

            def floor(i):          # upstream's BGR warp, or the faster BGRA route to its bytes
                warp_image(cv2.imread(files[i]), params[i], (512, 512))

            def stand_in_whole(i):
                _, width = upstream_style_input(files[i], params[i])
                stand_in_targets(by_image[i], width, params[i])

            ds8 = CenterNetDataset(coco, cfg, augment=aug, image_root=root, input_dtype="uint8")
            t_whole = per_sample(lambda i: ds.item(i, params[i]), n, args.repeat)
            t_floor = per_sample(floor, n, args.repeat)
            t_whole8 = per_sample(lambda i: ds8.item(i, params[i]), n, args.repeat)
            t_up_whole = per_sample(stand_in_whole, n, max(1, args.repeat // 2))
            rows.append(("whole sample (640x480 JPEG, colour)", f"{t_whole * 1e3:.2f} ms",
                         f"upstream-style {t_up_whole * 1e3:.2f} ms = "
                         f"{t_up_whole / t_whole:.1f}x; floor (imread + warp) "
                         f"{t_floor * 1e3:.2f} ms, whole / floor = {t_whole / t_floor:.2f}x"))
            rows.append(("whole sample, input_dtype='uint8'", f"{t_whole8 * 1e3:.2f} ms",
                         f"whole / floor = {t_whole8 / t_floor:.2f}x (colour and normalisation "
                         "left to device.normalize_batch)"))
            if task == "multi_pose" and not args.no_loader:
                for workers, ctx in ((0, None), (2, "fork"), (2, "spawn")):
                    r32 = loader_rate(ds, workers, ctx)
                    r8 = loader_rate(ds8, workers, ctx)
                    rows.append((f"DataLoader, {workers} workers{', ' + ctx if ctx else ''}",
                                 f"{r32:.0f} samples/s", f"input_dtype='uint8': {r8:.0f} "
                                 "samples/s (batch 8, whole samples)"))
                sub = CenterNetDataset(coco, cfg, augment=aug, image_root=root)
                fork_t = min(first_epoch(sub, "fork") for _ in range(2))
                spawn_t = min(first_epoch(sub, "spawn") for _ in range(2))
                trivial_t = min(first_epoch(_Trivial(), "spawn") for _ in range(2))
                rows.append(("first epoch, 2 workers (16 samples)", f"{spawn_t:.2f} s spawn",
                             f"fork {fork_t:.2f} s; spawn of a torch-only dataset "
                             f"{trivial_t:.2f} s (Python + torch start-up)"))
                cold, warm = first_encode(path)
                rows.append(("first item in a fresh process", f"{cold:.2f} s empty cache",
                             f"{warm:.2f} s warm cache"))
    print(f"sample path, 512 input / 128 output, {args.images} images, "
          f"{os.cpu_count()} CPUs (ms per sample, best of {args.repeat})")
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for a, b, c in rows:
        print(f"  {a:<{w0}}  {b:>{w1}}  {c}")


if __name__ == "__main__":
    main()
