"""``centertargets demo``: the whole pipeline on a built-in COCO-style keypoint dataset.

1. Write synthetic JPEG images of drawn people (boxes and 17 keypoints known
   exactly) and a standard ``person_keypoints`` json.
2. Audit the file (what the targets lose).
3. Load it through ``CenterNetDataset`` with training augmentation in a
   ``DataLoader`` with worker processes, and measure samples/s.
4. Train a tiny network on the CPU for a fixed number of steps with ``MultiPoseLoss``
   (seeded, one thread: the same losses and scores on every run of a machine).
5. Decode, map detections back to image pixels, and score them against the
   annotations: the oracle decode (perfect outputs rebuilt from the targets)
   and the tiny model, alone and with CenterNet's flip test; COCO's AP of each
   through pycocotools when it is installed.
6. Write pictures: targets over the image, ground truth vs decoded.

Needs torch (the ``torch`` extra).  ``run_demo`` returns the figures it prints.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .augment import AugmentConfig
from .coco import COCO_KEYPOINT_NAMES, COCO_SKELETON, CocoDataset
from .tasks import MultiPoseConfig
from .dataset import CenterNetDataset
from .synthetic import person_scene, to_coco

_LIMB_COLOURS = [(60, 180, 255), (255, 140, 60), (120, 230, 120), (230, 90, 200)]


def draw_person_image(scene: Any, seed: int) -> np.ndarray:
    """A BGR uint8 picture of a synthetic scene: textured background, stick figures whose
    labelled joints are exactly the annotated keypoints."""
    rng = np.random.default_rng(seed)
    H, W = scene.height, scene.width
    grey = rng.integers(70, 170, (H // 16 + 1, W // 16 + 1, 1))
    small = np.clip(grey + rng.integers(-12, 13, (H // 16 + 1, W // 16 + 1, 3)), 0,
                    255).astype(np.uint8)
    img = cv2.GaussianBlur(cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC), (0, 0), 3)
    for k, kp in enumerate(scene.keypoints):
        x, y, w, h = scene.boxes_xywh[k]
        thick = max(2, int(w / 12))
        colour = _LIMB_COLOURS[k % len(_LIMB_COLOURS)]
        vis = kp[:, 2] > 0
        for a, b in COCO_SKELETON:
            if vis[a] and vis[b]:
                cv2.line(img, (int(kp[a, 0]), int(kp[a, 1])), (int(kp[b, 0]), int(kp[b, 1])),
                         colour, thick, cv2.LINE_AA)
        for j in np.flatnonzero(vis):
            cv2.circle(img, (int(kp[j, 0]), int(kp[j, 1])), thick, (250, 250, 250), -1,
                       cv2.LINE_AA)
    return img


def write_dataset(out: Path, images: int, seed: int = 0,
                  image_size: tuple[int, int] = (320, 240)) -> Path:
    """Synthetic images under ``out/images`` and ``out/person_keypoints_demo.json``."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    scenes = [person_scene(seed + i, num_people=1 + i % 4, image_size=image_size,
                           p_occluded=0.1, p_unlabelled=0.05, inside=True)
              for i in range(images)]
    data = to_coco(scenes)
    for img, scene in zip(data["images"], scenes):
        img["file_name"] = "images/" + img["file_name"]
        cv2.imwrite(str(out / img["file_name"]), draw_person_image(scene, seed + img["id"]),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
    path = out / "person_keypoints_demo.json"
    path.write_text(json.dumps(data))
    return path


def _tiny_model(cfg: MultiPoseConfig, width: int = 32):
    from torch import nn

    from centertargets.losses import build_heads

    class TinyPoseNet(nn.Module):
        """Stride-4 conv trunk (input / 4 = the output map) and the config's heads."""

        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(
                nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.ReLU())
            self.heads = build_heads(cfg, width, head_conv=0)   # CenterNet's biases

        def forward(self, x):
            return self.heads(self.trunk(x))

    return TinyPoseNet()


def _mean(values: list[float]) -> float:
    """Mean of the values that are not NaN (NaN when none is)."""
    v = [x for x in values if x == x]
    return float(np.mean(v)) if v else float("nan")


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (N, 4) against b (M, 4), x1, y1, x2, y2 -> (N, M)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def score_detections(dets: np.ndarray, gt_boxes: np.ndarray, gt_kps: np.ndarray,
                     threshold: float = 0.3) -> dict[str, float]:
    """Detections (K, 6 + 2J) in image pixels against annotations: for each annotated person,
    the best IoU of a detection scoring above ``threshold``; recall at IoU 0.5; the mean
    distance of labelled joints of the matched detections (pixels)."""
    keep = dets[dets[:, 4] > threshold]
    if len(gt_boxes) == 0:
        return {"mean_iou": float("nan"), "recall@0.5": float("nan"), "joint_error_px": float("nan")}
    if len(keep) == 0:
        return {"mean_iou": 0.0, "recall@0.5": 0.0, "joint_error_px": float("nan")}
    iou = _iou(gt_boxes, keep[:, :4])
    best = iou.argmax(1)
    best_iou = iou.max(1)
    errs = []
    J = gt_kps.shape[1]
    for g in np.flatnonzero(best_iou >= 0.5):
        joints = keep[best[g], 5:5 + 2 * J].reshape(J, 2)
        lab = gt_kps[g, :, 2] > 0
        errs += list(np.linalg.norm(joints[lab] - gt_kps[g, lab, :2], axis=1))
    return {"mean_iou": float(best_iou.mean()), "recall@0.5": float((best_iou >= 0.5).mean()),
            "joint_error_px": float(np.mean(errs)) if errs else float("nan")}


def run_demo(out: str | Path = "centertargets-demo", images: int = 48, workers: int = 2,
             train_steps: int = 150, seed: int = 0, output_size: int = 64,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every step and return the figures (see the module docstring)."""
    import torch
    from torch.utils.data import DataLoader

    from centertargets.losses import MultiPoseLoss

    from .audit import audit, print_audit
    from .decode import (MultiPoseDecoder, detections_to_image, flip_test, multi_pose_decode,
                         oracle_outputs)
    from .evaluate import coco_results, evaluate
    from .visualize import (network_input_to_rgb, render_detections, render_prediction,
                            render_targets, save_png)

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    results: dict[str, Any] = {}

    # 1. the dataset
    path = write_dataset(out, images, seed)
    written += [path, out / "images"]
    log(f"1. wrote {images} synthetic images and {path} (COCO person keypoints, 17 joints)")
    coco = CocoDataset.load(path)
    cfg = MultiPoseConfig(output_size=(output_size, output_size), max_objs=8)

    # 2. audit
    log("\n2. audit (what the targets lose, with training augmentation):")
    totals, worst = audit(coco, cfg, train=True)
    print_audit(totals, worst, cfg, len(coco), train=True, top=3, log=log)
    results["audit"] = totals

    # 3. the DataLoader
    train = CenterNetDataset(coco, cfg, augment=AugmentConfig(train=True), image_root=out,
                             seed=seed)
    loader = DataLoader(train, batch_size=8, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, drop_last=True,
                        multiprocessing_context="fork" if workers else None)
    for _ in loader:                               # start the workers
        pass
    t0, n = time.perf_counter(), 0
    for epoch in range(2):
        train.set_epoch(epoch + 1)
        for batch in loader:
            n += len(batch["hm"])
    rate = n / (time.perf_counter() - t0)
    results["samples_per_s"] = rate
    log(f"\n3. DataLoader, {workers} workers, training augmentation (crop, flip, colour), "
        f"{cfg.output_size[0] * 4}px input: {rate:.0f} samples/s")

    # 4. training: a fixed number of steps, one thread, seeded: the same numbers on every run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = _tiny_model(cfg)
    criterion = MultiPoseLoss(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(seed)
    steady = DataLoader(train, batch_size=8, shuffle=True, num_workers=workers, drop_last=True,
                        generator=order,
                        multiprocessing_context="fork" if workers else None)
    log(f"\n4. training a tiny network on the CPU for {train_steps} steps (MultiPoseLoss, "
        "batches of 8, one thread, seeded):")
    losses: list[float] = []
    epoch = 3
    try:
        while len(losses) < train_steps:
            train.set_epoch(epoch)
            epoch += 1
            for batch in steady:
                loss, stats = criterion(model(batch["input"]), batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                if len(losses) % 25 == 1:
                    log(f"   step {len(losses):4d}  loss {losses[-1]:8.3f}  " + "  ".join(
                        f"{k} {v.item():.3f}" for k, v in stats.items() if k != "loss"))
                if len(losses) == train_steps:
                    break
    finally:
        torch.set_num_threads(threads)
    k = max(1, min(5, len(losses) // 4))
    results["loss_first"], results["loss_last"] = float(np.mean(losses[:k])), \
        float(np.mean(losses[-k:]))
    results["steps"] = len(losses)
    results["losses"] = losses
    log(f"   loss {results['loss_first']:.3f} -> {results['loss_last']:.3f} in {len(losses)} "
        "steps (mean of the first and last few)")

    # 5. decode and score, in image pixels
    val = CenterNetDataset(coco, cfg, image_root=out)
    model.eval()
    names = ("oracle", "model", "model+flip")
    scores: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    coco_res: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    pictures: dict[str, np.ndarray] = {}
    n_val = min(len(val), 16)
    for i in range(n_val):
        item = val[i]
        ann = val.annotations(i)
        gt = ann.boxes_xywh.copy()
        gt[:, 2:] += gt[:, :2]
        o = oracle_outputs(item, cfg)                # joints straight from hps (no snapping)
        oracle = multi_pose_decode(o["hm"], o["wh"], o["hps"], o.get("reg"), K=cfg.max_objs)
        x = torch.from_numpy(item["input"])[None]
        with torch.no_grad():
            pred = MultiPoseDecoder(cfg, K=cfg.max_objs)(model(x))
            both = flip_test(model(torch.cat([x, x.flip(3)])), val.config)   # upstream's
            pred_flip = MultiPoseDecoder(cfg, K=cfg.max_objs, apply_sigmoid=False)(both)
        meta = item["meta"]
        for name, dets in zip(names, (oracle, pred, pred_flip)):
            img_dets = detections_to_image(dets[0], meta, cfg.flip_idx or ())
            scores[name].append(score_detections(img_dets, gt, ann.keypoints))
            coco_res[name] += coco_results(img_dets, ann.image_id, coco.category_ids)
            if i == 0 and name == "model":
                with torch.no_grad():
                    raw = model(x)
                pictures["prediction"] = render_prediction(
                    item, {k: raw[k][0].sigmoid().numpy() for k in ("hm", "hm_hp")}, scale=4,
                    image=network_input_to_rgb(item["input"]))
            if i == 0 and name != "model+flip":
                rgb = cv2.imread(str(out / ann.file_name))[..., ::-1]
                keep = img_dets[img_dets[:, 4] > 0.3]
                pictures[name] = render_detections(
                    rgb, gt, ann.keypoints, keep[:, :4], np.concatenate(
                        [keep[:, 5:39].reshape(-1, 17, 2), np.ones((len(keep), 17, 1))], 2),
                    COCO_SKELETON, title=f"decoded ({name})")
    log(f"\n5. decoded detections mapped back to image pixels, against the annotations "
        f"({n_val} validation images):")
    for name in names:
        mean = {k: _mean([s[k] for s in scores[name]]) for k in scores[name][0]}
        results[name] = mean
        log(f"   {name:10s} mean best IoU {mean['mean_iou']:.3f}, recall@0.5 "
            f"{mean['recall@0.5']:.2f}, joint error {mean['joint_error_px']:.2f} px")
    try:
        ids = [val.annotations(i).image_id for i in range(n_val)]
        for name in names:
            ap = evaluate(path, coco_res[name], image_ids=ids)
            results[f"{name}_ap"] = {k: v["AP"] for k, v in ap.items()}
        log("   COCO AP (pycocotools, IoU / OKS 0.5:0.95): " + "; ".join(
            f"{n} boxes {results[f'{n}_ap']['bbox']:.3f}, keypoints "
            f"{results[f'{n}_ap']['keypoints']:.3f}" for n in names))
    except ImportError:
        log("   (COCO AP needs pycocotools: pip install 'centertargets[eval]')")

    # 6. pictures
    item = train.item(0, train.params(0))
    targets_png = out / "targets.png"
    save_png(str(targets_png), render_targets(item, cfg, scale=4,
                                              image=network_input_to_rgb(item["input"]),
                                              skeleton=COCO_SKELETON,
                                              joint_names=COCO_KEYPOINT_NAMES))
    written.append(targets_png)
    for name, pic in pictures.items():
        p = out / (f"{name}.png" if name == "prediction" else f"detections_{name}.png")
        save_png(str(p), pic)
        written.append(p)
    results["files"] = [str(p) for p in written]
    log(f"\n6. pictures: targets over the augmented input ({targets_png.name}); ground truth vs "
        "decoded (detections_oracle.png, detections_model.png); the tiny model's hm and hm_hp "
        "beside their targets (prediction.png)")
    log(f"\nDone in {time.perf_counter() - t_start:.0f} s. Files written:")
    for p in written:
        log(f"   {p}")
    return results
