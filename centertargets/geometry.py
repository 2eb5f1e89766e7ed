"""Affine transforms in CenterNet's convention, and horizontal flips.

A CenterNet sample is cut from the image by a similarity transform defined
by a centre ``c`` (image pixels), a scale ``s`` (the side, in image pixels,
of the region mapped onto the output width; a float, or ``(sw, sh)`` with
``keep_res``), a rotation ``rot`` in degrees and an output size
``(width, height)``.  Points are ``(x, y)``; matrices are 2x3 float64.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

ArrayLike = np.ndarray | Sequence[float]


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    direct = a - b
    return b + np.array([-direct[1], direct[0]], dtype=np.float32)


def get_affine_transform(center: ArrayLike, scale: float | ArrayLike, rot: float,
                         output_size: Sequence[int],
                         shift: ArrayLike = (0.0, 0.0), inv: bool = False) -> np.ndarray:
    """CenterNet's ``get_affine_transform``: the 2x3 float64 matrix image -> output.

    Three point pairs define it: the centre ``c`` maps to the output centre,
    ``c + R(rot) (0, -s_w / 2)`` to the output's top-middle, and a third point
    at a right angle.  ``inv=True`` gives output -> image.  The points are
    built in float32 and solved with ``cv2.getAffineTransform`` exactly as
    upstream does, so the matrix is bit-identical to CenterNet's.

    Parameters
    ----------
    center : (2,) ``(cx, cy)`` in image pixels.
    scale : float (rounded to float32, as upstream) or (2,) ``(sw, sh)`` array (its
        float32 or float64 dtype kept, as upstream); only ``sw`` sets the zoom.
    rot : rotation in degrees (counter-clockwise in the image).
    output_size : ``(width, height)``.
    shift : (2,) fraction of ``scale`` by which to shift the centre.
    """
    center = np.asarray(center, dtype=np.float32)
    if np.ndim(scale) == 0:
        scale = np.array([scale, scale], dtype=np.float32)
    else:   # upstream keeps an array scale's dtype: float64 for keep_res training draws
        scale = np.asarray(scale, dtype=np.result_type(np.asarray(scale).dtype, np.float32))
    shift = np.asarray(shift, dtype=np.float32)
    src_w = scale[0]
    dst_w, dst_h = output_size[0], output_size[1]

    rot_rad = np.pi * rot / 180
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    half = src_w * -0.5
    src_dir = np.array([0 * cs - half * sn, 0 * sn + half * cs], dtype=np.float64)
    dst_dir = np.array([0, dst_w * -0.5], np.float32)

    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + scale * shift
    src[1, :] = center + src_dir + scale * shift
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5], np.float32) + dst_dir
    src[2:, :] = _third_point(src[0, :], src[1, :])
    dst[2:, :] = _third_point(dst[0, :], dst[1, :])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 matrix to points ``(..., 2)``; float64 result of the same shape.

    Computed as ``m[i,0] * x + m[i,1] * y + m[i,2]`` in float64, which is what
    CenterNet's per-point ``np.dot`` gives; cast to float32 to get its targets.
    """
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    x, y = pts[..., 0], pts[..., 1]
    out = np.empty(pts.shape, dtype=np.float64)
    out[..., 0] = m[0, 0] * x + m[0, 1] * y + m[0, 2]
    out[..., 1] = m[1, 0] * x + m[1, 1] * y + m[1, 2]
    return out


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray, corners: bool = False) -> np.ndarray:
    """Boxes ``(N, 4)`` x1, y1, x2, y2 through a 2x3 matrix, float64.

    ``corners=False`` (CenterNet) maps the two defining corners, which is
    right only without rotation; ``corners=True`` maps all four corners and
    returns their axis-aligned hull.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not corners:
        return transform_points(b.reshape(-1, 2, 2), matrix).reshape(-1, 4)
    pts = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], axis=1)
    t = transform_points(pts, matrix)
    return np.concatenate([t.min(axis=1), t.max(axis=1)], axis=1)


def flip_boxes(boxes: np.ndarray, width: int | float) -> np.ndarray:
    """Mirror boxes ``(N, 4)`` x1, y1, x2, y2 in an image ``width`` pixels wide.

    CenterNet's convention ``x -> width - x - 1`` (pixel centres), so x1 and
    x2 swap roles.  Returns a new array of the input's float dtype.
    """
    b = np.array(boxes, copy=True)
    if not np.issubdtype(b.dtype, np.floating):
        b = b.astype(np.float64)
    x1 = b[..., 0].copy()
    b[..., 0] = width - b[..., 2] - 1
    b[..., 2] = width - x1 - 1
    return b


def flip_keypoints(keypoints: np.ndarray, width: int | float,
                   flip_idx: Sequence[tuple[int, int]]) -> np.ndarray:
    """Mirror keypoints ``(N, J, 2 or 3)`` and swap the left/right pairs of ``flip_idx``.

    ``x -> width - x - 1``; visibility (column 2) travels with its joint.
    """
    k = np.array(keypoints, copy=True)
    if not np.issubdtype(k.dtype, np.floating):
        k = k.astype(np.float64)
    k[..., 0] = width - k[..., 0] - 1
    return swap_left_right(k, flip_idx) if len(flip_idx) else k


def swap_left_right(keypoints: np.ndarray, flip_idx: Sequence[tuple[int, int]]) -> np.ndarray:
    """Swap the left/right joints of ``flip_idx`` in keypoints ``(..., J, C)``; coordinates kept.

    After a horizontal flip done by another library (which mirrors the
    coordinates but not the names), the joint labelled "left" is the
    person's right: swap the pairs before encoding.  Returns a copy.
    """
    k = np.asarray(keypoints)
    perm = np.arange(k.shape[-2])
    for a, b in flip_idx:
        perm[a], perm[b] = b, a
    return k[..., perm, :]                     # one gather, a new array
