"""Per-sample targets of the tasks beyond ctdet and multi_pose, against upstream's numpy code.

ddd: 20 KITTI-like objects (with ignore regions), 640x192 input / 160x48
output, upstream's training draws (``aug_ddd``), against this benchmark's
transcription of the target part of ``DddDataset.__getitem__``.

exdet: 50 objects of 80 classes with extreme points, 512 input / 128 output,
training draws (random crop and flip).  Measured in one run, best of repeats:

* ours: ``CenterNetDataset.item`` without an image (annotations through the
  flip and affine transform, then the fused encoder), with dense heatmaps and with
  ``heatmaps="sparse"`` (the draw list the training device renders);
* upstream: this benchmark's transcription of the target part of upstream's
  ``EXDetDataset.__getitem__`` (per annotation: ``extreme_points`` as a float32
  array, flip, ``affine_transform`` per point, clip, radius, five
  ``draw_umich_gaussian`` calls with a fresh ``np.exp`` Gaussian each, offsets
  and indices);
* floor: allocating the zeroed target arrays alone (``np.zeros``), which any
  dense encoder pays.

Nothing is asserted.  Run: ``python benchmarks/bench_tasks.py`` (``make bench``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_of  # noqa: E402
from bench_dataset import _draw_umich  # noqa: E402
from bench_encode import _radius  # noqa: E402

from centertargets import (AugmentConfig, CenterNetDataset, CocoDataset, DddConfig, ExdetConfig,
                           memory)
from centertargets.synthetic import ddd_coco, detection_scene, to_coco


def upstream_exdet(anns, width, flipped, trans, res=128, C=80, M=128, class_of=None):
    """The target part of upstream's EXDetDataset.__getitem__, transcribed."""
    hms = {p: np.zeros((C, res, res), np.float32) for p in "tlbrc"}
    regs = {p: np.zeros((M, 2), np.float32) for p in "tlbr"}
    inds = {p: np.zeros(M, np.int64) for p in "tlbr"}
    reg_mask = np.zeros(M, np.uint8)
    for k in range(min(len(anns), M)):
        ann = anns[k]
        pts = np.array(ann["extreme_points"], dtype=np.float32).reshape(4, 2)
        cls = int(class_of[ann["category_id"]])
        if flipped:
            pts[:, 0] = width - pts[:, 0] - 1
            pts[1], pts[3] = pts[3].copy(), pts[1].copy()
        for j in range(4):
            pts[j] = np.dot(trans, np.array([pts[j, 0], pts[j, 1], 1.0], np.float32))[:2]
        pts = np.clip(pts, 0, res - 1)
        h, w = pts[2, 1] - pts[0, 1], pts[3, 0] - pts[1, 0]
        if h > 0 and w > 0:
            r = max(0, int(_radius(math.ceil(h), math.ceil(w))))
            pint = pts.astype(np.int32)
            for j, p in enumerate("tlbr"):
                _draw_umich(hms[p][cls], pint[j], r)
                regs[p][k] = pts[j] - pint[j]
                inds[p][k] = pint[j, 1] * res + pint[j, 0]
            ct = [int((pts[3, 0] + pts[1, 0]) / 2), int((pts[0, 1] + pts[2, 1]) / 2)]
            _draw_umich(hms["c"][cls], ct, r)
            reg_mask[k] = 1
    return hms, regs, inds, reg_mask


def upstream_ddd(anns, trans, cat_ids, res=(160, 48), C=3, M=50, aug=False):
    """The target part of upstream's DddDataset.__getitem__ (training: no gt_det), transcribed."""
    W, H = res
    hm = np.zeros((C, H, W), np.float32)
    wh = np.zeros((M, 2), np.float32)
    reg = np.zeros((M, 2), np.float32)
    dep = np.zeros((M, 1), np.float32)
    rotbin = np.zeros((M, 2), np.int64)
    rotres = np.zeros((M, 2), np.float32)
    dim = np.zeros((M, 3), np.float32)
    ind = np.zeros(M, np.int64)
    reg_mask = np.zeros(M, np.uint8)
    rot_mask = np.zeros(M, np.uint8)
    for k in range(min(len(anns), M)):
        ann = anns[k]
        x, y, w_, h_ = ann["bbox"]
        bbox = np.array([x, y, x + w_, y + h_], np.float32)
        cls = int(cat_ids[ann["category_id"]])
        if cls <= -99:
            continue
        bbox[:2] = np.dot(trans, np.array([bbox[0], bbox[1], 1.0], np.float32))[:2]
        bbox[2:] = np.dot(trans, np.array([bbox[2], bbox[3], 1.0], np.float32))[:2]
        bbox[[0, 2]] = np.clip(bbox[[0, 2]], 0, W - 1)
        bbox[[1, 3]] = np.clip(bbox[[1, 3]], 0, H - 1)
        h, w = bbox[3] - bbox[1], bbox[2] - bbox[0]
        if h > 0 and w > 0:
            r = max(0, int(_radius(h, w)))
            ct = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], np.float32)
            ct_int = ct.astype(np.int32)
            if cls < 0:
                ignore = list(range(C)) if cls == -1 else [-cls - 2]
                for cc in ignore:
                    _draw_umich(hm[cc], ct, r)
                hm[ignore, ct_int[1], ct_int[0]] = 0.9999
                continue
            _draw_umich(hm[cls], ct, r)
            wh[k] = 1. * w, 1. * h
            alpha = ann["alpha"]
            if alpha < np.pi / 6. or alpha > 5 * np.pi / 6.:
                rotbin[k, 0] = 1
                rotres[k, 0] = alpha - (-0.5 * np.pi)
            if alpha > -np.pi / 6. or alpha < -5 * np.pi / 6.:
                rotbin[k, 1] = 1
                rotres[k, 1] = alpha - (0.5 * np.pi)
            dep[k] = ann["depth"]
            dim[k] = ann["dim"]
            ind[k] = ct_int[1] * W + ct_int[0]
            reg[k] = ct - ct_int
            reg_mask[k] = 0 if aug else 1
            rot_mask[k] = 1
    return hm, wh, reg, dep, rotbin, rotres, dim, ind, reg_mask, rot_mask


def _exdet_coco(n_images: int, per_image: int) -> dict:
    data = to_coco([detection_scene(i, num_objects=per_image) for i in range(n_images)],
                   categories="coco80")
    rng = np.random.default_rng(0)
    for a in data["annotations"]:                          # extreme points on the box's sides
        x, y, w, h = a["bbox"]
        u = rng.uniform(0.2, 0.8, 4)
        a["extreme_points"] = [[x + u[0] * w, y], [x, y + u[1] * h], [x + u[2] * w, y + h],
                               [x + w, y + u[3] * h]]
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    memory.tune_malloc()        # the rows stand for a DataLoader worker, which tunes malloc
    data = _exdet_coco(args.images, 50)
    coco = CocoDataset(data)
    cfg = ExdetConfig(output_size=(128, 128), num_classes=80)
    ds = CenterNetDataset(coco, cfg, augment=AugmentConfig(train=True))
    params = [ds.params(i) for i in range(len(ds))]
    by_image: dict[int, list] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    class_of = {c: i for i, c in enumerate(coco.category_ids)}
    n = len(ds)
    k = [0]

    def ours():
        i = k[0] % n
        k[0] += 1
        ds.item(i, params[i])

    def upstream():
        i = k[0] % n
        k[0] += 1
        ann = ds.annotations(i)
        p = params[i]
        upstream_exdet(by_image[ann.image_id], ann.width, p.flipped,
                       p.matrix((128, 128)), class_of=class_of)

    spec = cfg.spec()

    def floor():
        for s in spec.values():
            np.zeros(s.shape, s.dtype)

    sparse_ds = CenterNetDataset(coco, cfg.replace(heatmaps="sparse"),
                                 augment=AugmentConfig(train=True))

    def ours_sparse():
        i = k[0] % n
        k[0] += 1
        sparse_ds.item(i, params[i])

    t_ours = best_of(ours, args.repeat, 4 * n)
    t_sparse = best_of(ours_sparse, args.repeat, 4 * n)
    t_up = best_of(upstream, args.repeat, n)
    t_floor = best_of(floor, args.repeat, 4 * n)
    print("exdet targets, 50 objects of 80 classes, 512 -> 128, training draws:")
    print(f"  centertargets (CenterNetDataset.item)  {t_ours * 1e3:7.3f} ms/sample   "
          f"{t_up / t_ours:5.1f}x faster")
    print(f"  the same, heatmaps='sparse'            {t_sparse * 1e3:7.3f} ms/sample   "
          f"{t_up / t_sparse:5.1f}x faster (the five maps as a draw list)")
    print(f"  upstream transcription                 {t_up * 1e3:7.3f} ms/sample")
    print(f"  floor: np.zeros of the five heatmaps   {t_floor * 1e3:7.3f} ms/sample   "
          f"({100 * t_floor / t_ours:.0f}% of ours, dense)")

    kitti = ddd_coco(args.images, 20, seed=0)
    dcfg = DddConfig(output_size=(160, 48))
    dds = CenterNetDataset(CocoDataset(kitti), dcfg, augment=AugmentConfig(train=True))
    dparams = [dds.params(i) for i in range(len(dds))]
    dby_image: dict[int, list] = {}
    for a in kitti["annotations"]:
        dby_image.setdefault(a["image_id"], []).append(a)
    cat_ids = dict(dcfg.category_map)
    m = len(dds)

    def ours_ddd():
        i = k[0] % m
        k[0] += 1
        dds.item(i, dparams[i])

    def upstream_ddd_sample():
        i = k[0] % m
        k[0] += 1
        p = dparams[i]
        upstream_ddd(dby_image[dds.annotations(i).image_id], p.matrix((160, 48)), cat_ids,
                     aug=p.augmented)

    enc = dds.encoder((160, 48))
    unit = dds.unit

    def ours_ddd_targets():             # the targets alone: no meta, no item bookkeeping
        i = k[0] % m
        k[0] += 1
        enc.encode_prepared(unit.prepared(dds.annotations(i), dparams[i], (160, 48), dcfg))

    sparse_dds = CenterNetDataset(CocoDataset(kitti), dcfg.replace(heatmaps="sparse"),
                                  augment=AugmentConfig(train=True))

    def ours_ddd_sparse():
        i = k[0] % m
        k[0] += 1
        sparse_dds.item(i, dparams[i])

    t_ours = best_of(ours_ddd, args.repeat, 4 * m)
    t_sparse = best_of(ours_ddd_sparse, args.repeat, 4 * m)
    t_targets = best_of(ours_ddd_targets, args.repeat, 4 * m)
    t_up = best_of(upstream_ddd_sample, args.repeat, 2 * m)
    print("ddd targets, 20 KITTI objects (3 classes, ignore regions), 640x192 -> 160x48, "
          "training draws:")
    print(f"  centertargets (CenterNetDataset.item)  {t_ours * 1e3:7.3f} ms/sample   "
          f"{t_up / t_ours:5.1f}x faster")
    print(f"  the same, heatmaps='sparse'            {t_sparse * 1e3:7.3f} ms/sample   "
          f"{t_up / t_sparse:5.1f}x faster")
    print(f"  centertargets, targets alone           {t_targets * 1e3:7.3f} ms/sample   "
          f"{t_up / t_targets:5.1f}x faster")
    print(f"  upstream transcription                 {t_up * 1e3:7.3f} ms/sample")


if __name__ == "__main__":
    main()
