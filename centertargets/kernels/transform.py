"""A sample's annotations from image pixels to output-map pixels, as one compiled pass.

The arithmetic is upstream CenterNet's, step for step, so the result is
bit-identical to composing the numpy helpers of :mod:`centertargets.geometry`
(``coco_boxes_to_xyxy``, ``flip_boxes``, ``flip_keypoints``,
``transform_boxes``, ``transform_points``), which the tests check:

* ``x2 = x + w`` in float64, then float32;
* the flip ``width - x - 1`` in float32, x1 and x2 trading places; keypoints
  in float32 too, then the left/right joints permuted;
* ``m[i, 0] * x + m[i, 1] * y + m[i, 2]`` in float64 from the float32
  coordinates, rounded to float32 at the end;
* unlabelled joints (v = 0) come out as ``(0, 0, 0)``.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit


@jit
def _apply(m, x, y):
    """``m`` (2, 3) float64 applied to float32 ``(x, y)``: float64 ``(x', y')``."""
    fx = np.float64(x)
    fy = np.float64(y)
    return m[0, 0] * fx + m[0, 1] * fy + m[0, 2], m[1, 0] * fx + m[1, 1] * fy + m[1, 2]


@jit
def corner_hull(m, x1, y1, x2, y2):
    """The hull of a float32 box's four corners through ``m``: float32 ``x1, y1, x2, y2``
    (each corner mapped in float64, the extremes rounded to float32 once)."""
    ax, ay = _apply(m, x1, y1)
    bx, by = _apply(m, x2, y1)
    cx, cy = _apply(m, x1, y2)
    dx, dy = _apply(m, x2, y2)
    return (np.float32(min(min(ax, bx), min(cx, dx))), np.float32(min(min(ay, by), min(cy, dy))),
            np.float32(max(max(ax, bx), max(cx, dx))), np.float32(max(max(ay, by), max(cy, dy))))


@jit
def two_corners(m, x1, y1, x2, y2):
    """A float32 box's two defining corners through ``m``: float32 ``x1, y1, x2, y2``."""
    ax, ay = _apply(m, x1, y1)
    bx, by = _apply(m, x2, y2)
    return np.float32(ax), np.float32(ay), np.float32(bx), np.float32(by)


@jit
def annotations_to_output(boxes_xywh, kps, width, flipped, perm, m_boxes, m_kps, corners,
                          out_boxes, out_kps):
    """Boxes and keypoints through one sample's flip and affine transform.

    Parameters
    ----------
    boxes_xywh : float64 (N, 4), COCO ``x, y, w, h`` in the unflipped image.
    kps : float64 (N, J, 3), ``x, y, v`` in the unflipped image (J may be 0).
    width : float32, the unflipped image's width (the flip is ``width - x - 1``).
    flipped : bool, mirror horizontally before the transform.
    perm : int64 (J,), joint j of the output is joint ``perm[j]`` of the
        flipped input (the left/right swap); used only when ``flipped``.
    m_boxes : float64 (2, 3), the matrix for boxes (CenterNet: the unrotated one).
    m_kps : float64 (2, 3), the matrix for keypoints (the rotated one).
    corners : bool, map the 4 corners of each box and take their hull (for
        rotations) instead of the two defining corners (CenterNet).
    out_boxes : float32 (N, 4), written: x1, y1, x2, y2 in output pixels.
    out_kps : float32 (N, J, 3), written: x, y in output pixels where v > 0, v.

    Returns
    -------
    The index of the first object whose output is not finite, or -1.
    """
    one = np.float32(1.0)
    bad = -1
    for i in range(boxes_xywh.shape[0]):
        x1 = np.float32(boxes_xywh[i, 0])
        y1 = np.float32(boxes_xywh[i, 1])
        x2 = np.float32(boxes_xywh[i, 0] + boxes_xywh[i, 2])
        y2 = np.float32(boxes_xywh[i, 1] + boxes_xywh[i, 3])
        if flipped:
            x1, x2 = width - x2 - one, width - x1 - one
        if corners:
            b = corner_hull(m_boxes, x1, y1, x2, y2)
        else:
            b = two_corners(m_boxes, x1, y1, x2, y2)
        for c in range(4):
            out_boxes[i, c] = b[c]
        for c in range(4):
            if bad < 0 and not math.isfinite(out_boxes[i, c]):
                bad = i
        for j in range(kps.shape[1]):
            src = perm[j] if flipped else j
            x = np.float32(kps[i, src, 0])
            y = np.float32(kps[i, src, 1])
            v = np.float32(kps[i, src, 2])
            if flipped:
                x = width - x - one
            out_kps[i, j, 2] = v
            if v > 0:
                px, py = _apply(m_kps, x, y)
                out_kps[i, j, 0] = np.float32(px)
                out_kps[i, j, 1] = np.float32(py)
                if bad < 0 and not (math.isfinite(out_kps[i, j, 0])
                                    and math.isfinite(out_kps[i, j, 1])):
                    bad = i
            else:
                out_kps[i, j, 0] = np.float32(0.0)
                out_kps[i, j, 1] = np.float32(0.0)
    return bad


@jit
def affine_source_points(cx, cy, src_w, sn, cs, src):
    """The image side of CenterNet's ``get_affine_transform`` (no shift), into ``src``.

    ``cx, cy``: the centre's values (float64; a float32 centre converts exactly);
    ``src_w``: the scale's width as its dtype holds it; ``sn, cs``: the rotation's
    sine and cosine (0 and 1 for none), computed by the caller with numpy as upstream.
    ``src`` float32 (3, 2) is written: the centre, ``centre + R (0, -src_w / 2)`` summed
    in float64 as upstream's ``src_dir``, and the third point at a right angle in float32.
    """
    half = src_w * -0.5                     # exact: a halving
    dir_x = 0 * cs - half * sn
    dir_y = 0 * sn + half * cs
    src[0, 0] = cx
    src[0, 1] = cy
    src[1, 0] = cx + dir_x
    src[1, 1] = cy + dir_y
    dx = src[0, 0] - src[1, 0]              # float32 operands: float32 arithmetic
    dy = src[0, 1] - src[1, 1]
    src[2, 0] = src[1, 0] - dy
    src[2, 1] = src[1, 1] + dx
