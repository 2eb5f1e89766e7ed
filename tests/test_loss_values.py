"""Loss values against CenterNet's formulas evaluated in float64, on any thread count and CPU kernel.

The float64 formulas are in ``float64_losses.py``, written from the
definitions without the package's code.  Tolerance: 1e-6 relative, the
project's contract for logged loss values.  Why that is enough and not
loose: the package computes each term in float32 (a few float32 roundings,
about 1e-7 relative each, of random sign) and sums in float64, so the total
is within about 1e-7 of the float64 formula; a float32 reduction instead
moves by 1e-5 to 1e-3 with the CPU's vector width and the thread count,
which these tests would catch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import float64_losses as F64
from centertargets import CtdetConfig, CtdetEncoder, MultiPoseConfig, MultiPoseEncoder
from centertargets.augment import AugmentParams, annotations_to_output
from centertargets.coco import COCO_CATEGORY_IDS
from centertargets.synthetic import detection_scene
from centertargets.losses import LossOptions, make_loss
from centertargets.losses import functional as LF

from conftest import random_boxes, random_keypoints

RTOL = 1e-6


def _assert_stats(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k, w in want.items():
        g = float(got[k])
        assert got[k].dtype == torch.float32, k
        assert abs(g - w) <= RTOL * abs(w) + 1e-9, f"{k}: got {g!r}, float64 formula {w!r}"


def _outputs(cfg, B: int, seed: int) -> dict[str, torch.Tensor]:
    """Plausible head outputs: heatmap logits around CenterNet's -2.19 prior, sizes near 10."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, head in cfg.head_spec().items():
        x = torch.randn(head.shape(B), generator=g)
        if head.kind == "heatmap":
            x = x * 1.5 - 2.19
        elif name == "wh":
            x = x * 3 + 10
        elif head.loss == "mse":
            x = torch.rand(head.shape(B), generator=g)
        out[name] = x
    return out


def _batch(rng, cfg, B: int = 2) -> dict[str, torch.Tensor]:
    W, H = cfg.output_size
    ts = []
    for _ in range(B):
        boxes = random_boxes(rng, 6, W, H, min_side=3)
        if cfg.task == "ctdet":
            ts.append(CtdetEncoder(cfg).encode(boxes, rng.integers(0, cfg.num_classes, 6)))
        else:
            ts.append(MultiPoseEncoder(cfg).encode(boxes, random_keypoints(rng, boxes,
                                                                           cfg.num_joints)))
    return {k: torch.from_numpy(np.stack([t[k] for t in ts])) for k in ts[0]}


def _np(d: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in d.items()}


CTDET = {
    "default": ({}, {}),
    "cat_spec_wh": ({"cat_spec_wh": True}, {}),
    "dense_wh": ({"dense_wh": True}, {}),
    "msra": ({"heatmap": "msra"}, {}),
    "sl1": ({}, {"reg_loss": "sl1"}),
    "norm_wh": ({}, {"norm_wh": True}),
    "norm_wh+cat_spec_wh": ({"cat_spec_wh": True}, {"norm_wh": True}),
    "logits": ({}, {"focal": "logits"}),
    "fast": ({"with_cat": True}, {"focal": "fast"}),
    "no-reg": ({"reg_offset": False}, {}),
    "weights": ({}, {"hm_weight": 2.0, "wh_weight": 0.5, "off_weight": 3.0}),
}


@pytest.mark.parametrize("name", list(CTDET))
def test_ctdet_loss_equals_float64_formula(name, threads, rng):
    cfg_kw, opt_kw = CTDET[name]
    cfg = CtdetConfig(output_size=(40, 32), num_classes=3, max_objs=10, **cfg_kw)
    opts = LossOptions(**opt_kw)
    batch = _batch(rng, cfg)
    out = _outputs(cfg, 2, seed=len(name))
    _, stats = make_loss(cfg, opts)(out, batch)
    want = F64.ctdet_loss(_np(out), _np(batch), msra=cfg.heatmap == "msra", focal_kind=opts.focal,
                          reg_loss=opts.reg_loss, norm_wh=opts.norm_wh,
                          weights=(opts.hm_weight, opts.wh_weight, opts.off_weight))
    if not cfg.reg_offset:
        assert "reg" not in batch
    _assert_stats(stats, want)


MULTI_POSE = {
    "default": ({}, {}),
    "dense_hp": ({"dense_hp": True}, {}),
    "msra": ({"heatmap": "msra"}, {}),
    "sl1": ({}, {"reg_loss": "sl1"}),
    "logits": ({}, {"focal": "logits"}),
    "fast": ({}, {"focal": "fast"}),
    "fast-hm-only": ({}, {"focal": "fast", "focal_hm_hp": "centernet"}),
    "no-offsets": ({"reg_offset": False, "reg_hp_offset": False}, {}),
    "no-hm_hp": ({"hm_hp": False}, {}),
}


@pytest.mark.parametrize("name", list(MULTI_POSE))
def test_multi_pose_loss_equals_float64_formula(name, threads, rng):
    cfg_kw, opt_kw = MULTI_POSE[name]
    cfg = MultiPoseConfig(output_size=(32, 32), max_objs=8, **cfg_kw)
    opts = LossOptions(**opt_kw)
    batch = _batch(rng, cfg)
    out = _outputs(cfg, 2, seed=len(name))
    _, stats = make_loss(cfg, opts)(out, batch)
    t = _np(batch)
    want = F64.multi_pose_loss(_np(out), t, msra=cfg.heatmap == "msra", focal_kind=opts.focal,
                               reg_loss=opts.reg_loss)
    if opts.focal_hm_hp == "centernet":     # the joints keep the standard focal loss
        want_hm_hp = F64.focal(_np(out)["hm_hp"], t["hm_hp"])
        want["loss"] += want_hm_hp - want["hm_hp_loss"]
        want["hm_hp_loss"] = want_hm_hp
    _assert_stats(stats, want)


# --- training size -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def training_batch():
    """A ctdet batch at training size: 16 images, 80 classes, 128 x 128 output map."""
    cfg = CtdetConfig(output_size=(128, 128), num_classes=80, with_cat=True)
    enc = CtdetEncoder(cfg)
    ts = []
    for i in range(16):
        s = detection_scene(i, num_objects=30, image_size=(512, 512))
        boxes, _ = annotations_to_output(s.boxes_xywh, s.width,
                                         AugmentParams.centered(s.width, s.height), (128, 128))
        ts.append(enc.encode(boxes, np.searchsorted(COCO_CATEGORY_IDS, s.category_ids)))
    return {k: torch.from_numpy(np.stack([t[k] for t in ts])) for k in ("hm", "ind", "reg_mask",
                                                                          "cat")}


@pytest.mark.parametrize("mean,std", [(-2.19, 1.5), (-4.0, 1.0)], ids=["prior", "confident"])
def test_focal_values_at_training_size_match_float64_on_any_thread_count(mean, std,
                                                                         training_batch):
    b = training_batch
    gt = b["hm"]
    logits = torch.randn(gt.shape, generator=torch.Generator().manual_seed(7)) * std + mean
    variants = {
        "centernet": lambda x: LF.centernet_focal_loss_with_logits(x, gt),
        "logits": lambda x: LF.focal_loss_with_logits(x, gt),
        "fast": lambda x: LF.fast_focal_loss_with_logits(x, gt, b["ind"], b["reg_mask"], b["cat"]),
    }
    before = torch.get_num_threads()
    try:
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            x = logits.to(dtype)
            x64 = x.double().numpy()        # the formula sees exactly the values the loss sees
            for kind, fn in variants.items():
                want = F64.focal(x64, gt.numpy(), kind, b["ind"].numpy(), b["reg_mask"].numpy(),
                                 b["cat"].numpy())
                for n in (1, 2, 4):
                    torch.set_num_threads(n)
                    got = fn(x)
                    assert got.dtype == torch.float32
                    assert abs(got.item() - want) <= RTOL * abs(want), (kind, dtype, n,
                                                                        got.item(), want)
    finally:
        torch.set_num_threads(before)


_OTHER_CPU = r"""
import json, sys, torch
from centertargets.losses import functional as LF
x, gt, ind, mask, cat = torch.load(sys.argv[1])
print(json.dumps({
    "capability": torch.backends.cpu.get_cpu_capability(),
    "centernet": LF.centernet_focal_loss_with_logits(x, gt).item(),
    "logits": LF.focal_loss_with_logits(x, gt).item(),
    "fast": LF.fast_focal_loss_with_logits(x, gt, ind, mask, cat).item(),
}))
"""


@pytest.mark.parametrize("capability", ["default", "avx2"])
def test_focal_values_are_the_same_with_other_cpu_kernels(capability, training_batch, tmp_path):
    """torch picks its vectorised kernels by CPU (``ATEN_CPU_CAPABILITY`` forces a narrower
    set): a float32 reduction changes with them, the float64-accumulated losses do not."""
    b = {k: v[:4] for k, v in training_batch.items()}      # 4 x 80 x 128 x 128: several chunks
    x = torch.randn(b["hm"].shape, generator=torch.Generator().manual_seed(3)) * 1.5 - 2.19
    data = tmp_path / "batch.pt"
    torch.save((x, b["hm"], b["ind"], b["reg_mask"], b["cat"]), data)
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability, OMP_NUM_THREADS="1")
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", _OTHER_CPU, str(data)], env=env, cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    for kind in ("centernet", "logits", "fast"):
        want = F64.focal(x.double().numpy(), b["hm"].numpy(), kind, b["ind"].numpy(),
                         b["reg_mask"].numpy(), b["cat"].numpy())
        assert abs(got[kind] - want) <= RTOL * abs(want), (got["capability"], kind)
