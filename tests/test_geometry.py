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
