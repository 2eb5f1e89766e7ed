"""Decoders: round trip encode -> perfect outputs -> decode, and back to image pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from centertargets import CtdetConfig, CtdetEncoder, MultiPoseConfig, MultiPoseEncoder, RadiusConfig
from centertargets.decode import (CtdetDecoder, MultiPoseDecoder, ctdet_decode, multi_pose_decode,
                                  nms, oracle_outputs, to_image, topk)
from centertargets.augment import AugmentParams, annotations_to_output
from centertargets.synthetic import person_scene

from conftest import random_boxes, random_keypoints


def _separated_boxes(rng, n, W, H):
    """Boxes whose integer centres are at least 3 px apart (no NMS or collision ambiguity)."""
    out = []
    while len(out) < n:
        b = random_boxes(rng, 1, W, H, min_side=4, max_side=30)[0]
        c = np.floor([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
        if all(np.abs(c - np.floor([(o[0] + o[2]) / 2, (o[1] + o[3]) / 2])).max() >= 3 for o in out):
            out.append(b)
    return np.array(out, np.float32)


def _unambiguous_joints(kps: np.ndarray) -> np.ndarray:
    """Unlabel joints whose pixel another joint shares (``hp_offset`` is one map for all
    joint types, so the later joint's offset wins there) or whose same-type peak is within
    one pixel (max-pool NMS keeps one of them)."""
    k = kps.copy()
    pix = np.floor(k[..., :2]).astype(int)
    lab = k[..., 2] > 0
    n, J = lab.shape
    for a in range(n):
        for j in range(J):
            if not lab[a, j]:
                continue
            for b in range(n):
                for i in range(J):
                    if (a, j) == (b, i) or not lab[b, i]:
                        continue
                    d = np.abs(pix[a, j] - pix[b, i]).max()
                    if d == 0 or (i == j and d <= 1):
                        lab[a, j] = False
    k[~lab] = 0
    return k


def _match(dets_xy: np.ndarray, want_xy: np.ndarray) -> np.ndarray:
    """For each wanted centre, the index of the nearest detection."""
    d = np.linalg.norm(dets_xy[None, :, :] - want_xy[:, None, :], axis=2)
    return d.argmin(axis=1)


CTDET_VARIANTS = [dict(), dict(cat_spec_wh=True), dict(dense_wh=True), dict(reg_offset=False),
                  dict(heatmap="msra", msra_sigma=2), dict(heatmap="elliptic"),
                  dict(radius=RadiusConfig("corrected")), dict(output_size=(96, 64))]


def _ctdet_case(variant, rng):
    """A config of the variant, 8 well-separated boxes, their classes and the oracle outputs."""
    kw = dict(output_size=(80, 80), num_classes=4, max_objs=16)
    kw.update(variant)
    cfg = CtdetConfig(**kw)
    W, H = cfg.output_size
    boxes = _separated_boxes(rng, 8, W, H)
    classes = rng.integers(0, 4, len(boxes))
    return cfg, boxes, classes, oracle_outputs(CtdetEncoder(cfg).encode(boxes, classes), cfg)


@pytest.mark.parametrize("variant", CTDET_VARIANTS, ids=lambda v: ",".join(v) or "default")
def test_ctdet_round_trip(variant, rng):
    cfg, boxes, classes, o = _ctdet_case(variant, rng)
    dets = ctdet_decode(o["hm"], o["wh"], o.get("reg"), cat_spec_wh=cfg.cat_spec_wh,
                        K=cfg.max_objs)[0].numpy()
    top = dets[dets[:, 4] == 1.0]
    assert len(top) == len(boxes)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    idx = _match((top[:, :2] + top[:, 2:4]) / 2, centres)
    got = top[idx]
    np.testing.assert_array_equal(got[:, 5], classes)
    tol = 1e-4 if cfg.reg_offset else 0.5 + 1e-4      # without reg: centre at pixel + 0.5
    if cfg.dense_wh:
        tol = max(tol, 1e-4)
    np.testing.assert_allclose(got[:, :4], boxes, atol=tol)


MP_VARIANTS = [dict(), dict(hm_hp=False, reg_hp_offset=False), dict(reg_offset=False,
               reg_hp_offset=False), dict(dense_hp=True), dict(heatmap="msra"),
               dict(output_size=(96, 64)), dict(reg_hp_offset=False)]


@pytest.mark.parametrize("variant", MP_VARIANTS, ids=lambda v: ",".join(v) or "default")
def test_multi_pose_round_trip(variant, rng):
    kw = dict(output_size=(80, 80), max_objs=12)
    kw.update(variant)
    cfg = MultiPoseConfig(**kw)
    W, H = cfg.output_size
    boxes = _separated_boxes(rng, 6, W, H)
    kps = _unambiguous_joints(random_keypoints(rng, boxes, spill=0.0))
    t = MultiPoseEncoder(cfg).encode(boxes, kps)
    o = oracle_outputs(t, cfg)
    dets = multi_pose_decode(o["hm"], o["wh"], o["hps"], o.get("reg"), o.get("hm_hp"),
                             o.get("hp_offset"), K=cfg.max_objs)[0].numpy()
    top = dets[dets[:, 4] == 1.0]
    assert len(top) == len(boxes)
    idx = _match((top[:, :2] + top[:, 2:4]) / 2, (boxes[:, :2] + boxes[:, 2:]) / 2)
    got = top[idx]
    box_tol = 1e-4 if cfg.reg_offset else 0.5 + 1e-4
    np.testing.assert_allclose(got[:, :4], boxes, atol=box_tol)
    joints = got[:, 5:5 + 34].reshape(-1, 17, 2)
    labelled = kps[..., 2] > 0
    # regressed joints are exact; snapped ones are peak + offset (exact) or peak + 0.5
    joint_tol = 0.5 + 1e-4 if (cfg.hm_hp and not cfg.reg_hp_offset) else 1e-4
    if cfg.dense_hp:
        joint_tol = 1e-4
    np.testing.assert_allclose(joints[labelled], kps[..., :2][labelled], atol=joint_tol)


def test_decoders_from_config_and_back_to_image():
    scene = person_scene(3, num_people=4, p_unlabelled=0.0, p_occluded=0.0)
    cfg = MultiPoseConfig(output_size=(128, 128))
    params = AugmentParams.centered(scene.width, scene.height)
    boxes, kps = annotations_to_output(scene.boxes_xywh, scene.width, params, cfg.output_size,
                                       keypoints=scene.keypoints, flip_idx=cfg.flip_idx)
    t = MultiPoseEncoder(cfg).encode(boxes, kps)
    o = oracle_outputs(t, cfg)
    logits = {k: (torch.logit(v.clamp(1e-6, 1 - 1e-6)) if k in ("hm", "hm_hp") else v)
              for k, v in o.items()}
    dets = MultiPoseDecoder(cfg, K=10)(logits)[0].numpy()
    top = dets[dets[:, 4] > 0.999]
    assert len(top) == 4
    img_boxes = to_image(top[:, :4].reshape(-1, 2), params.center, params.scale,
                         cfg.output_size).reshape(-1, 4)
    want = scene.boxes_xywh.copy()
    want[:, 2:] += want[:, :2]
    want[:, [0, 2]] = want[:, [0, 2]].clip(0, scene.width - 1)
    want[:, [1, 3]] = want[:, [1, 3]].clip(0, scene.height + 80 - 1)   # map covers 640 x 640
    idx = _match((img_boxes[:, :2] + img_boxes[:, 2:]) / 2, (want[:, :2] + want[:, 2:]) / 2)
    inside = (scene.boxes_xywh[:, 0] >= 0) & (scene.boxes_xywh[:, 0] + scene.boxes_xywh[:, 2] < 639)
    np.testing.assert_allclose(img_boxes[idx][inside][:, [0, 2]], want[inside][:, [0, 2]],
                               atol=1e-2)


def _logits(o: dict, cfg) -> dict:
    """Oracle probabilities turned into the logits a network would output for its heatmap heads."""
    return {k: torch.logit(v.clamp(1e-6, 1 - 1e-6)) if cfg.head_spec()[k].kind == "heatmap" else v
            for k, v in o.items()}


@pytest.mark.parametrize("variant", CTDET_VARIANTS, ids=lambda v: ",".join(v) or "default")
def test_ctdet_decoder_class_returns_the_encoded_boxes_and_classes(variant, rng):
    cfg, boxes, classes, o = _ctdet_case(variant, rng)
    dets = CtdetDecoder(cfg, K=cfg.max_objs)(_logits(o, cfg))[0].numpy()
    assert dets.shape == (cfg.max_objs, 6) and dets.dtype == np.float32
    top = dets[:len(boxes)]
    assert (top[:, 4] > 0.999).all() and (dets[len(boxes):, 4] < 0.999).all()
    got = top[_match((top[:, :2] + top[:, 2:4]) / 2, (boxes[:, :2] + boxes[:, 2:]) / 2)]
    np.testing.assert_array_equal(got[:, 5], classes)
    np.testing.assert_allclose(got[:, :4], boxes, atol=1e-4 if cfg.reg_offset else 0.5 + 1e-4)
    # probabilities with apply_sigmoid=False decode the same
    same = CtdetDecoder(cfg, K=cfg.max_objs, apply_sigmoid=False)(o)[0].numpy()
    np.testing.assert_allclose(same[:, :4], dets[:, :4], atol=1e-4)


def test_decoders_name_missing_or_misshapen_heads():
    cfg = CtdetConfig(output_size=(16, 12), num_classes=3)
    out = {"hm": torch.zeros(2, 3, 12, 16), "wh": torch.zeros(2, 2, 12, 16),
           "reg": torch.zeros(2, 2, 12, 16)}
    assert CtdetDecoder(cfg, K=4)(out).shape == (2, 4, 6)
    assert CtdetDecoder(cfg, K=4)([out, out]).shape == (2, 4, 6)         # stacks: the last
    with pytest.raises(ValueError, match=r"outputs has no head 'reg': expected a \(2, 2, 12, 16\)"):
        CtdetDecoder(cfg)({k: v for k, v in out.items() if k != "reg"})
    with pytest.raises(ValueError, match=r"outputs\['wh'\] has shape \(2, 6, 12, 16\): "
                                         r"expected \(2, 2, 12, 16\), 2 channels"):
        CtdetDecoder(cfg)(dict(out, wh=torch.zeros(2, 6, 12, 16)))
    with pytest.raises(ValueError, match=r"outputs\['wh'\] has shape \(2, 2, 12, 16\): "
                                         r"expected \(2, 6, 12, 16\), 6 channels"):
        CtdetDecoder(cfg.replace(cat_spec_wh=True))(out)
    with pytest.raises(TypeError, match=r"outputs\['hm'\] is ndarray"):
        CtdetDecoder(cfg)(dict(out, hm=np.zeros((2, 3, 12, 16), np.float32)))
    for K in (0, -1, 1.5, 16 * 12 + 1):
        with pytest.raises(ValueError, match=f"K={K}"):
            CtdetDecoder(cfg, K=K)
    pose = MultiPoseConfig(output_size=(16, 12))
    with pytest.raises(ValueError, match=r"outputs has no head 'hps'"):
        MultiPoseDecoder(pose)(dict(out, hm=torch.zeros(2, 1, 12, 16)))


def test_nms_keeps_only_local_maxima_and_topk_orders_by_score():
    heat = torch.zeros(1, 2, 8, 8)
    heat[0, 0, 2, 2] = 0.9
    heat[0, 0, 2, 3] = 0.5      # suppressed neighbour
    heat[0, 1, 6, 6] = 0.7
    kept = nms(heat)
    assert kept[0, 0, 2, 3] == 0 and kept[0, 0, 2, 2] == 0.9
    s, ind, cls, ys, xs = topk(kept, K=2)
    assert s[0].tolist() == pytest.approx([0.9, 0.7])
    assert cls[0].tolist() == [0, 1] and ind[0].tolist() == [2 * 8 + 2, 6 * 8 + 6]
    assert ys[0].tolist() == [2, 6] and xs[0].tolist() == [2, 6]
    with pytest.raises(ValueError, match="K=100"):
        topk(kept, K=100)


def test_joint_assignment_in_blocks_gives_the_same_detections(monkeypatch):
    import centertargets.decode as D

    g = torch.Generator().manual_seed(3)
    B, J, H, W, K = 2, 5, 24, 20, 96
    heads = dict(heat=torch.rand(B, 2, H, W, generator=g), wh=torch.rand(B, 2, H, W) * 9,
                 kps=torch.randn(B, 2 * J, H, W, generator=g) * 4,
                 reg=torch.rand(B, 2, H, W, generator=g),
                 hm_hp=torch.rand(B, J, H, W, generator=g) ** 3,
                 hp_offset=torch.rand(B, 2, H, W, generator=g))
    whole = multi_pose_decode(**heads, K=K)                 # one block: B*J*K << _SNAP_BLOCK
    for block in (B * J * 7, B * J, 1):                     # blocks of 7 and 1 detections
        monkeypatch.setattr(D, "_SNAP_BLOCK", block)
        assert torch.equal(multi_pose_decode(**heads, K=K), whole)


_BIG_K = r"""
import resource, torch
from centertargets.decode import multi_pose_decode
B, J, H, W = 1, 17, 32, 32
g = torch.Generator().manual_seed(0)
heads = dict(heat=torch.rand(B, 1, H, W, generator=g), wh=torch.rand(B, 2, H, W),
             kps=torch.randn(B, 2 * J, H, W, generator=g), reg=torch.rand(B, 2, H, W),
             hm_hp=torch.rand(B, J, H, W, generator=g), hp_offset=torch.rand(B, 2, H, W))
multi_pose_decode(**heads, K=8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
dets = multi_pose_decode(**heads, K=1024)
print(dets.shape[1], (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_large_k_does_not_take_memory_quadratic_in_k():
    import subprocess
    import sys

    # one (1, 17, 1024, 1024, 2) float32 difference alone is 142 MB (the process grew by 272 MB
    # before blocks); a block of 2^20 distances with its temporaries is about 32 MB
    res = subprocess.run([sys.executable, "-c", _BIG_K], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    k, grown_mb = (int(v) for v in res.stdout.split())
    assert k == 1024 and grown_mb < 64, grown_mb
