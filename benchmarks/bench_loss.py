"""MultiPoseLoss forward + backward against CenterNet's formulation, same run, same data.

Batch of 8, 128x128 output, 17 joints, targets from the encoder on synthetic
scenes, random head logits.  The baseline is a direct transcription of
CenterNet's formulation (clamped sigmoid, ``_neg_loss`` with float masks,
``RegL1Loss`` / ``RegWeightedL1Loss`` after a permute + gather), written for
this benchmark.  Prints milliseconds per step, the ratio, and the largest
difference between the two sets of loss stats.  Run: ``python benchmarks/bench_loss.py``.
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
from centertargets.pipeline import AugmentParams, annotations_to_output
from centertargets.synthetic import person_scene
from losses import MultiPoseLoss


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
    W, H = cfg.output_size
    J = cfg.num_joints
    heads = {"hm": 1, "wh": 2, "hps": 2 * J, "reg": 2, "hm_hp": J, "hp_offset": 2}
    return {k: torch.randn(B, c, H, W, generator=g) for k, c in heads.items()}


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
    from losses import functional as LF

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--number", type=int, default=5)
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


if __name__ == "__main__":
    main()
