"""Affine transforms in CenterNet's convention, and horizontal flips.

A CenterNet sample is cut from the image by a similarity transform defined
by a centre ``c`` (image pixels), a scale ``s`` (the side, in image pixels,
of the region mapped onto the output width; a float, or ``(sw, sh)`` with
``keep_res``), a rotation ``rot`` in degrees and an output size
``(width, height)``.  Points are ``(x, y)``; matrices are 2x3 float64.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import cv2
import numpy as np

from .kernels import transform as TK

ArrayLike = np.ndarray | Sequence[float]


def get_affine_transform(center: ArrayLike, scale: float | ArrayLike, rot: float,
                         output_size: Sequence[int],
                         shift: ArrayLike = (0.0, 0.0), inv: bool = False) -> np.ndarray:
    """CenterNet's ``get_affine_transform``: the 2x3 float64 matrix image -> output.

    Three point pairs define it: the centre ``c`` maps to the output centre,
    ``c + R(rot) (0, -s_w / 2)`` to the output's top-middle, and a third point
    at a right angle.  ``inv=True`` gives output -> image.  The points are
    built in float32 with upstream's operations, in upstream's types, and
    solved with ``cv2.getAffineTransform``, so the matrix is bit-identical to
    CenterNet's (the tests compare it with a transcription of upstream's code).

    Parameters
    ----------
    center : (2,) ``(cx, cy)`` in image pixels; float32 unless a float64 array.
    scale : float (rounded to float32, as upstream) or (2,) ``(sw, sh)`` array (its
        float32 or float64 dtype kept, as upstream); only ``sw`` sets the zoom.
    rot : rotation in degrees (counter-clockwise in the image).
    output_size : ``(width, height)``.
    shift : (2,) fraction of ``scale`` by which to shift the centre.
    """
    # a float64 array centre stays float64 (upstream's exdet and ddd keep c in float64: it is
    # rounded to float32 only after c + src_dir); anything else is float32 (ctdet, pose)
    center = center if isinstance(center, np.ndarray) and center.dtype == np.float64 else \
        np.asarray(center, dtype=np.float32)
    if isinstance(scale, np.ndarray) and scale.dtype == np.float64 and scale.ndim == 1:
        src_w: Any = float(scale[0])      # the same float64 arithmetic, without numpy scalars
    elif isinstance(scale, (int, float, np.number)) or np.ndim(scale) == 0:
        scale = np.array([scale, scale], dtype=np.float32)
        src_w = scale[0]
    else:   # upstream keeps an array scale's dtype: float64 for keep_res training draws
        scale = np.asarray(scale, dtype=np.result_type(np.asarray(scale).dtype, np.float32))
        src_w = scale[0]
    if rot == 0:                          # sin(0) and cos(0) are exact: skip the calls
        sn, cs = 0.0, 1.0
    else:
        rot_rad = np.pi * rot / 180
        sn, cs = float(np.sin(rot_rad)), float(np.cos(rot_rad))
    src = np.empty((3, 2), dtype=np.float32)
    if not any(shift):               # the default (upstream never shifts): one compiled call
        TK.affine_source_points(float(center[0]), float(center[1]), float(src_w), sn, cs, src)
    else:
        # upstream: src_dir in float64; src[0] = c + s * shift, src[1] = c + src_dir + s * shift
        half = float(src_w) * -0.5
        src_dir = np.array([0 * cs - half * sn, 0 * sn + half * cs], np.float64)
        offset = scale * np.asarray(shift, dtype=np.float32)
        src[0] = center + offset
        src[1] = center + src_dir + offset
        _third_point(src)
    dst = _output_points(int(output_size[0]), int(output_size[1]))
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def _third_point(pts: np.ndarray) -> None:
    """Upstream's ``get_3rd_point`` of rows 0 and 1 of float32 ``pts`` (3, 2), into row 2:
    ``b + (-(a - b)_y, (a - b)_x)``, every step in float32."""
    a, b = pts[0], pts[1]
    dx, dy = a[0] - b[0], a[1] - b[1]
    pts[2, 0] = b[0] - dy
    pts[2, 1] = b[1] + dx


@lru_cache(maxsize=64)
def _output_points(dst_w: int, dst_h: int) -> np.ndarray:
    """The output side's three points for an output size (read-only, shared)."""
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5], np.float32) + \
        np.array([0, dst_w * -0.5], np.float32)
    _third_point(dst)
    dst.flags.writeable = False
    return dst


def coco_boxes_to_xyxy(bboxes_xywh: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """COCO ``[x, y, w, h]`` (N, 4) -> float32 ``x1, y1, x2, y2``, sums in float64 as CenterNet."""
    b = np.asarray(bboxes_xywh, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]],
                    axis=1).astype(np.float32)


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
    return k[..., flip_permutation(k.shape[-2], flip_idx), :]      # one gather, a new array


def flip_permutation(num_joints: int, flip_idx: Sequence[tuple[int, int]]) -> np.ndarray:
    """int64 (J,) read-only: joint j after a flip is joint ``perm[j]`` before it.

    Raises ``ValueError`` naming the pair when an index is outside ``[0, num_joints)``.
    """
    try:                                # config.flip_idx: already a hashable tuple of pairs
        return _flip_permutation(num_joints, flip_idx)      # type: ignore[arg-type]
    except TypeError:                   # lists, arrays
        return _flip_permutation(int(num_joints), tuple((int(a), int(b)) for a, b in flip_idx))


@lru_cache(maxsize=64)
def _flip_permutation(num_joints: int, flip_idx: tuple[tuple[int, int], ...]) -> np.ndarray:
    perm = np.arange(num_joints)
    for a, b in flip_idx:
        a, b = int(a), int(b)
        if not (0 <= a < num_joints and 0 <= b < num_joints):
            raise ValueError(f"flip_idx pair ({a}, {b}): expected joint indices in "
                             f"[0, {num_joints})")
        perm[a], perm[b] = b, a
    perm.flags.writeable = False
    return perm


def box_3d_corners(dim: Sequence[float], location: Sequence[float], rotation_y: float
                   ) -> np.ndarray:
    """(8, 3) corners of a KITTI box: ``dim`` (h, w, l), ``location`` its bottom centre (X, Y,
    Z; Y down), yawed by ``rotation_y`` about the Y axis.  Corners 0-3 are the bottom face."""
    h, w, l = (float(v) for v in dim)
    c, s = np.cos(rotation_y), np.sin(rotation_y)
    xs = np.array([l, l, -l, -l, l, l, -l, -l]) / 2
    ys = np.array([0, 0, 0, 0, -h, -h, -h, -h], np.float64)
    zs = np.array([w, -w, -w, w, w, -w, -w, w]) / 2
    return np.stack([c * xs + s * zs, ys, -s * xs + c * zs], 1) + np.asarray(location, float)
