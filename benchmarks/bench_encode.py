"""Encoder speed against two baselines measured in the same run.

1. The floor: allocating the same target arrays and writing every memory
   page of them once (what any encoder must at least pay).
2. A straightforward numpy encoder written the way CenterNet's dataset code
   works (per-object Gaussian built with np.exp, slicing, np.maximum), as a
   stand-in for upstream's per-sample cost.

Run: ``python benchmarks/bench_encode.py`` (or ``make bench``).  Prints
microseconds per sample and the ratios; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_of  # noqa: E402

from centertargets import CtdetConfig, CtdetEncoder, MultiPoseConfig, MultiPoseEncoder
from centertargets.augment import AugmentParams, annotations_to_output
from centertargets.coco import COCO_CATEGORY_IDS
from centertargets.synthetic import detection_scene, person_scene

PAGE = 4096


def floor_fn(spec):
    def run():
        out = {}
        for name, s in spec.items():
            a = np.zeros(s.shape, s.dtype)
            flat = a.reshape(-1)
            flat[:: max(1, PAGE // a.itemsize)] = 1
            out[name] = a
        return out
    return run


# --- a plain numpy encoder in CenterNet's style (the per-object loop) --------------------------

def _radius(h, w, o=0.7):
    b1 = h + w
    c1 = w * h * (1 - o) / (1 + o)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - o) * w * h
    r2 = (b2 + np.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * o
    b3 = -2 * o * (h + w)
    c3 = (o - 1) * w * h
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _draw(hm, cx, cy, r):
    d = 2 * r + 1
    sigma = d / 6
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    H, W = hm.shape
    left, right = min(cx, r), min(W - cx, r + 1)
    top, bottom = min(cy, r), min(H - cy, r + 1)
    mh = hm[cy - top:cy + bottom, cx - left:cx + right]
    mg = g[r - top:r + bottom, r - left:r + right]
    if min(mg.shape) > 0 and min(mh.shape) > 0:
        np.maximum(mh, mg, out=mh)


def numpy_multi_pose(boxes, kps, W, H, M=32):
    J = kps.shape[1]
    hm = np.zeros((1, H, W), np.float32)
    hm_hp = np.zeros((J, H, W), np.float32)
    wh = np.zeros((M, 2), np.float32)
    reg = np.zeros((M, 2), np.float32)
    ind = np.zeros(M, np.int64)
    reg_mask = np.zeros(M, np.uint8)
    hps = np.zeros((M, 2 * J), np.float32)
    hps_mask = np.zeros((M, 2 * J), np.uint8)
    hp_offset = np.zeros((M * J, 2), np.float32)
    hp_ind = np.zeros(M * J, np.int64)
    hp_mask = np.zeros(M * J, np.int64)
    for k in range(min(len(boxes), M)):
        b = np.clip(boxes[k].copy(), 0, W - 1)
        h, w = b[3] - b[1], b[2] - b[0]
        if h <= 0 or w <= 0:
            continue
        r = max(0, int(_radius(math.ceil(h), math.ceil(w))))
        ct = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2], np.float32)
        ci = ct.astype(np.int32)
        wh[k] = w, h
        ind[k] = ci[1] * W + ci[0]
        reg[k] = ct - ci
        reg_mask[k] = 1
        for j in range(J):
            p = kps[k, j]
            if p[2] > 0 and 0 <= p[0] < W and 0 <= p[1] < H:
                hps[k, 2 * j:2 * j + 2] = p[:2] - ci
                hps_mask[k, 2 * j:2 * j + 2] = 1
                pi = p[:2].astype(np.int32)
                hp_offset[k * J + j] = p[:2] - pi
                hp_ind[k * J + j] = pi[1] * W + pi[0]
                hp_mask[k * J + j] = 1
                _draw(hm_hp[j], int(pi[0]), int(pi[1]), r)
        _draw(hm[0], int(ci[0]), int(ci[1]), r)
    return hm


def numpy_ctdet(boxes, classes, W, H, C=80, M=128):
    hm = np.zeros((C, H, W), np.float32)
    wh = np.zeros((M, 2), np.float32)
    reg = np.zeros((M, 2), np.float32)
    ind = np.zeros(M, np.int64)
    reg_mask = np.zeros(M, np.uint8)
    for k in range(min(len(boxes), M)):
        b = np.clip(boxes[k].copy(), 0, W - 1)
        h, w = b[3] - b[1], b[2] - b[0]
        if h <= 0 or w <= 0:
            continue
        r = max(0, int(_radius(math.ceil(h), math.ceil(w))))
        ct = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2], np.float32)
        ci = ct.astype(np.int32)
        _draw(hm[classes[k]], int(ci[0]), int(ci[1]), r)
        wh[k] = w, h
        ind[k] = ci[1] * W + ci[0]
        reg[k] = ct - ci
        reg_mask[k] = 1
    return hm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--number", type=int, default=200)
    args = ap.parse_args()

    scene = person_scene(0, num_people=15)
    cfg = MultiPoseConfig(output_size=(128, 128))
    boxes, kps = annotations_to_output(scene.boxes_xywh, scene.width,
                                       AugmentParams.centered(scene.width, scene.height),
                                       cfg.output_size, keypoints=scene.keypoints,
                                       flip_idx=cfg.flip_idx)
    enc = MultiPoseEncoder(cfg)
    t_enc = best_of(lambda: enc.encode(boxes, kps), args.repeat, args.number)
    t_floor = best_of(floor_fn(cfg.spec()), args.repeat, args.number)
    t_np = best_of(lambda: numpy_multi_pose(boxes, kps, 128, 128), args.repeat,
                   max(1, args.number // 10))
    print("multi_pose, 15 persons, 17 joints, 128x128:")
    print(f"  centertargets encode   {t_enc * 1e6:9.1f} us/sample")
    print(f"  floor (alloc + pages)  {t_floor * 1e6:9.1f} us/sample   "
          f"encode / floor = {t_enc / t_floor:.2f}x")
    print(f"  numpy CenterNet-style  {t_np * 1e6:9.1f} us/sample   "
          f"speed-up = {t_np / t_enc:.1f}x")

    det = detection_scene(0, num_objects=50)
    ccfg = CtdetConfig(output_size=(128, 128))
    cboxes, _ = annotations_to_output(det.boxes_xywh, det.width,
                                      AugmentParams.centered(det.width, det.height),
                                      ccfg.output_size)
    classes = np.searchsorted(np.array(COCO_CATEGORY_IDS), det.category_ids)
    cenc = CtdetEncoder(ccfg)
    t_enc = best_of(lambda: cenc.encode(cboxes, classes), args.repeat, args.number)
    t_floor = best_of(floor_fn(ccfg.spec()), args.repeat, args.number)
    t_np = best_of(lambda: numpy_ctdet(cboxes, classes, 128, 128), args.repeat,
                   max(1, args.number // 10))
    print("ctdet, 50 objects, 80 classes, 128x128:")
    print(f"  centertargets encode   {t_enc * 1e6:9.1f} us/sample")
    print(f"  floor (alloc + pages)  {t_floor * 1e6:9.1f} us/sample   "
          f"encode / floor = {t_enc / t_floor:.2f}x")
    print(f"  numpy CenterNet-style  {t_np * 1e6:9.1f} us/sample   "
          f"speed-up = {t_np / t_enc:.1f}x")


if __name__ == "__main__":
    main()
