"""CenterTrack's tracking sample: ours against a transcription of upstream's ``GenericDataset``.

Synthetic videos of 15 walking persons per 640x480 JPEG frame, 512x512 input
(128x128 output), one class, heads ``hm``, ``reg``, ``wh``, ``tracking`` and
``pre_hm`` with CenterTrack's training draws (random crop, flip, previous frame
within 3, its own shift/scale, ``hm_disturb`` 0.05, ``lost_disturb`` 0.4,
``fp_disturb`` 0.1).  Both sides use the same draws (``TrackingDataset.params``).
Measured in one run, best of repeats:

* targets: ours ``TrackingDataset.item`` without images (both frames' annotations
  through their transforms, the previous frame's centres and ``pre_hm``, every
  target) against this benchmark's transcription of upstream's target code
  (``_flip_anns``, ``_get_pre_dets``, ``_get_bbox_output``, ``_add_instance``,
  ``draw_umich_gaussian`` with a fresh ``np.exp`` Gaussian each);
* whole sample: ours with both images read, warped, colour-augmented and
  normalised, against the transcription plus upstream's image path
  (``cv2.imread``, flip, ``warpAffine``, ``color_aug``, normalise) for both frames;
* floor: allocating the zeroed target arrays alone.

Nothing is asserted.  Run: ``python benchmarks/bench_tracking.py`` (``make bench``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_of  # noqa: E402
from bench_dataset import (_affine, _draw_umich, per_sample_each,  # noqa: E402
                           upstream_style_input)
from bench_encode import _radius  # noqa: E402

from centertargets import AugmentConfig, CocoDataset, memory
from centertargets.synthetic import person_video, to_coco_video
from centertargets.tasks.tracking import TrackingConfig
from centertargets.tracking import TrackingDataset


def _bbox_output(box, trans, W, H):
    b = np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]], np.float32)
    rect = np.array([[b[0], b[1]], [b[0], b[3]], [b[2], b[3]], [b[2], b[1]]], np.float32)
    for t in range(4):
        rect[t] = _affine(rect[t], trans)
    b[:2] = rect[:, 0].min(), rect[:, 1].min()
    b[2:] = rect[:, 0].max(), rect[:, 1].max()
    b[[0, 2]] = np.clip(b[[0, 2]], 0, W - 1)
    b[[1, 3]] = np.clip(b[[1, 3]], 0, H - 1)
    return b


def upstream_targets(anns, pre_anns, width, params, cfg: TrackingConfig, frames=()):
    """The target part of upstream's ``GenericDataset.__getitem__`` (tracking), transcribed:
    the previous-frame candidates (``_load_pre_data``'s list over the video's frames), both
    frames' annotations deep-copied and flipped, the three matrices it computes for them
    (``trans_output``, ``trans_input_pre`` and the unused ``trans_output_pre``),
    ``_get_pre_dets``, ``_init_ret``, ``_get_calib`` and the per-object ``_get_bbox_output``
    and ``_add_instance`` (``gt_det`` lists included)."""
    W, H = cfg.output_size
    iw, ih = cfg.input_size
    cur, pre_p = params.current, params.pre_params
    frame_id = frames[0]["frame_id"] if frames else 0
    _ = [(f["id"], f["frame_id"]) for f in frames
         if abs(f["frame_id"] - frame_id) < cfg.max_frame_dist
         and (not ("sensor_id" in f) or f["sensor_id"] == 1)]
    anns, pre_anns = copy.deepcopy(anns), copy.deepcopy(pre_anns)
    if cur.flipped:
        for a in anns + pre_anns:
            b = a["bbox"]
            a["bbox"] = [width - b[0] - 1 - b[2], b[1], b[2], b[3]]
    trans_out = cur.matrix((W, H))
    trans_pre = pre_p.matrix((iw, ih))
    pre_p.matrix((W, H))                      # upstream's trans_output_pre, computed, unused
    pre_hm = np.zeros((1, ih, iw), np.float32)
    pre_cts, track_ids = [], []
    rng = np.random.default_rng(0)
    for a in pre_anns:
        b = np.array([a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                      a["bbox"][1] + a["bbox"][3]], np.float32)
        b[:2] = _affine(b[:2], trans_pre)
        b[2:] = _affine(b[2:], trans_pre)
        b[[0, 2]] = np.clip(b[[0, 2]], 0, iw - 1)
        b[[1, 3]] = np.clip(b[[1, 3]], 0, ih - 1)
        h, w = b[3] - b[1], b[2] - b[0]
        if h > 0 and w > 0:
            r = max(0, int(_radius(math.ceil(h), math.ceil(w))))
            ct = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2], np.float32)
            ct0 = ct.copy()
            ct[0] = ct[0] + rng.standard_normal() * cfg.hm_disturb * w
            ct[1] = ct[1] + rng.standard_normal() * cfg.hm_disturb * h
            conf = 1 if rng.random() > cfg.lost_disturb else 0
            ct_int = ct.astype(np.int32)
            pre_cts.append(ct / cfg.down_ratio if conf == 0 else ct0 / cfg.down_ratio)
            track_ids.append(a.get("track_id", -1))
            _draw_umich(pre_hm[0], ct_int, r, k=conf)
            if rng.random() < cfg.fp_disturb:
                ct2 = ct0.copy()
                ct2[0] = ct2[0] + rng.standard_normal() * 0.05 * w
                ct2[1] = ct2[1] + rng.standard_normal() * 0.05 * h
                _draw_umich(pre_hm[0], ct2.astype(np.int32), r, k=conf)
    M, C = cfg.max_objs, cfg.num_classes
    ret = {"hm": np.zeros((C, H, W), np.float32), "ind": np.zeros(M, np.int64),
           "cat": np.zeros(M, np.int64), "mask": np.zeros(M, np.float32)}
    gt_det = {"bboxes": [], "scores": [], "clses": [], "cts": []}
    for head in ("reg", "wh", "tracking"):
        ret[head] = np.zeros((M, 2), np.float32)
        ret[head + "_mask"] = np.zeros((M, 2), np.float32)
        gt_det[head] = []
    np.array([[1200, 0, width / 2, 0], [0, 1200, H / 2, 0], [0, 0, 1, 0]])   # _get_calib
    for k in range(min(len(anns), M)):
        a = anns[k]
        cls_id = 1
        b = _bbox_output(a["bbox"], trans_out, W, H)
        h, w = b[3] - b[1], b[2] - b[0]
        if h <= 0 or w <= 0:
            continue
        r = max(0, int(_radius(math.ceil(h), math.ceil(w))))
        ct = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2], np.float32)
        ct_int = ct.astype(np.int32)
        ret["cat"][k] = cls_id - 1
        ret["mask"][k] = 1
        ret["wh"][k] = 1. * w, 1. * h
        ret["wh_mask"][k] = 1
        ret["ind"][k] = ct_int[1] * W + ct_int[0]
        ret["reg"][k] = ct - ct_int
        ret["reg_mask"][k] = 1
        _draw_umich(ret["hm"][cls_id - 1], ct_int, r)
        gt_det["bboxes"].append(np.array([ct[0] - w / 2, ct[1] - h / 2, ct[0] + w / 2,
                                          ct[1] + h / 2], dtype=np.float32))
        gt_det["scores"].append(1)
        gt_det["clses"].append(cls_id - 1)
        gt_det["cts"].append(ct)
        if a["track_id"] in track_ids:
            ret["tracking_mask"][k] = 1
            ret["tracking"][k] = pre_cts[track_ids.index(a["track_id"])] - ct_int
            gt_det["tracking"].append(ret["tracking"][k])
        else:
            gt_det["tracking"].append(np.zeros(2, np.float32))
    ret["pre_hm"] = pre_hm
    return ret


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    memory.tune_malloc()        # the rows stand for a DataLoader worker, which tunes malloc
    folder = Path(tempfile.mkdtemp(prefix="bench_tracking_"))
    videos = [person_video(v, args.frames, num_people=15, image_size=(640, 480))
              for v in range(2)]
    data = to_coco_video(videos)
    rng = np.random.default_rng(0)
    for img in data["images"]:
        path = folder / img["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (9, 9), 3)
        cv2.imwrite(str(path), pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    (folder / "video.json").write_text(json.dumps(data))
    coco = CocoDataset.load(folder / "video.json")
    cfg = TrackingConfig(output_size=(128, 128), num_classes=1, max_objs=128,
                         hm_disturb=0.05, lost_disturb=0.4, fp_disturb=0.1)
    aug = AugmentConfig(train=True)
    no_images = TrackingDataset(coco, cfg, augment=aug)
    sparse = TrackingDataset(coco, cfg.replace(heatmaps="sparse"), augment=aug)
    with_images = TrackingDataset(coco, cfg, augment=aug, image_root=folder)
    n = len(no_images)
    params = [no_images.params(i) for i in range(n)]
    by_id = {img["id"]: img for img in data["images"]}
    anns = {i: [a for a in data["annotations"] if a["image_id"] == i] for i in by_id}
    ids = coco.image_ids

    def ours_targets(i):
        no_images.item(i, params[i])

    def ours_sparse(i):
        sparse.item(i, params[i])

    def ours_sample(i):
        with_images.item(i, params[i])

    video = {v["id"]: [img for img in data["images"] if img["video_id"] == v["id"]]
             for v in data["videos"]}

    def frames(i):
        img = by_id[ids[i]]
        return [img] + [f for f in video[img["video_id"]] if f is not img]

    def up_targets(i):
        p = params[i]
        upstream_targets(anns[ids[i]], anns[p.pre_image_id], 640, p, cfg, frames(i))

    def up_sample(i):
        p = params[i]
        upstream_style_input(str(folder / by_id[ids[i]]["file_name"]), p.current)
        upstream_style_input(str(folder / by_id[p.pre_image_id]["file_name"]), p.pre_params)
        upstream_targets(anns[ids[i]], anns[p.pre_image_id], 640, p, cfg, frames(i))

    spec = cfg.spec()

    def floor(i):
        for s in spec.values():
            np.zeros(s.shape, s.dtype)

    # each pair in alternating rounds: the machine's speed drifts, their ratio holds
    t = per_sample_each({"ours_targets": ours_targets, "ours_sparse": ours_sparse,
                         "upstream_targets": up_targets, "floor": floor}, n, args.repeat)
    t.update(per_sample_each({"ours_sample": ours_sample, "upstream_sample": up_sample}, n,
                             args.repeat))
    print("tracking sample, 15 persons per frame, 640x480 JPEGs -> 512x512 input, "
          "two frames, training draws")
    print(f"  targets:  ours {t['ours_targets'] * 1e6:8.0f} us   upstream "
          f"{t['upstream_targets'] * 1e6:8.0f} us   {t['upstream_targets'] / t['ours_targets']:5.1f}x"
          f"   (zeroed arrays alone: {t['floor'] * 1e6:.0f} us)")
    print(f"  the same, heatmaps='sparse' (hm and pre_hm as a draw list): "
          f"{t['ours_sparse'] * 1e6:.0f} us   "
          f"{t['upstream_targets'] / t['ours_sparse']:5.1f}x")
    # what the sparse form leaves to the training device, here rendered on the CPU
    from torch.utils.data import default_collate

    from centertargets.device import HeatmapRenderer

    batch = default_collate([sparse.item(i, params[i]) for i in range(16)])
    renderer = HeatmapRenderer(sparse.config)
    t_render = best_of(lambda: renderer(batch), args.repeat, 10) / 16
    print(f"  rendering them on the CPU (HeatmapRenderer, batch 16): {t_render * 1e6:.0f} us "
          f"per sample; targets + rendering {t['upstream_targets'] / (t['ours_sparse'] + t_render):.1f}x")
    print(f"  sample:   ours {t['ours_sample'] * 1e3:8.2f} ms   upstream "
          f"{t['upstream_sample'] * 1e3:8.2f} ms   {t['upstream_sample'] / t['ours_sample']:5.1f}x")


if __name__ == "__main__":
    main()
