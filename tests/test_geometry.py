"""Affine transforms and flips."""

from __future__ import annotations

import numpy as np
import pytest

from centertargets.coco import COCO_FLIP_IDX
from centertargets.geometry import (flip_boxes, flip_keypoints, get_affine_transform,
                                    transform_boxes, transform_points)
from centertargets.augment import AugmentParams, annotations_to_output


def test_flips_applied_twice_give_back_the_input(rng):
    boxes = rng.uniform(0, 500, (20, 4))
    boxes[:, 2:] += boxes[:, :2]
    twice = flip_boxes(flip_boxes(boxes, 640), 640)
    np.testing.assert_allclose(twice, boxes, atol=1e-9)
    once = flip_boxes(boxes, 640)
    assert (once[:, 2] >= once[:, 0]).all()
    np.testing.assert_allclose(once[:, 0], 640 - boxes[:, 2] - 1)
    kps = rng.uniform(0, 500, (5, 17, 3))
    k1 = flip_keypoints(kps, 640, COCO_FLIP_IDX)
    np.testing.assert_allclose(k1[:, 1, 0], 640 - kps[:, 2, 0] - 1)   # left eye <- right eye
    np.testing.assert_array_equal(k1[:, 0, 2], kps[:, 0, 2])
    np.testing.assert_allclose(flip_keypoints(k1, 640, COCO_FLIP_IDX), kps, atol=1e-9)


@pytest.mark.parametrize("rot", [0.0, 17.0, -30.0])
def test_affine_maps_centre_to_centre_and_inverse_composes_to_identity(rot):
    c, s, out = (300.0, 200.0), 640.0, (128, 96)
    m = get_affine_transform(np.array(c, np.float32), s, rot, out)
    inv = get_affine_transform(np.array(c, np.float32), s, rot, out, inv=True)
    np.testing.assert_allclose(transform_points(np.array([c]), m)[0], [64, 48], atol=1e-4)
    pts = np.random.default_rng(0).uniform(0, 600, (30, 2))
    back = transform_points(transform_points(pts, m), inv)
    np.testing.assert_allclose(back, pts, atol=1e-3)
    # uniform zoom: output width / scale
    lin = m[:, :2]
    np.testing.assert_allclose(np.sqrt(np.linalg.det(lin)), 128 / 640, rtol=1e-5)


def test_box_corners_hull_contains_every_rotated_corner():
    m = get_affine_transform(np.array([100, 100], np.float32), 200.0, 30.0, (64, 64))
    box = np.array([[50, 60, 120, 150]], np.float64)
    hull = transform_boxes(box, m, corners=True)[0]
    corners = np.array([[50, 60], [120, 60], [50, 150], [120, 150]], np.float64)
    t = transform_points(corners, m)
    assert (t[:, 0] >= hull[0] - 1e-9).all() and (t[:, 0] <= hull[2] + 1e-9).all()
    assert (t[:, 1] >= hull[1] - 1e-9).all() and (t[:, 1] <= hull[3] + 1e-9).all()


def test_annotations_to_output_validation_transform():
    # a 640x480 image into a 128x128 map: scale 640 -> factor 0.2, centred vertically
    boxes, kps = annotations_to_output(
        np.array([[100.0, 50.0, 200.0, 100.0]]), 640, AugmentParams.centered(640, 480), (128, 128),
        keypoints=np.array([[[150.0, 75.0, 2.0]] + [[0.0, 0.0, 0.0]] * 16]))
    np.testing.assert_allclose(boxes[0], [20, 10 + 16, 60, 30 + 16], atol=1e-4)
    np.testing.assert_allclose(kps[0, 0], [30, 15 + 16, 2], atol=1e-4)
    assert boxes.dtype == np.float32 and kps.dtype == np.float32


# --- the compiled and scalar fast paths against upstream's own formulation -----------------------

def _upstream_affine(center, scale, rot, output_size, shift=np.array([0, 0], np.float32),
                     inv=False):
    """A transcription of upstream CenterNet's ``get_affine_transform`` (utils/image.py)."""
    import cv2

    if not isinstance(scale, np.ndarray) and not isinstance(scale, list):
        scale = np.array([scale, scale], dtype=np.float32)
    src_w = scale[0]
    dst_w, dst_h = output_size
    rot_rad = np.pi * rot / 180
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    src_dir = [0 * cs - src_w * -0.5 * sn, 0 * sn + src_w * -0.5 * cs]
    dst_dir = np.array([0, dst_w * -0.5], np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + scale * shift
    src[1, :] = center + src_dir + scale * shift
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5], np.float32) + dst_dir

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]], dtype=np.float32)
    src[2:, :] = third(src[0, :], src[1, :])
    dst[2:, :] = third(dst[0, :], dst[1, :])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def test_affine_matrix_is_bit_identical_to_upstreams(rng):
    for k in range(3000):
        # float32 centres (ctdet, pose) and float64 ones (exdet, ddd), kept as upstream keeps them
        center = rng.uniform(-50, 2000, 2).astype(np.float32 if rng.random() < 0.5
                                                  else np.float64)
        if k % 3 == 0:          # keep_res training draws: a float64 (sw, sh) array
            scale = rng.uniform(50, 3000, 2) * rng.choice(np.arange(0.6, 1.4, 0.1))
        elif k % 7 == 1:        # a float32 (sw, sh) array keeps its dtype
            scale = rng.uniform(50, 3000, 2).astype(np.float32)
        else:
            scale = float(rng.uniform(1, 3000))
        rot = 0.0 if k % 2 else float(rng.uniform(-180, 180))
        size = (int(rng.integers(1, 1024)), int(rng.integers(1, 1024)))
        inv = bool(k % 5 == 0)
        ours = get_affine_transform(center, scale, rot, size, inv=inv)
        np.testing.assert_array_equal(ours, _upstream_affine(center, scale, rot, size, inv=inv))
        shift = rng.uniform(-0.2, 0.2, 2).astype(np.float32)
        np.testing.assert_array_equal(get_affine_transform(center, scale, rot, size, shift=shift),
                                      _upstream_affine(center, scale, rot, size, shift=shift))


@pytest.mark.parametrize("rotation", ["centernet", "corners"])
def test_compiled_annotation_transform_equals_the_numpy_steps(rng, rotation):
    """annotations_to_output (one kernel) == upstream's steps composed from the numpy helpers."""
    from centertargets.geometry import coco_boxes_to_xyxy

    for k in range(60):
        n, J = int(rng.integers(0, 12)), 17
        xywh = np.concatenate([rng.uniform(-20, 600, (n, 2)), rng.uniform(0, 300, (n, 2))], 1)
        kps = np.concatenate([rng.uniform(-50, 700, (n, J, 2)),
                              rng.integers(0, 3, (n, J, 1)).astype(np.float64)], 2)
        width = int(rng.integers(100, 1000))
        params = AugmentParams(tuple(rng.uniform(0, 600, 2)), float(rng.uniform(100, 900)),
                               0.0 if k % 2 else float(rng.uniform(-40, 40)), bool(k % 3),
                               None)
        boxes, out_kps = annotations_to_output(xywh, width, params, (128, 96), keypoints=kps,
                                               flip_idx=COCO_FLIP_IDX, rotation=rotation)
        # the numpy composition
        rot_m = params.matrix((128, 96))
        unrot_m = params.matrix((128, 96), rotated=False)
        b = coco_boxes_to_xyxy(xywh)
        kk = kps.astype(np.float32)
        if params.flipped:
            b = flip_boxes(b, width)
            kk = flip_keypoints(kk, width, COCO_FLIP_IDX)
        corners = rotation == "corners" and params.rot != 0
        want_b = transform_boxes(b, rot_m if corners else unrot_m, corners=corners)
        xy = transform_points(kk[..., :2], rot_m).astype(np.float32)
        kk[..., :2] = np.where((kk[..., 2] > 0)[..., None], xy, np.float32(0))
        np.testing.assert_array_equal(boxes, want_b.astype(np.float32))
        np.testing.assert_array_equal(out_kps, kk)
        assert boxes.dtype == np.float32 and out_kps.dtype == np.float32


def test_annotation_transform_names_an_object_that_leaves_float_range():
    params = AugmentParams((10.0, 10.0), 10.0)                 # a zoom of 12.8
    with pytest.raises(ValueError, match=r"object 1 .*non-finite output-map coordinates"):
        annotations_to_output(np.array([[1.0, 1.0, 5.0, 5.0], [1e38, 1.0, 5.0, 5.0]]), 20,
                              params, (128, 128))
