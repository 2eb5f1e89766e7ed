"""Seeded fuzzing of the losses and decoders: random configs, targets and hostile outputs.

Each case encodes two random scenes (empty ones included) for a random
config, makes network outputs with +-inf and 1e4 logits in float32, float16
or bfloat16, and checks that the loss, every stat and every gradient is
finite, and that the decoder's rows have the right shape, classes in range
and scores in [0, 1].  ``test_robustness.py`` runs a CI-sized batch; the
long run is

    NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(mktemp -d) python tests/fuzz_losses.py --cases 10000
"""

from __future__ import annotations


import numpy as np
import torch

import fuzz_encoders
from centertargets import make_encoder, tasks
from centertargets.losses import LossOptions, make_loss

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _targets(rng: np.random.Generator, cfg, enc) -> dict[str, np.ndarray]:
    boxes, classes, kps = fuzz_encoders.random_inputs(rng, cfg)
    boxes = np.sort(np.nan_to_num(boxes, nan=1.0).reshape(-1, 2, 2), axis=1).reshape(-1, 4)
    classes = np.clip(classes, 0, cfg.num_classes - 1)
    if cfg.task == "tracking":
        return enc.encode(boxes, classes + 1, **kps)
    if cfg.task == "exdet":
        return enc.encode(np.nan_to_num(kps, nan=1.0), classes)
    if cfg.task == "ddd":
        return enc.encode(boxes, classes, **kps)
    if kps is None:
        return enc.encode(boxes, classes)
    kps[..., 2] = np.clip(kps[..., 2], 0, 2)
    return enc.encode(boxes, kps, classes)


def one_case(rng: np.random.Generator, case: int) -> str:
    """One random case; returns the dtype's name.  Raises AssertionError on a broken invariant."""
    cfg = fuzz_encoders.random_config(rng)
    if cfg.task == "multi_pose" and cfg.heatmap == "msra" and cfg.dense_hp:
        cfg = cfg.replace(dense_hp=False)
    enc = make_encoder(cfg)
    ts = [_targets(rng, cfg, enc) for _ in range(2)]
    batch = {k: torch.from_numpy(np.stack([t[k] for t in ts])) for k in ts[0]}
    dtype = _DTYPES[case % 3]
    out = {}
    for name, head in cfg.head_spec().items():
        x = torch.from_numpy(rng.normal(0, 5, head.shape(2)).astype(np.float32))
        flat = x.view(-1)
        flat[rng.integers(0, flat.numel(), 3)] = float("inf")
        flat[rng.integers(0, flat.numel(), 3)] = float("-inf")
        flat[rng.integers(0, flat.numel(), 3)] = 1e4
        out[name] = x.to(dtype).requires_grad_()
    focal = ("centernet", "logits", "fast")[case % 3]
    if focal == "fast" and (cfg.num_classes > 1 and not cfg.with_cat
                            or cfg.task in ("exdet", "ddd")):
        focal = "centernet"
    opts = None if cfg.task == "tracking" else LossOptions(focal=focal, focal_hm_hp="centernet")
    with torch.no_grad():                  # infinite regression outputs make an infinite L1
        for k, h in cfg.head_spec().items():
            if h.kind == "regression":
                out[k].nan_to_num_(posinf=1e4, neginf=-1e4)
    loss, stats = make_loss(cfg, opts)(out, batch)
    loss.backward()
    assert torch.isfinite(loss), (case, cfg, focal, dtype)
    assert all(torch.isfinite(v) for v in stats.values()), (case, stats)
    assert all(torch.isfinite(v.grad.float()).all() for v in out.values()), case
    K = int(min(5, cfg.output_size[0] * cfg.output_size[1]))
    dec = tasks.unit_of(cfg).decoder_class()(cfg, K=K)
    dets = dec({k: v.detach().float().nan_to_num(posinf=50, neginf=-50) for k, v in out.items()})
    if cfg.task == "tracking":              # generic_decode: a dict of (B, K, ...) tensors
        assert dets["scores"].shape == (2, K) and dets["tracking"].shape == (2, K, 2), case
        assert ((dets["scores"] >= 0) & (dets["scores"] <= 1)).all(), case
        assert ((dets["clses"] >= 0) & (dets["clses"] < cfg.num_classes)).all(), case
        return str(dtype).removeprefix("torch.")
    J = getattr(cfg, "num_joints", 0)
    width = {"ctdet": 6, "multi_pose": 6 + 2 * J, "exdet": 14,
             "ddd": 18 if getattr(cfg, "reg_bbox", False) else 16}[cfg.task]
    rows = min(1000, K ** 4) if cfg.task == "exdet" else K
    assert dets.shape == (2, rows, width), (case, dets.shape)
    scores, cls = dets[..., 2 if cfg.task == "ddd" else 4], dets[..., -1]
    assert ((cls >= 0) & (cls < cfg.num_classes)).all(), case
    if cfg.task == "exdet":                     # a broken grouping rule subtracts 1 per rule
        assert (scores <= 1).all() and torch.isfinite(dets).all(), case
    elif cfg.head_spec()["hm"].kind == "heatmap":      # MSRA heatmaps are raw regressions
        assert ((scores >= 0) & (scores <= 1)).all(), case
    return str(dtype).removeprefix("torch.")


def run(cases: int, seed: int = 0) -> dict[str, int]:
    """Run ``cases`` random cases; counts per output dtype."""
    rng = np.random.default_rng(seed)
    counts = {"cases": 0, "float32": 0, "float16": 0, "bfloat16": 0}
    for case in range(cases):
        counts[one_case(rng, case)] += 1
        counts["cases"] += 1
    return counts


if __name__ == "__main__":
    fuzz_encoders.main(run, __doc__)
