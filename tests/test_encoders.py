"""Encoders: target contracts checked from first principles, reports, options, errors."""

from __future__ import annotations

import numpy as np
import pytest

from centertargets import (CtdetConfig, CtdetEncoder, MultiPoseConfig, MultiPoseEncoder,
                           RadiusConfig)

from conftest import random_boxes, random_keypoints


def _clip_boxes(b: np.ndarray, W: int, H: int) -> np.ndarray:
    c = b.astype(np.float32).copy()
    c[:, [0, 2]] = c[:, [0, 2]].clip(0, W - 1)
    c[:, [1, 3]] = c[:, [1, 3]].clip(0, H - 1)
    return c


@pytest.mark.parametrize("size", [(128, 128), (96, 64), (40, 72)])
def test_ctdet_peaks_indices_offsets_and_sizes(size, rng):
    W, H = size
    boxes = random_boxes(rng, 25, W, H)
    classes = rng.integers(0, 5, len(boxes))
    t, rep = CtdetEncoder(CtdetConfig(output_size=size, num_classes=5)).encode_with_report(
        boxes, classes)
    assert t["hm"].shape == (5, H, W)
    c = _clip_boxes(boxes, W, H)
    ct = np.stack([(c[:, 0] + c[:, 2]) / 2, (c[:, 1] + c[:, 3]) / 2], 1).astype(np.float32)
    ct_int = np.floor(ct).astype(np.int64)
    n = len(boxes)
    np.testing.assert_array_equal(t["ind"][:n], ct_int[:, 1] * W + ct_int[:, 0])
    assert (t["ind"][:n] < W * H).all()
    np.testing.assert_array_equal(t["reg_mask"][:n], 1)
    assert not t["reg_mask"][n:].any() and not t["ind"][n:].any()
    np.testing.assert_allclose(t["reg"][:n], ct - ct_int, atol=1e-6)
    np.testing.assert_array_equal(t["wh"][:n], np.stack([c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]], 1))
    for k in range(n):
        assert t["hm"][classes[k]].reshape(-1)[t["ind"][k]] == 1.0
    # no other pixel reaches 1
    assert (t["hm"] == 1.0).sum() == len({(int(classes[k]), int(t["ind"][k])) for k in range(n)})
    assert rep.encoded == n and rep.num_objects == n and not rep.dropped_max_objs


def test_multi_pose_keypoint_targets_follow_their_definitions(rng):
    W, H, J = 80, 64, 17
    boxes = random_boxes(rng, 10, W, H, min_side=4, max_side=30)
    kps = random_keypoints(rng, boxes, J, spill=0.5)
    kps[3, :, 2] = 0          # person without labelled keypoints
    kps[3, :, :2] = 0
    cfg = MultiPoseConfig(output_size=(W, H), num_joints=J)
    t, rep = MultiPoseEncoder(cfg).encode_with_report(boxes, kps)
    c = _clip_boxes(boxes, W, H)
    ct_int = np.floor(np.stack([(c[:, 0] + c[:, 2]) / 2, (c[:, 1] + c[:, 3]) / 2], 1)).astype(int)
    x, y, v = kps[..., 0], kps[..., 1], kps[..., 2]
    inside = (v > 0) & (x >= 0) & (x < W) & (y >= 0) & (y < H)
    for k in range(len(boxes)):
        np.testing.assert_array_equal(t["hps_mask"][k].reshape(J, 2), np.repeat(inside[k, :, None], 2, 1))
        np.testing.assert_array_equal(t["hp_mask"][k * J:(k + 1) * J], inside[k])
        for j in np.flatnonzero(inside[k]):
            assert t["hps"][k, 2 * j] == np.float32(x[k, j] - ct_int[k, 0])
            assert t["hps"][k, 2 * j + 1] == np.float32(y[k, j] - ct_int[k, 1])
            px, py = int(x[k, j]), int(y[k, j])
            assert t["hp_ind"][k * J + j] == py * W + px
            np.testing.assert_allclose(t["hp_offset"][k * J + j], [x[k, j] - px, y[k, j] - py],
                                       atol=1e-6)
            assert t["hm_hp"][j, py, px] == 1.0
        assert not t["hps"][k][~np.repeat(inside[k], 2)].any()
    assert t["reg_mask"][3] == 0 and t["reg_mask"][:10].sum() == 9
    assert t["hm"][0].reshape(-1)[t["ind"][3]] == 1.0           # CenterNet: stays positive
    assert rep.no_keypoints == 1
    assert rep.keypoints_labelled == int((v > 0).sum())
    assert rep.keypoints_encoded == int(inside.sum())
    assert rep.keypoints_outside == int((v > 0).sum() - inside.sum())
    assert rep.status[3] == 3


def test_overflow_is_counted_and_can_be_an_error(rng):
    boxes = random_boxes(rng, 12, 64, 64, min_side=3)
    classes = np.zeros(12, int)
    cfg = CtdetConfig(output_size=(64, 64), num_classes=1, max_objs=8)
    t, rep = CtdetEncoder(cfg).encode_with_report(boxes, classes)
    assert rep.dropped_max_objs == 4 and rep.encoded == 8
    assert list(rep.status[8:]) == [1, 1, 1, 1]
    assert t["reg_mask"].sum() == 8
    with pytest.raises(ValueError, match="max_objs=8"):
        CtdetEncoder(cfg.replace(overflow="error")).encode(boxes, classes)


def test_degenerate_boxes_and_centre_collisions_are_reported():
    boxes = np.array([[10, 10, 20, 20], [12, 12, 18, 18], [-30, 5, -2, 9], [5, 5, 5, 9]],
                     np.float32)
    t, rep = CtdetEncoder(CtdetConfig(output_size=(32, 32), num_classes=2)).encode_with_report(
        boxes, np.zeros(4, int))
    assert rep.center_collisions == 1          # the two first share centre (15, 15)
    assert rep.degenerate == 2                 # outside the map, and zero width
    assert list(rep.status) == [0, 0, 2, 2]
    assert list(t["reg_mask"][:4]) == [1, 1, 0, 0]
    assert rep.lost_anything


def test_no_keypoint_persons_can_be_ignored_instead():
    boxes = np.array([[10, 10, 30, 40]], np.float32)
    kps = np.zeros((1, 17, 3), np.float32)
    enc = MultiPoseEncoder(MultiPoseConfig(output_size=(64, 64), no_keypoints="ignore"))
    t = enc.encode(boxes, kps)
    assert t["hm"][0, 25, 20] == np.float32(0.9999)
    assert (t["hm"] == 1.0).sum() == 0 and t["reg_mask"][0] == 0
    # but an existing positive at the same pixel is kept
    t = enc.encode(np.repeat(boxes, 2, 0), np.concatenate(
        [np.ones((1, 17, 3), np.float32) * [20, 25, 2], kps]))
    assert t["hm"][0, 25, 20] == 1.0


def test_occluded_joints_can_be_left_out_of_hm_hp():
    boxes = np.array([[10, 10, 30, 40]], np.float32)
    kps = np.zeros((1, 17, 3), np.float32)
    kps[0, 0] = (15.5, 12.5, 1)   # occluded
    kps[0, 1] = (25.5, 30.5, 2)   # visible
    base = MultiPoseConfig(output_size=(64, 64))
    t = MultiPoseEncoder(base).encode(boxes, kps)
    assert t["hm_hp"][0, 12, 15] == 1.0
    t = MultiPoseEncoder(base.replace(occluded_joints="ignore_in_hm_hp")).encode(boxes, kps)
    assert not t["hm_hp"][0].any() and t["hm_hp"][1, 30, 25] == 1.0
    assert t["hp_mask"][0] == 1 and t["hps_mask"][0, 0] == 1


def test_rotation_quirk_blanks_like_centernet_unless_corrected(rng):
    boxes = random_boxes(rng, 4, 64, 64, min_side=5)
    kps = random_keypoints(rng, boxes)
    cfg = MultiPoseConfig(output_size=(64, 64))
    t = MultiPoseEncoder(cfg).encode(boxes, kps, rotated=True)
    assert (t["hm"] == np.float32(0.9999)).all()
    assert not t["reg_mask"].any() and not t["hps_mask"].any()
    assert t["hp_mask"].any() and t["hm_hp"].max() == 1.0
    t2 = MultiPoseEncoder(cfg.replace(rotation="corners")).encode(boxes, kps, rotated=True)
    assert t2["reg_mask"].sum() == 4 and t2["hm"].max() == 1.0


def test_out_buffers_are_zeroed_and_reused(rng):
    cfg = MultiPoseConfig(output_size=(48, 48))
    enc = MultiPoseEncoder(cfg)
    boxes = random_boxes(rng, 5, 48, 48)
    kps = random_keypoints(rng, boxes)
    fresh = enc.encode(boxes, kps)
    out = {k: np.full(s.shape, 7, s.dtype) for k, s in enc.spec.items()}
    got = enc.encode(boxes, kps, out=out)
    for k in fresh:
        assert got[k] is out[k]
        np.testing.assert_array_equal(got[k], fresh[k])
    out["hm"] = np.zeros((1, 48, 47), np.float32)
    with pytest.raises(ValueError, match=r"out\['hm'\]"):
        enc.encode(boxes, kps, out=out)


@pytest.mark.parametrize("variant", [dict(cat_spec_wh=True), dict(dense_wh=True),
                                     dict(reg_offset=False), dict(heatmap="msra", msra_sigma=3),
                                     dict(heatmap="elliptic"),
                                     dict(radius=RadiusConfig("corrected", 0.7, 1))])
def test_ctdet_variants_produce_their_spec(variant, rng):
    cfg = CtdetConfig(output_size=(64, 48), num_classes=3, max_objs=16, **variant)
    boxes = random_boxes(rng, 6, 64, 48, min_side=4)
    classes = rng.integers(0, 3, 6)
    t = CtdetEncoder(cfg).encode(boxes, classes)
    assert {k: (v.shape, v.dtype) for k, v in t.items()} == \
        {k: (s.shape, s.dtype) for k, s in cfg.spec().items()}
    for k in range(6):
        assert t["hm"][classes[k]].reshape(-1)[t["ind"][k]] == 1.0
    if cfg.cat_spec_wh:
        for k in range(6):
            cols = np.flatnonzero(t["cat_spec_mask"][k])
            assert list(cols) == [2 * classes[k], 2 * classes[k] + 1]
    if cfg.dense_wh:
        np.testing.assert_array_equal(t["dense_wh_mask"][0], t["hm"].max(0))
        np.testing.assert_array_equal(t["dense_wh_mask"][1], t["hm"].max(0))
        ys, xs = np.divmod(t["ind"][:6], 64)
        # at its own centre an object's size is written unless a later object overwrote it
        last = {}
        for k in range(6):
            last[(ys[k], xs[k])] = k
        for (yy, xx), k in last.items():
            b = _clip_boxes(boxes, 64, 48)[k]
            np.testing.assert_array_equal(t["dense_wh"][:, yy, xx], [b[2] - b[0], b[3] - b[1]])


def test_dense_hp_writes_offsets_around_the_centre(rng):
    cfg = MultiPoseConfig(output_size=(64, 64), dense_hp=True)
    boxes = np.array([[10, 10, 40, 50]], np.float32)
    kps = np.zeros((1, 17, 3), np.float32)
    kps[0, 5] = (20.25, 22.5, 2)
    t = MultiPoseEncoder(cfg).encode(boxes, kps)
    assert "hps" not in t and t["dense_hps"].shape == (34, 64, 64)
    cx, cy = 25, 30
    assert t["dense_hps"][10, cy, cx] == np.float32(20.25 - cx)
    assert t["dense_hps"][11, cy, cx] == np.float32(22.5 - cy)
    assert t["dense_hps"][10, cy + 1, cx + 1] == np.float32(20.25 - cx - 1)
    np.testing.assert_array_equal(t["dense_hps_mask"][10], t["dense_hps_mask"][11])
    assert t["dense_hps_mask"][10, cy, cx] == 1.0 and not t["dense_hps_mask"][0].any()


@pytest.mark.parametrize("boxes, classes, match", [
    ([[0, 0, 5, np.nan]], [0], r"boxes\[0\]"),
    ([[5, 0, 1, 4]], [0], r"x1 <= x2"),
    ([[0, 0, 5, 5, 1]], [0], r"boxes has shape \(1, 5\)"),
    ([[0, 0, 5, 5]], [3], r"classes\[0\]=3"),
    ([[0, 0, 5, 5]], [0, 1], r"classes has shape"),
])
def test_bad_ctdet_input_names_the_field(boxes, classes, match):
    enc = CtdetEncoder(CtdetConfig(output_size=(32, 32), num_classes=3))
    with pytest.raises(ValueError, match=match):
        enc.encode(np.array(boxes, np.float32), np.array(classes))


def test_bad_keypoints_name_the_field():
    enc = MultiPoseEncoder(MultiPoseConfig(output_size=(32, 32)))
    boxes = np.array([[0, 0, 5, 5]], np.float32)
    with pytest.raises(ValueError, match=r"keypoints has shape \(1, 16, 3\)"):
        enc.encode(boxes, np.zeros((1, 16, 3)))
    k = np.zeros((1, 17, 3))
    k[0, 4, 2] = 3
    with pytest.raises(ValueError, match=r"keypoints\[0, 4, 2\]=3.0"):
        enc.encode(boxes, k)
    k[0, 4] = (np.inf, 1, 2)
    with pytest.raises(ValueError, match=r"keypoints\[0, 4\]"):
        enc.encode(boxes, k)
    with pytest.raises(ValueError, match="num_classes=2"):
        MultiPoseEncoder(MultiPoseConfig(output_size=(32, 32), num_classes=2)).encode(
            boxes, np.zeros((1, 17, 3)))


def test_empty_scene_gives_all_zero_targets():
    cfg = MultiPoseConfig(output_size=(32, 32))
    t, rep = MultiPoseEncoder(cfg).encode_with_report(np.zeros((0, 4)), np.zeros((0, 17, 3)))
    assert all(not a.any() for a in t.values())
    assert rep.num_objects == 0 and not rep.lost_anything
