"""The losses against CenterNet's formulation, same run, same data: speed, memory, accuracy.

1. ``MultiPoseLoss`` forward + backward: batch of 8, 128x128 output, 17 joints,
   targets from the encoder on synthetic scenes, random head logits.  The
   baseline is a direct transcription of CenterNet's formulation (clamped
   sigmoid, ``_neg_loss`` with float masks, ``RegL1Loss`` /
   ``RegWeightedL1Loss`` after a permute + gather), written for this
   benchmark.  Prints milliseconds per step, the ratio, and the largest
   difference between the two sets of loss stats.
2. Memory autograd keeps for backward by each focal variant on ``hm_hp``.
3. The ``hm`` focal loss at training size (ctdet, 16 x 80 x 128 x 128, logits
   around CenterNet's -2.19 prior): each value's relative error against the
   formula evaluated in float64, at 1, 2 and 4 threads, for CenterNet's
   float32 code, a float32 ``torch.dot`` accumulation (this package before it
   summed in float64) and the three focal variants; and forward + backward
   time of the fused loss against CenterNet's formulation.

Run: ``python benchmarks/bench_loss.py`` (``--quick`` skips part 3).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_of  # noqa: E402

from centertargets import MultiPoseConfig, MultiPoseEncoder
from centertargets.augment import AugmentParams, annotations_to_output
from centertargets.synthetic import person_scene
from centertargets.losses import MultiPoseLoss


def _sigmoid(x):
    return torch.clamp(x.sigmoid(), min=1e-4, max=1 - 1e-4)


def _neg_loss(pred, gt):
    pos_inds = gt.eq(1).float()
    neg_inds = gt.lt(1).float()
    neg_weights = torch.pow(1 - gt, 4)
    pos_loss = torch.log(pred) * torch.pow(1 - pred, 2) * pos_inds
    neg_loss = torch.log(1 - pred) * torch.pow(pred, 2) * neg_weights * neg_inds
    num_pos = pos_inds.float().sum()
    pos_loss = pos_loss.sum()
    neg_loss = neg_loss.sum()
    if num_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / num_pos


def _gather(feat, ind):
    feat = feat.permute(0, 2, 3, 1).contiguous()
    feat = feat.view(feat.size(0), -1, feat.size(3))
    ind = ind.unsqueeze(2).expand(ind.size(0), ind.size(1), feat.size(2))
    return feat.gather(1, ind)


def _reg_l1(output, mask, ind, target):
    pred = _gather(output, ind)
    mask = mask.unsqueeze(2).expand_as(pred).float()
    return F.l1_loss(pred * mask, target * mask, reduction="sum") / (mask.sum() + 1e-4)


def _reg_weighted_l1(output, mask, ind, target):
    pred = _gather(output, ind)
    mask = mask.float()
    return F.l1_loss(pred * mask, target * mask, reduction="sum") / (mask.sum() + 1e-4)


def centernet_multi_pose_loss(out, batch):
    hm_loss = _neg_loss(_sigmoid(out["hm"]), batch["hm"])
    hp_loss = _reg_weighted_l1(out["hps"], batch["hps_mask"], batch["ind"], batch["hps"])
    wh_loss = _reg_l1(out["wh"], batch["reg_mask"], batch["ind"], batch["wh"])
    off_loss = _reg_l1(out["reg"], batch["reg_mask"], batch["ind"], batch["reg"])
    hp_offset_loss = _reg_l1(out["hp_offset"], batch["hp_mask"], batch["hp_ind"],
                             batch["hp_offset"])
    hm_hp_loss = _neg_loss(_sigmoid(out["hm_hp"]), batch["hm_hp"])
    loss = hm_loss + 0.1 * wh_loss + off_loss + hp_loss + hm_hp_loss + hp_offset_loss
    return loss, {"loss": loss, "hm_loss": hm_loss, "hp_loss": hp_loss, "hm_hp_loss": hm_hp_loss,
                  "hp_offset_loss": hp_offset_loss, "wh_loss": wh_loss, "off_loss": off_loss}


def make_batch(cfg: MultiPoseConfig, B: int):
    enc = MultiPoseEncoder(cfg)
    ts = []
    for i in range(B):
        s = person_scene(i, num_people=10)
        boxes, kps = annotations_to_output(s.boxes_xywh, s.width,
                                           AugmentParams.centered(s.width, s.height),
                                           cfg.output_size, keypoints=s.keypoints,
                                           flip_idx=cfg.flip_idx)
        ts.append(enc.encode(boxes, kps))
    return {k: torch.from_numpy(np.stack([t[k] for t in ts])) for k in ts[0]}


def make_outputs(cfg: MultiPoseConfig, B: int):
    g = torch.Generator().manual_seed(0)
    return {name: torch.randn(head.shape(B), generator=g)
            for name, head in cfg.head_spec().items()}


def step(loss_fn, outputs, batch):
    leaves = {k: v.clone().requires_grad_() for k, v in outputs.items()}
    loss, stats = loss_fn(leaves, batch)
    loss.backward()
    return stats


def saved_for_backward_mb(fn, x: torch.Tensor) -> float:
    """Megabytes autograd keeps for backward while evaluating ``fn(x)`` (x itself excluded)."""
    leaf = x.clone().requires_grad_()
    sizes: list[int] = []

    def pack(t):
        if t.data_ptr() != leaf.data_ptr():
            sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(leaf)
    return sum(sizes) / 2 ** 20


def focal_memory(outputs, batch) -> None:
    from centertargets.losses import functional as LF

    x, gt = outputs["hm_hp"], batch["hm_hp"]
    B, J = gt.shape[:2]
    joint = torch.arange(J).repeat(batch["hp_ind"].shape[1] // J).expand(B, -1)  # class of slot k*J+j
    print(f"  memory kept for backward by the hm_hp focal loss ({x.numel() * 4 / 2 ** 20:.1f} MB map):")
    rows = {
        "CenterNet formulation": lambda a: _neg_loss(_sigmoid(a), gt),
        "focal='centernet' (fused)": lambda a: LF.centernet_focal_loss_with_logits(a, gt),
        "focal='logits'": lambda a: LF.focal_loss_with_logits(a, gt),
        "focal='fast' (hp_ind/hp_mask)": lambda a: LF.fast_focal_loss_with_logits(
            a, gt, batch["hp_ind"], batch["hp_mask"], joint),
    }
    for name, fn in rows.items():
        print(f"    {name:<34} {saved_for_backward_mb(fn, x):8.1f} MB")


def _focal64(x: torch.Tensor, gt: torch.Tensor) -> float:
    """CenterNet's focal loss evaluated in float64 (the reference for the accuracy table)."""
    x, gt = x.double(), gt.double()
    p = x.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos, neg = gt.eq(1), gt.lt(1)
    total = (torch.log(p) * (1 - p) ** 2)[pos].sum() + \
        (torch.log(1 - p) * p ** 2 * (1 - gt) ** 4)[neg].sum()
    return float(-total / max(int(pos.sum()), 1))


def _focal_f32_dot(x: torch.Tensor, gt: torch.Tensor) -> float:
    """The negative terms summed by a float32 ``torch.dot``, as this package did before."""
    p = x.sigmoid().clamp(1e-4, 1 - 1e-4)
    w = (1 - gt).clamp(min=0) ** 4 * p * p
    neg = torch.dot(torch.log(1 - p).reshape(-1), w.reshape(-1))
    pos = gt.eq(1)
    total = neg + (torch.log(p[pos]) * (1 - p[pos]) ** 2).sum()
    return float(-total / max(int(pos.sum()), 1))


def training_size_accuracy(repeat: int) -> None:
    from centertargets import CtdetConfig, CtdetEncoder
    from centertargets.coco import COCO_CATEGORY_IDS
    from centertargets.synthetic import detection_scene
    from centertargets.losses import functional as LF

    B, C = 16, 80
    cfg = CtdetConfig(output_size=(128, 128), num_classes=C, with_cat=True)
    enc = CtdetEncoder(cfg)
    ts = []
    for i in range(B):
        s = detection_scene(i, num_objects=30, image_size=(512, 512))
        boxes, _ = annotations_to_output(s.boxes_xywh, s.width, AugmentParams.centered(
            s.width, s.height), cfg.output_size)
        ts.append(enc.encode(boxes, np.searchsorted(COCO_CATEGORY_IDS, s.category_ids)))
    batch = {k: torch.from_numpy(np.stack([t[k] for t in ts])) for k in ts[0]}
    gt = batch["hm"]
    x = torch.randn(gt.shape, generator=torch.Generator().manual_seed(0)) * 1.5 - 2.19
    ref = _focal64(x, gt)
    rows = {
        "CenterNet's float32 code": lambda: float(_neg_loss(_sigmoid(x), gt)),
        "float32 torch.dot (before)": lambda: _focal_f32_dot(x, gt),
        "focal='centernet' (fused)": lambda: float(LF.centernet_focal_loss_with_logits(x, gt)),
        "focal='logits'": lambda: float(LF.focal_loss_with_logits(x, gt)),
        "focal='fast'": lambda: float(LF.fast_focal_loss_with_logits(
            x, gt, batch["ind"], batch["reg_mask"], batch["cat"])),
    }
    threads = (1, 2, 4)
    print(f"hm focal loss at training size {tuple(gt.shape)}, logits -2.19 +- 1.5: relative "
          "error against float64")
    print(f"    {'':<30}" + "".join(f"{f'{t} thread(s)':>14}" for t in threads))
    before = torch.get_num_threads()
    errors: dict[str, list[float]] = {name: [] for name in rows}
    for t in threads:
        torch.set_num_threads(t)
        for name, fn in rows.items():
            errors[name].append(abs(fn() - ref) / abs(ref))
    torch.set_num_threads(before)
    for name, errs in errors.items():
        print(f"    {name:<30}" + "".join(f"{e:14.1e}" for e in errs))

    def fused():
        a = x.clone().requires_grad_()
        LF.centernet_focal_loss_with_logits(a, gt).backward()

    def centernet():
        a = x.clone().requires_grad_()
        _neg_loss(_sigmoid(a), gt).backward()

    t_fused = best_of(fused, repeat, 1)
    t_ref = best_of(centernet, repeat, 1)
    print(f"  forward + backward ({torch.get_num_threads()} threads): CenterNet formulation "
          f"{t_ref * 1e3:.0f} ms, fused {t_fused * 1e3:.0f} ms, speed-up = {t_ref / t_fused:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--number", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="skip the training-size accuracy table")
    args = ap.parse_args()
    cfg = MultiPoseConfig(output_size=(128, 128))
    batch = make_batch(cfg, args.batch)
    outputs = make_outputs(cfg, args.batch)
    ours = MultiPoseLoss(cfg)
    a = step(ours, outputs, batch)
    b = step(centernet_multi_pose_loss, outputs, batch)
    worst = max(abs(a[k].item() - b[k].item()) / max(abs(b[k].item()), 1e-12) for k in b)
    t_ours = best_of(lambda: step(ours, outputs, batch), args.repeat, args.number)
    t_ref = best_of(lambda: step(centernet_multi_pose_loss, outputs, batch), args.repeat,
                    args.number)
    print(f"MultiPoseLoss forward+backward, batch {args.batch}, 128x128, 17 joints "
          f"(torch threads: {torch.get_num_threads()})")
    print(f"  CenterNet formulation  {t_ref * 1e3:8.2f} ms/step")
    print(f"  centertargets          {t_ours * 1e3:8.2f} ms/step   speed-up = {t_ref / t_ours:.2f}x")
    print(f"  largest relative difference between the loss stats: {worst:.2e}")
    focal_memory(outputs, batch)
    if not args.quick:
        training_size_accuracy(args.repeat)


if __name__ == "__main__":
    main()
