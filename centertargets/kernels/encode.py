"""What every task's fused encoder kernel shares: status codes, stats, box and peak helpers.

Each task's kernel (every target of one sample in one pass) lives in its unit
under :mod:`centertargets.tasks`.  Inputs are already in output-map pixel
coordinates (float32).  All output arrays are preallocated and zeroed by the
caller.  What a config does not use
comes in as ``None``: the MSRA window (``msra``) unless ``heatmap="msra"``,
``elliptic_alpha`` unless ``heatmap="elliptic"``, and the dense heads.  numba
prunes ``if x is not None`` branches on ``None`` arguments before typing them,
so each specialisation compiles (and caches) only the drawing code its config
uses, once per machine.  Cheap heads that are off are passed as empty arrays
with their ``write_*`` flag False instead, so that they do not multiply the
specialisations.

``stats`` (int64, ``NSTATS``) and ``status`` (int8, one per input object)
tell the caller what was left out; see ``centertargets.encoders.EncodeReport``.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .gaussian import draw_elliptic, draw_msra, draw_umich_unit, object_radius

# indices into ``stats``
S_INPUT = 0            # objects given
S_CONSIDERED = 1       # objects within max_objs
S_ENCODED = 2          # objects written to the heatmap
S_DROPPED = 3          # objects beyond max_objs
S_DEGENERATE = 4       # boxes with zero width or height after clipping to the map
S_COLLISIONS = 5       # centres landing on a pixel already holding another peak of the class
S_NO_KEYPOINTS = 6     # persons without any labelled keypoint (multi_pose)
S_KPS_LABELLED = 7     # labelled (v > 0) keypoints of considered, non-degenerate persons
S_KPS_ENCODED = 8      # of those, inside the output map
S_KPS_OUTSIDE = 9      # of those, outside the output map
S_BAD_CLASS = 10       # objects whose class is outside [0, C): nothing is encoded then
S_IGNORED = 11         # ignore regions and skipped categories (ddd): in hm at most, no slot
S_DRAWS = 12           # rows written to ``draws`` (sparse heatmaps, see kernels/canvas.py)
S_DRAWS_LOST = 13      # rows that did not fit (never happens: ``draws`` is sized per config)
NSTATS = 14

# values of ``status``
ST_ENCODED = 0
ST_DROPPED = 1
ST_DEGENERATE = 2
ST_NO_KEYPOINTS = 3
ST_BAD_CLASS = 4
ST_IGNORED = 5



@jit
def clip32(v: np.float32, hi: int) -> np.float32:
    if v < 0:
        return np.float32(0.0)
    if v > hi:
        return np.float32(hi)
    return v


@jit
def start_objects(boxes, classes, C, M, stats, status):
    """Count the objects and mark those beyond ``max_objs``; returns how many are considered.

    Every class is checked against ``[0, C)`` first, whatever its slot: when one is outside,
    those objects are marked ``ST_BAD_CLASS``, counted in ``S_BAD_CLASS``, and nothing is
    encoded (0 is returned), so no caller can write outside ``hm`` by passing a bad class.
    """
    n = boxes.shape[0]              # classes has n entries too: the callers check it
    stats[S_INPUT] = n
    for k in range(n):
        if classes[k] < 0 or classes[k] >= C:
            status[k] = ST_BAD_CLASS
            stats[S_BAD_CLASS] += 1
    if stats[S_BAD_CLASS] > 0:
        return 0
    return consider_objects(n, M, stats, status)


@jit
def consider_objects(n, M, stats, status):
    """After the class check: the first ``M`` objects are considered, the rest marked
    ``ST_DROPPED``; returns how many are considered."""
    nobj = min(n, M)
    stats[S_CONSIDERED] = nobj
    stats[S_DROPPED] = n - nobj
    for k in range(nobj, n):
        status[k] = ST_DROPPED
    return nobj


@jit
def clip_box(boxes, k, W, H):
    """Box k's corners clipped to a ``W x H`` map: float32 ``(x1, y1, x2, y2)``."""
    return (clip32(boxes[k, 0], W - 1), clip32(boxes[k, 1], H - 1), clip32(boxes[k, 2], W - 1),
            clip32(boxes[k, 3], H - 1))


@jit
def clipped_box(boxes, k, W, H):
    """Box k clipped to the map as CenterNet does: ``(w, h, ctx, cty)`` in float32."""
    x1, y1, x2, y2 = clip_box(boxes, k, W, H)
    return x2 - x1, y2 - y1, (x1 + x2) / np.float32(2.0), (y1 + y2) / np.float32(2.0)


@jit
def window_radius(h, w, msra, msra_sigma, radius_formula, min_overlap, min_radius):
    """The window radius: the MSRA sigma (CenterNet's ``hm_gauss``) or the box-derived radius."""
    if msra is not None:
        return int(msra_sigma)
    return object_radius(h, w, radius_formula, min_overlap, min_radius)


@jit
def draw_peak(hm2d, cx, cy, radius, msra, msra_sigma, elliptic_alpha, w, h, p32):
    """An object centre: msra (window ``msra``), elliptic (``elliptic_alpha``) or umich
    (patch ``p32`` of ``radius``); the two unused of the three are None."""
    if msra is not None:
        draw_msra(hm2d, float(cx), float(cy), msra_sigma, msra)
    elif elliptic_alpha is not None:
        rx = max(0, int(elliptic_alpha * w / 2.0))
        ry = max(0, int(elliptic_alpha * h / 2.0))
        draw_elliptic(hm2d, cx, cy, rx, ry, 1.0)
    else:
        draw_umich_unit(hm2d, cx, cy, radius, p32)


@jit
def draw_point(hm2d, cx, cy, radius, msra, msra_sigma, p32):
    """A joint (or dense mask): msra, else the umich patch ``p32`` (elliptic has no joint form)."""
    if msra is not None:
        draw_msra(hm2d, float(cx), float(cy), msra_sigma, msra)
    else:
        draw_umich_unit(hm2d, cx, cy, radius, p32)
