"""Seeded fuzzing of the encoders: random configs and random (valid or hostile) inputs.

Every case either raises a ValueError/TypeError that names its argument, or
returns targets that satisfy the invariants below.  ``test_robustness.py``
runs a CI-sized batch; the long run is

    NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(mktemp -d) python tests/fuzz_encoders.py --cases 10000

(numba then checks every array index in the kernels: an out-of-bounds access
raises IndexError, which the run counts as a failure).
"""

from __future__ import annotations

import argparse
import warnings
import sys
import time

import numpy as np

from centertargets import (CtdetConfig, CtdetEncoder, DddConfig, DddEncoder, ExdetConfig,
                           ExdetEncoder, MultiPoseConfig, MultiPoseEncoder, RadiusConfig,
                           TrackingConfig, TrackingEncoder)


def random_config(rng: np.random.Generator):
    W, H = (int(v) for v in rng.integers(1, 48, 2))
    common = dict(output_size=(W, H), max_objs=int(rng.integers(1, 12)),
                  heatmap=str(rng.choice(["umich", "msra", "elliptic"])),
                  msra_sigma=float(min(int(rng.integers(1, 4)), max(W, H))),
                  radius=RadiusConfig(str(rng.choice(["centernet", "corrected"])),
                                      float(rng.uniform(0.3, 0.9)),
                                      int(rng.integers(0, min(W, H, 4) + 1))),
                  reg_offset=bool(rng.random() < 0.8), with_cat=bool(rng.random() < 0.3))
    task = rng.random()
    if task < 0.1:
        C = int(rng.integers(1, 4))
        return TrackingConfig(
            num_classes=C, num_joints=int(rng.integers(0, 4)) * int(rng.random() < 0.3),
            ltrb=bool(rng.random() < 0.5), ltrb_amodal=bool(rng.random() < 0.5),
            ddd=bool(rng.random() < 0.3), velocity=bool(rng.random() < 0.3),
            nuscenes_att=bool(rng.random() < 0.3), pre_hm=bool(rng.random() < 0.8),
            hm_disturb=float(rng.choice([0.0, 0.05, 10.0])),
            lost_disturb=float(rng.uniform(0, 1)), fp_disturb=float(rng.uniform(0, 1)),
            down_ratio=int(rng.choice([1, 2, 4])), outside_ignore=str(rng.choice(
                ["strip", "skip"])), **dict(common, heatmap="umich", reg_offset=True))
    if task < 0.2:
        C = int(rng.integers(1, 4))
        return DddConfig(num_classes=C, category_map=None, reg_bbox=bool(rng.random() < 0.8),
                         rect_mask=bool(rng.random() < 0.3),
                         **dict(common, heatmap=str(rng.choice(["umich", "msra"]))))
    if task < 0.3:
        return ExdetConfig(num_classes=int(rng.integers(1, 5)),
                           agnostic_ex=bool(rng.random() < 0.3),
                           **dict(common, heatmap=str(rng.choice(["umich", "msra"]))))
    if task < 0.65:
        kind = int(rng.integers(3))
        return CtdetConfig(num_classes=int(rng.integers(1, 5)), cat_spec_wh=kind == 1,
                           dense_wh=kind == 2, **common)
    J = int(rng.integers(1, 6))
    return MultiPoseConfig(num_joints=J, num_classes=int(rng.integers(1, 3)),
                           hm_hp=bool(rng.random() < 0.8), reg_hp_offset=bool(rng.random() < 0.8),
                           dense_hp=bool(rng.random() < 0.2),
                           no_keypoints=str(rng.choice(["centernet", "ignore"])),
                           occluded_joints=str(rng.choice(["centernet", "ignore_in_hm_hp"])),
                           rotation=str(rng.choice(["centernet", "corners"])), **common)


def random_inputs(rng: np.random.Generator, cfg):
    W, H = cfg.output_size
    n = int(rng.integers(0, cfg.max_objs + 4))
    scale = float(rng.choice([1.0, 1.0, 1.0, 50.0, 1e6]))
    c = rng.uniform(-0.3, 1.3, (n, 2)) * (W, H)
    s = np.abs(rng.normal(0, 0.3, (n, 2))) * (W, H) * rng.choice([0.0, 1.0, 1.0, 1.0], (n, 1))
    boxes = np.concatenate([c - s, c + s], 1) * (scale if rng.random() < 0.1 else 1.0)
    if rng.random() < 0.05 and n:
        boxes[int(rng.integers(n)), int(rng.integers(4))] = np.nan
    classes = rng.integers(0, cfg.num_classes, n)
    if rng.random() < 0.05 and n:
        classes[int(rng.integers(n))] = cfg.num_classes          # out of range
    kps = None
    if cfg.task == "tracking":              # cls_ids: 1..C, ignore 0 / -c, skipped > C / <= -999
        C = cfg.num_classes
        codes = np.array([0, C + 1, -999, -5000] + [-c for c in range(1, C + 1)])
        classes = np.where(rng.random(n) < 0.25, rng.choice(codes, n), classes + 1)
        if rng.random() < 0.05 and n:
            classes[int(rng.integers(n))] = -C - 1                   # neither: refused
        P = int(rng.integers(0, 8))
        iw, ih = cfg.input_size
        pc = rng.uniform(-0.3, 1.3, (P, 2)) * (iw, ih)
        ps = np.abs(rng.normal(0, 0.3, (P, 2))) * (iw, ih)
        disturb = np.concatenate([rng.normal(0, 1, (P, 2)) * rng.choice([1.0, 1e3], (P, 1)),
                                  rng.random((P, 2)), rng.normal(0, 1, (P, 2))], 1)
        kps = {"track_ids": rng.integers(0, 6, n).astype(float),
               "pre_boxes": np.concatenate([pc - ps, pc + ps], 1).astype(np.float32),
               "pre_classes": rng.choice(np.concatenate([codes, np.arange(1, C + 1)]), P),
               "pre_track_ids": rng.integers(-1, 6, P).astype(float),
               "pre_disturb": np.clip(disturb, -1e3, 1e3),
               "crowd": rng.random(n) < 0.1, "alpha": rng.uniform(-4, 4, n),
               "depth": rng.uniform(1, 80, n), "dim": rng.uniform(0.3, 5, (n, 3)),
               "amodel": rng.uniform(-0.5, 1.5, (n, 2)) * (W, H),
               "velocity": rng.normal(0, 3, (n, 3)), "att": rng.integers(0, 9, n).astype(float),
               "aug_s": float(rng.uniform(0.6, 1.3))}
        if cfg.num_joints:
            J = cfg.num_joints
            kps["keypoints"] = np.concatenate([rng.uniform(-0.5, 1.5, (n, J, 2)) * (W, H),
                                               rng.choice([0.0, 1.0, 2.0], (n, J, 1))], 2)
    elif cfg.task == "ddd":                   # ignore codes (-1, -2 - c, -99) among the classes
        codes = np.array([-1, -99] + [-2 - c for c in range(cfg.num_classes)])
        ignore = rng.random(n) < 0.2
        classes = np.where(ignore, rng.choice(codes, n), classes)
        kps = {"alpha": rng.uniform(-np.pi, np.pi, n), "depth": rng.uniform(1, 80, n),
               "dim": rng.uniform(0.3, 5, (n, 3)), "augmented": bool(rng.random() < 0.3)}
    elif cfg.task == "exdet":                 # points on the boxes' sides: top, left, bottom, right
        b = boxes.astype(np.float64)
        u = rng.uniform(0, 1, (n, 4))
        kps = np.stack([np.stack([b[:, 0] + u[:, 0] * (b[:, 2] - b[:, 0]), b[:, 1]], 1),
                        np.stack([b[:, 0], b[:, 1] + u[:, 1] * (b[:, 3] - b[:, 1])], 1),
                        np.stack([b[:, 0] + u[:, 2] * (b[:, 2] - b[:, 0]), b[:, 3]], 1),
                        np.stack([b[:, 2], b[:, 1] + u[:, 3] * (b[:, 3] - b[:, 1])], 1)], 1)
        if rng.random() < 0.05 and n:
            kps = kps[:, ::-1]                                   # in the wrong order
    elif cfg.task == "multi_pose":
        J = cfg.num_joints
        kps = np.concatenate([rng.uniform(-0.5, 1.5, (n, J, 2)) * (W, H),
                              rng.choice([0.0, 1.0, 2.0], (n, J, 1))], 2)
        if rng.random() < 0.05 and n:
            kps[int(rng.integers(n)), 0, 2] = 3.0                # bad visibility
    return boxes.astype(np.float32), classes, kps


def check_exdet(cfg, t, classes: np.ndarray) -> None:
    """exdet: every map finite in [0, 1]; each supervised point a 1.0 peak of its map, its
    offset in [0, 1); nothing written in unused slots."""
    W, H = cfg.output_size
    for name, arr in t.items():
        if name.startswith("hm_"):
            assert np.all(np.isfinite(arr) & (arr >= 0) & (arr <= 1)), f"{name} outside [0, 1]"
    if not cfg.reg_offset:
        return
    m = t["reg_mask"].astype(bool)
    n = len(classes)
    cls = np.zeros(cfg.max_objs, np.int64)
    cls[:min(n, cfg.max_objs)] = classes[:cfg.max_objs]
    ch = np.zeros_like(cls) if cfg.agnostic_ex else cls
    unused = np.arange(cfg.max_objs) >= min(n, cfg.max_objs)
    for p in "tlbr":
        ind, reg = t[f"ind_{p}"], t[f"reg_{p}"]
        assert np.all((ind[m] >= 0) & (ind[m] < H * W)), f"ind_{p} out of range"
        assert np.all(t[f"hm_{p}"][ch[m], ind[m] // W, ind[m] % W] == 1.0), f"hm_{p} peaks"
        assert np.all((reg[m] >= 0) & (reg[m] < 1)), f"reg_{p} outside [0, 1)"
        assert not np.any(ind[unused]) and not np.any(reg[unused]), f"{p} in an unused slot"


def check_ddd(cfg, t, classes: np.ndarray) -> None:
    """ddd: hm finite in [0, 1]; each supervised slot a 1.0 peak of its (non-negative) class
    at ind; bins 0/1 with a residual only where the bin holds; no slot for ignore regions."""
    W, H = cfg.output_size
    assert np.all(np.isfinite(t["hm"]) & (t["hm"] >= 0) & (t["hm"] <= 1)), "hm outside [0, 1]"
    m = t["rot_mask"].astype(bool)
    assert not (t["reg_mask"].astype(bool) & ~m).any(), "reg_mask without rot_mask"
    n = min(len(classes), cfg.max_objs)
    cls = np.full(cfg.max_objs, -1)
    cls[:n] = classes[:n]
    assert (cls[m] >= 0).all(), "a slot for an ignore region"
    if cfg.heatmap == "umich" and not (cls[:n] < 0).any():
        # (upstream's MSRA Gaussian sits at round(c), ind at floor(c); and an ignore region
        # drawn later may cover an earlier peak with 0.9999: both reproduced)
        assert np.all(t["hm"][cls[m], t["ind"][m] // W, t["ind"][m] % W] == 1.0), "hm peaks"
    assert set(np.unique(t["rotbin"])) <= {0, 1} and not t["rotres"][t["rotbin"] == 0].any()
    assert not t["rotbin"][~m].any() and not t["dep"][~m].any(), "written in an empty slot"


def check_tracking(cfg, t, classes: np.ndarray) -> None:
    """tracking: heatmaps finite in [0, 1]; each supervised slot (``mask``) a 1.0 peak of its
    class at ``ind``, its offset in [0, 1), its regression targets finite; masks 0/1; nothing
    in the slots of ignored, skipped or unused objects."""
    W, H = cfg.output_size
    for name in ("hm", "pre_hm", "hm_hp"):
        if name in t:
            assert np.all(np.isfinite(t[name]) & (t[name] >= 0) & (t[name] <= 1)), name
    m = t["mask"] > 0
    n = min(len(classes), cfg.max_objs)
    cls = np.zeros(cfg.max_objs, np.int64)
    cls[:n] = classes[:n]
    assert ((cls[m] >= 1) & (cls[m] <= cfg.num_classes)).all(), "a slot for an ignored object"
    assert np.all((t["ind"][m] >= 0) & (t["ind"][m] < H * W)), "ind out of range"
    assert np.all(t["hm"][cls[m] - 1, t["ind"][m] // W, t["ind"][m] % W] == 1.0), "hm peaks"
    assert np.all((t["reg"][m] >= 0) & (t["reg"][m] < 1)), "reg outside [0, 1)"
    for name, arr in t.items():
        if name.endswith("_mask") or name == "mask":
            assert set(np.unique(arr)) <= {0, 1}, name
            assert not arr[~m].any() if arr.shape[0] == cfg.max_objs else True, name
        elif arr.dtype == np.float32:
            assert np.isfinite(arr).all(), f"{name} not finite"


def check_targets(cfg, t, classes: np.ndarray) -> None:
    """The invariants every encoded sample must satisfy."""
    W, H = cfg.output_size
    for name, spec in cfg.spec().items():
        assert t[name].shape == spec.shape and t[name].dtype == spec.dtype, name
    if cfg.task == "tracking":
        return check_tracking(cfg, t, classes)
    if cfg.task == "exdet":
        return check_exdet(cfg, t, classes)
    if cfg.task == "ddd":
        return check_ddd(cfg, t, classes)
    hm = t["hm"]
    assert np.all((hm >= 0) & (hm <= 1)), "hm outside [0, 1]"
    m = t["reg_mask"].astype(bool)
    assert set(np.unique(t["reg_mask"])) <= {0, 1}
    ind = t["ind"]
    assert np.all((ind[m] >= 0) & (ind[m] < H * W)), "ind out of range"
    n = len(classes)
    cls = np.zeros(cfg.max_objs, np.int64)              # slot k holds object k
    cls[:min(n, cfg.max_objs)] = classes[:cfg.max_objs]
    if "cat" in t:
        assert np.array_equal(t["cat"][m], cls[m]), "cat differs from the objects' classes"
    peaks = hm[cls[m], ind[m] // W, ind[m] % W]
    assert np.all(peaks == 1.0), f"supervised centres without a 1.0 peak: {peaks}"
    if "wh" in t:
        assert np.all(t["wh"][m] > 0), "wh not > 0 where reg_mask"
    if "reg" in t:
        assert np.all((t["reg"][m] >= 0) & (t["reg"][m] < 1)), "reg outside [0, 1)"
    unused = np.arange(cfg.max_objs) >= min(n, cfg.max_objs)
    for name in ("wh", "reg", "ind", "reg_mask", "hps", "hps_mask", "cat_spec_wh", "cat"):
        if name in t:
            assert not np.any(t[name][unused]), f"{name} written in an unused slot"
    if "hp_mask" in t:
        hm_ = t["hp_mask"].astype(bool)
        assert set(np.unique(t["hp_mask"])) <= {0, 1}
        assert np.all((t["hp_ind"][hm_] >= 0) & (t["hp_ind"][hm_] < H * W)), "hp_ind out of range"
        off = t["hp_offset"][hm_]
        assert np.all((off >= 0) & (off < 1)), "hp_offset outside [0, 1)"
    if "hps_mask" in t:
        assert set(np.unique(t["hps_mask"])) <= {0, 1}


def run(cases: int, seed: int = 0) -> dict[str, int]:
    """Run ``cases`` random cases; returns counts of encoded and refused cases."""
    rng = np.random.default_rng(seed)
    counts = {"encoded": 0, "refused": 0}
    for case in range(cases):
        cfg = random_config(rng)
        boxes, classes, kps = random_inputs(rng, cfg)
        rotated = cfg.task == "multi_pose" and bool(rng.random() < 0.1)
        def encode(cfg):
            if cfg.task == "tracking":
                return TrackingEncoder(cfg).encode(boxes, classes, **kps)
            if cfg.task == "ddd":
                return DddEncoder(cfg).encode(boxes, classes, **kps)
            if cfg.task == "exdet":
                return ExdetEncoder(cfg).encode(kps, classes)
            if cfg.task == "ctdet":
                return CtdetEncoder(cfg).encode(boxes, classes)
            return MultiPoseEncoder(cfg).encode(boxes, kps, classes, rotated=rotated)

        try:
            t = encode(cfg)
        except (ValueError, TypeError) as exc:
            msg = str(exc)
            assert any(w in msg for w in ("boxes", "classes", "keypoints", "points")), (case, msg)
            counts["refused"] += 1
            continue
        if not (rotated and cfg.rotation == "centernet"):   # that quirk blanks hm and the masks
            try:
                check_targets(cfg, t, classes)
            except AssertionError as exc:
                raise AssertionError(f"case {case} (seed {seed}): {exc}; config {cfg}") from None
        if rng.random() < 0.5:
            check_sparse(cfg, t, encode)
        counts["encoded"] += 1
    return counts


def check_sparse(cfg, dense, encode) -> None:
    """The same case with ``heatmaps="sparse"``: the draw list, rendered by the compiled
    replay and by the scatter, equals the dense targets bit for bit (NaN where they have it)."""
    import torch

    from centertargets import sparse
    from centertargets.device import render_heatmaps

    sc = cfg.replace(heatmaps="sparse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)        # a config that stays dense
        got = encode(sc)
    batch = {k: torch.as_tensor(v)[None] for k, v in got.items()}
    scattered = {k: v[0].numpy() for k, v in
                 render_heatmaps(batch, sc, method="scatter").items()}
    for rendered in (sparse.render(got, sc), scattered):
        assert set(rendered) == set(dense), (sorted(rendered), sorted(dense))
        for k, want in dense.items():
            np.testing.assert_array_equal(rendered[k], want, err_msg=f"{k} of {sc}")


def main(run_cases, doc: str) -> None:
    """The command line of a fuzzer module: ``--cases`` and ``--seed``, counts and time on stderr."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(run_cases(args.cases, args.seed), f"in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main(run, __doc__)
