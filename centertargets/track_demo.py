"""``centertargets track-demo``: CenterTrack's loop on a built-in video of drawn people.

1. Write short synthetic videos (JPEG frames of walking stick figures with known
   track ids) and a CenterTrack-style COCO video json.
2. Audit the videos: how many previous frames ``max_frame_dist`` offers, and how
   many objects have no match in the previous frame.
3. Load them through :class:`~centertargets.tracking.TrackingDataset` with
   training draws (crop, flip, previous-frame shift/scale, ``pre_hm``
   disturbances) in a DataLoader, and picture one sample.
4. Track each video with the oracle decode (perfect outputs rebuilt from the
   validation targets: ``hm``, ``reg``, ``wh``, ``tracking``) and CenterTrack's
   greedy tracker, and count matches, misses, false positives and identity
   switches against the annotations (the oracle must make no identity switch).
5. Pictures: the training sample, and the tracks over the frames.

Deterministic: fixed seeds and counts, no time budget.  Needs torch.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .augment import AugmentConfig
from .coco import CocoDataset
from .demo import draw_person_image
from .synthetic import person_video, to_coco_video
from .tasks.tracking import TrackingConfig
from .tracker import Detection, Tracker, mot_counts
from .tracking import TrackingDataset


def write_videos(out: Path, videos: int = 3, frames: int = 8, seed: int = 0,
                 image_size: tuple[int, int] = (320, 240)) -> Path:
    """Synthetic videos under ``out/video_XXX/`` and ``out/tracking_demo.json``."""
    seqs = [person_video(seed + v, frames, num_people=2 + v % 3, image_size=image_size)
            for v in range(videos)]
    data = to_coco_video(seqs)
    scenes = [s for v in seqs for s in v]
    for img, scene in zip(data["images"], scenes):
        path = out / img["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        # one background per video: the people move, the scene does not
        cv2.imwrite(str(path), draw_person_image(scene, seed + img["video_id"]),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
    path = out / "tracking_demo.json"
    path.write_text(json.dumps(data))
    return path


def oracle_heads(item: dict[str, np.ndarray], config: TrackingConfig) -> dict[str, Any]:
    """Perfect head outputs rebuilt from one item's targets: ``hm`` as probabilities and
    ``reg``, ``wh``, ``tracking`` written at each object's ``ind`` (torch, batch of 1)."""
    import torch

    W, H = config.output_size
    heads = {"hm": torch.from_numpy(item["hm"][None].copy())}
    on = item["mask"] > 0
    for name in ("reg", "wh", "tracking"):
        dense = np.zeros((2, H * W), np.float32)
        dense[:, item["ind"][on]] = item[name][on].T
        heads[name] = torch.from_numpy(dense.reshape(1, 2, H, W))
    return heads


def run_track_demo(out: str | Path = "centertargets-track-demo", videos: int = 3,
                   frames: int = 8, workers: int = 2, seed: int = 0, output_size: int = 64,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every step and return the figures (see the module docstring)."""
    from torch.utils.data import DataLoader

    from centertargets.losses.tracking import generic_decode

    from .decode import to_image
    from .visualize import render_tracking, render_tracks, save_png

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}

    path = write_videos(out, videos, frames, seed)
    log(f"1. wrote {videos} synthetic videos of {frames} frames and {path} (COCO with videos, "
        "frame ids and track ids)")
    coco = CocoDataset.load(path)
    cfg = TrackingConfig(output_size=(output_size, output_size), num_classes=1, max_objs=8,
                         hm_disturb=0.05, lost_disturb=0.4, fp_disturb=0.1)

    train = TrackingDataset(coco, cfg, augment=AugmentConfig(train=True), image_root=out,
                            seed=seed)
    audit = train.video_audit()
    results["audit"] = audit
    log("\n2. videos: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in audit.items()))

    loader = DataLoader(train, batch_size=8, shuffle=True, num_workers=workers,
                        drop_last=True, multiprocessing_context="fork" if workers else None)
    t0, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch["hm"])
    results["samples_per_s"] = n / (time.perf_counter() - t0)
    results["batch_keys"] = sorted(k for k in batch if k != "meta")
    log(f"\n3. DataLoader, {workers} workers, training draws, batches of 8: "
        f"{results['samples_per_s']:.0f} samples/s (two frames each); a batch holds "
        + ", ".join(results["batch_keys"]))
    sample_png = out / "tracking_sample.png"
    save_png(str(sample_png), render_tracking(train[0], cfg, scale=2))

    val = TrackingDataset(coco, TrackingConfig(output_size=cfg.output_size, num_classes=1,
                                               max_objs=8), image_root=out, seed=seed)
    counts_in: list[tuple[np.ndarray, ...]] = []
    strip_frames: list[np.ndarray] = []
    strip_tracks: list[list[tuple[int, Any]]] = []
    for vid, ids in sorted(val.videos.frames.items()):
        tracker = Tracker(new_thresh=0.3, max_age=3)
        order = sorted(ids, key=lambda i: val.videos.frame[i])
        for iid in order:
            index = val.indices.index(val.coco.image_ids.index(iid))
            item = val[index]
            dets = generic_decode(oracle_heads(item, cfg), K=cfg.max_objs)
            keep = dets["scores"][0] > 0.5
            meta = item["meta"]
            c, s = meta["center"], meta["scale"]
            detections = []
            for k in np.flatnonzero(keep.numpy()):
                ct = (float(dets["xs"][0, k]), float(dets["ys"][0, k]))
                box = tuple(float(v) for v in dets["bboxes"][0, k])
                tr = tuple(float(v) for v in dets["tracking"][0, k])
                detections.append(Detection(ct, box, 0, float(dets["scores"][0, k]), tr))
            tracks = [t for t in tracker.step(detections) if t.active > 0]
            boxes = np.array([t.bbox for t in tracks], np.float64).reshape(-1, 4)
            img_boxes = to_image(boxes.reshape(-1, 2), c, s[0], cfg.output_size).reshape(-1, 4)
            ann = val.frame(iid)
            gt = ann.boxes_xywh.copy()
            gt[:, 2:] += gt[:, :2]
            # ids are per video (each video has its own tracker): make them unique overall
            counts_in.append((gt, vid * 100000 + ann.fields["track_id"], img_boxes,
                              vid * 100000 + np.array([t.track_id for t in tracks])))
            if vid == 1:
                strip_frames.append(cv2.imread(str(out / val.coco.image(iid).file_name))[..., ::-1])
                strip_tracks.append([(t.track_id, b) for t, b in zip(tracks, img_boxes)])
    counts = mot_counts(counts_in)
    results["oracle"] = counts
    log(f"\n4. oracle decode + greedy tracker over {len(counts_in)} frames: {counts.gt} "
        f"ground-truth objects, {counts.matches} matched, {counts.misses} missed, "
        f"{counts.false_positives} false positives, {counts.id_switches} identity switches, "
        f"MOTA {counts.mota:.3f}")
    tracks_png = out / "tracks.png"
    save_png(str(tracks_png), render_tracks(strip_frames, strip_tracks))
    results["files"] = [str(path), str(sample_png), str(tracks_png)]
    log(f"\n5. pictures: {sample_png.name} (pre_img under pre_hm; input under hm with the "
        f"tracking arrows), {tracks_png.name} (video 1, one colour per track id)")
    log(f"\nDone in {time.perf_counter() - t_start:.0f} s.")
    return results
