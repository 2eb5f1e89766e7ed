"""Gaussian radius and Gaussian drawing kernels (numba, no Python objects).

Conventions: heatmaps are 2-D ``float32`` arrays indexed ``[y, x]``; centres
are integer pixel coordinates ``(cx, cy)`` unless stated; drawing is an
element-wise maximum, never a sum, so overlapping objects keep their peaks.
All functions are plain ``@njit(nogil=True)`` and may be called from other
kernels or from Python.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit

#: ``radius_formula`` codes understood by :func:`gaussian_radius`.
RADIUS_CENTERNET = 0
RADIUS_CORRECTED = 1
#: Added to a formula code: :func:`object_radius` takes the box sides as they are instead of
#: rounding them up first (mmdetection's CenterNet).
RADIUS_EXACT_SIDES = 2

_EPS64 = np.finfo(np.float64).eps

#: Patches for radii up to this value are precomputed once per process.
PATCH_TABLE_MAX_RADIUS = 48


@jit
def gaussian_radius_centernet(height: float, width: float, min_overlap: float) -> float:
    """CenterNet's (CornerNet's) ``gaussian_radius``, bit for bit.

    Takes the smallest of three values meant to be the roots derived in
    :func:`gaussian_radius_corrected`, but computes each as
    ``(b + sqrt(b^2 - 4ac)) / 2``: the wrong root, and without dividing by
    ``a``.  Case 1 (``a = 1``) gets its large root (a shift wider than the box); case 2
    (``a = 4``) gets 4x its large root; case 3 gets ``a3 = 4 * min_overlap``
    times its right root (2.8x at 0.7), and that is almost always the
    minimum.  Against the corrected radius (whose minimum is usually case 1
    or 2) the legacy one is about 3.3x-3.6x larger at ``min_overlap = 0.7``.
    CenterNet's published models were trained with it, which is why it is
    the default here.

    Parameters are the box ``height`` and ``width`` (CenterNet passes
    ``math.ceil`` of each) and ``min_overlap``; returns a float64 radius.
    """
    a1 = 1.0
    b1 = height + width
    c1 = width * height * (1.0 - min_overlap) / (1.0 + min_overlap)
    sq1 = math.sqrt(b1 ** 2 - 4.0 * a1 * c1)
    r1 = (b1 + sq1) / 2.0

    a2 = 4.0
    b2 = 2.0 * (height + width)
    c2 = (1.0 - min_overlap) * width * height
    sq2 = math.sqrt(b2 ** 2 - 4.0 * a2 * c2)
    r2 = (b2 + sq2) / 2.0

    a3 = 4.0 * min_overlap
    b3 = -2.0 * min_overlap * (height + width)
    c3 = (min_overlap - 1.0) * width * height
    sq3 = math.sqrt(b3 ** 2 - 4.0 * a3 * c3)
    r3 = (b3 + sq3) / 2.0
    return min(r1, r2, r3)


@jit
def gaussian_radius_corrected(height: float, width: float, min_overlap: float) -> float:
    """Largest corner shift ``r`` that keeps IoU >= ``min_overlap`` in all three cases.

    For a ground-truth box ``w x h`` and a prediction whose corners are off by
    at most ``r`` pixels (CornerNet's derivation):

    1. one corner inside, one outside (same size, shifted by ``r`` in x and y):
       ``IoU = (w-r)(h-r) / (2wh - (w-r)(h-r))``.  Setting it to ``o`` gives
       ``r^2 - (w+h) r + wh (1-o)/(1+o) = 0``; the shift is the small root
       ``r1 = (b1 - sqrt(b1^2 - 4 a1 c1)) / (2 a1)``.
    2. both corners inside (prediction shrunk by ``r`` on each side):
       ``(w-2r)(h-2r) = o wh``, i.e. ``4 r^2 - 2(w+h) r + (1-o) wh = 0``;
       small root ``r2 = (b2 - sqrt(b2^2 - 4 a2 c2)) / (2 a2)``.
    3. both corners outside (prediction grown by ``r`` on each side):
       ``wh = o (w+2r)(h+2r)``, i.e. ``4o r^2 + 2o(w+h) r + (o-1) wh = 0``;
       with ``b3 = -2o(w+h)`` the positive root is
       ``r3 = (b3 + sqrt(b3^2 - 4 a3 c3)) / (2 a3)``.

    The radius is ``min(r1, r2, r3)`` (float64).
    """
    a1 = 1.0
    b1 = height + width
    c1 = width * height * (1.0 - min_overlap) / (1.0 + min_overlap)
    sq1 = math.sqrt(b1 ** 2 - 4.0 * a1 * c1)
    r1 = (b1 - sq1) / (2.0 * a1)

    a2 = 4.0
    b2 = 2.0 * (height + width)
    c2 = (1.0 - min_overlap) * width * height
    sq2 = math.sqrt(b2 ** 2 - 4.0 * a2 * c2)
    r2 = (b2 - sq2) / (2.0 * a2)

    a3 = 4.0 * min_overlap
    b3 = -2.0 * min_overlap * (height + width)
    c3 = (min_overlap - 1.0) * width * height
    sq3 = math.sqrt(b3 ** 2 - 4.0 * a3 * c3)
    r3 = (b3 + sq3) / (2.0 * a3)
    return min(r1, r2, r3)


@jit
def gaussian_radius(height: float, width: float, min_overlap: float, formula: int) -> float:
    """Dispatch on ``formula`` (``RADIUS_CENTERNET`` or ``RADIUS_CORRECTED``, plus
    ``RADIUS_EXACT_SIDES``, which only :func:`object_radius` reads); float64."""
    if formula & RADIUS_CORRECTED:
        return gaussian_radius_corrected(height, width, min_overlap)
    return gaussian_radius_centernet(height, width, min_overlap)


@jit
def object_radius(h: np.float32, w: np.float32, formula: int, min_overlap: float,
                  min_radius: int) -> int:
    """Integer Gaussian radius of a box ``w x h`` (output pixels), as CenterNet derives it.

    ``max(min_radius, int(gaussian_radius(ceil(h), ceil(w))))``; with
    ``RADIUS_EXACT_SIDES`` in ``formula``, the sides as they are (mmdetection).
    """
    if formula & RADIUS_EXACT_SIDES:
        r = gaussian_radius(float(h), float(w), min_overlap, formula)
    else:
        r = gaussian_radius(float(math.ceil(h)), float(math.ceil(w)), min_overlap, formula)
    return max(min_radius, int(r))


@jit
def fill_umich_patch(radius: int, out: np.ndarray) -> None:
    """Write CenterNet's ``gaussian2D((d, d), sigma=d/6)`` with ``d = 2r+1`` into ``out``.

    ``out`` is a float64 vector of ``d*d`` values, row-major ``[dy + r, dx + r]``;
    values below ``eps * max`` are set to 0 as upstream does.
    """
    d = 2 * radius + 1
    sigma = d / 6.0
    denom = 2.0 * sigma * sigma
    m = (d - 1.0) / 2.0
    hmax = 0.0
    for iy in range(d):
        y = iy - m
        for ix in range(d):
            x = ix - m
            v = math.exp(-(x * x + y * y) / denom)
            out[iy * d + ix] = v
            if v > hmax:
                hmax = v
    thresh = _EPS64 * hmax
    for i in range(d * d):
        if out[i] < thresh:
            out[i] = 0.0


def umich_patch_numpy(radius: int) -> np.ndarray:
    """Upstream's ``gaussian2D((d, d), sigma=d/6)``, ``d = 2r+1``, with numpy's ``exp``: the
    exact float64 values upstream draws (flat, row-major).  :func:`fill_umich_patch` computes
    the same formula in compiled code with the C library's ``exp``, which can differ from
    numpy's in the last bit of a float64."""
    d = 2 * radius + 1
    sigma = d / 6.0
    m = (d - 1.0) / 2.0
    y, x = np.ogrid[-m:m + 1, -m:m + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h.ravel()


_PATCH_TABLES: tuple[np.ndarray, np.ndarray] | None = None


def patch_table() -> np.ndarray:
    """Flat float64 table of every umich patch with radius <= ``PATCH_TABLE_MAX_RADIUS``.

    Computed once per process with numpy (:func:`umich_patch_numpy`, about 4 ms),
    so the values are upstream's own; read-only afterwards, so threads and forked
    workers share it safely, and a radius beyond the table is computed by
    :func:`fill_umich_patch` in the kernel.
    """
    return _patch_tables()[0]


def patch_table32() -> np.ndarray:
    """:func:`patch_table` rounded to float32: what a ``k = 1`` draw writes."""
    return _patch_tables()[1]


def _patch_tables() -> tuple[np.ndarray, np.ndarray]:
    global _PATCH_TABLES
    if _PATCH_TABLES is None:
        table = np.concatenate([umich_patch_numpy(r) for r in range(PATCH_TABLE_MAX_RADIUS + 1)])
        table32 = table.astype(np.float32)
        table.flags.writeable = False
        table32.flags.writeable = False
        _PATCH_TABLES = (table, table32)
    return _PATCH_TABLES


#: Largest radius :func:`mmdet_patch_table32` tabulates (5 MB of float32 patches).
MMDET_TABLE_MAX_RADIUS = 96
_MMDET32: np.ndarray | None = None


def mmdet_patch_table32() -> np.ndarray:
    """The umich patches as mmdetection computes them (``gaussian2D`` of
    ``mmdet/models/utils/gaussian_target.py``): in float32 with torch, ``exp(-(x^2 + y^2) /
    (2 sigma^2))``, ``sigma = (2r + 1) / 6``, values below float32's eps times the peak set
    to 0; radius <= ``MMDET_TABLE_MAX_RADIUS``, in :func:`patch_table32`'s layout.

    torch's float32 ``exp`` is not numpy's, nor CenterNet's float64 rounded once (they differ
    in the last bits of about one value in a hundred), so the table is computed with torch
    itself, once per process: torch is needed for ``heatmap="mmdet"``.
    """
    global _MMDET32
    if _MMDET32 is None:
        try:
            import torch
        except ImportError as exc:
            raise ImportError("heatmap='mmdet' computes its Gaussians with torch, as "
                              "mmdetection does: install torch") from exc
        parts = []
        for r in range(MMDET_TABLE_MAX_RADIUS + 1):
            sigma = (2 * r + 1) / 6
            x = torch.arange(-r, r + 1, dtype=torch.float32).view(1, -1)
            y = torch.arange(-r, r + 1, dtype=torch.float32).view(-1, 1)
            h = (-(x * x + y * y) / (2 * sigma * sigma)).exp()
            h[h < torch.finfo(h.dtype).eps * h.max()] = 0
            parts.append(h.reshape(-1).numpy())
        table = np.concatenate(parts).astype(np.float32)
        table.flags.writeable = False
        _MMDET32 = table
    return _MMDET32


#: Largest radius :func:`patch_table32_covering` tabulates (beyond it, 26 MB of float32
#: patches, the kernels compute the patch).
PATCH_TABLE_GROW_RADIUS = 176
_GROWN32: tuple[int, np.ndarray] | None = None


def patch_table32_covering(radius: int) -> np.ndarray:
    """:func:`patch_table32` extended with numpy's patches (upstream's own values) to cover
    ``radius`` (rounded up to a multiple of 16, at most ``PATCH_TABLE_GROW_RADIUS``), for
    maps at input resolution (CenterTrack's ``pre_hm``), whose radii are 4x the output's.

    Grown once per size and process, read-only, same layout (radius r at
    ``r (2r - 1)(2r + 1) / 3``), so it is a drop-in for ``table32``.
    """
    global _GROWN32
    if radius <= PATCH_TABLE_MAX_RADIUS:
        return patch_table32() if _GROWN32 is None else _GROWN32[1]
    want = min(PATCH_TABLE_GROW_RADIUS, -(-int(radius) // 16) * 16)
    have, table = _GROWN32 if _GROWN32 is not None else (PATCH_TABLE_MAX_RADIUS,
                                                         patch_table32())
    if have < want:
        extra = [umich_patch_numpy(r).astype(np.float32) for r in range(have + 1, want + 1)]
        table = np.concatenate([table, *extra])
        table.flags.writeable = False
        _GROWN32 = (want, table)
    return table


@jit
def get_patch(radius: int, table: np.ndarray) -> np.ndarray:
    """The umich patch of ``radius`` (float64, ``(2r+1)^2``): a table view, or computed."""
    d = 2 * radius + 1
    start = radius * (2 * radius - 1) * (2 * radius + 1) // 3
    if start + d * d <= table.shape[0]:
        return table[start:start + d * d]
    out = np.empty(d * d, dtype=np.float64)
    fill_umich_patch(radius, out)
    return out


@jit
def get_patch32(radius: int, table32: np.ndarray) -> np.ndarray:
    """Float32 umich patch of ``radius``: a view of :func:`patch_table32`, or computed."""
    d = 2 * radius + 1
    start = radius * (2 * radius - 1) * (2 * radius + 1) // 3
    if start + d * d <= table32.shape[0]:
        return table32[start:start + d * d]
    out = np.empty(d * d, dtype=np.float64)
    fill_umich_patch(radius, out)
    return out.astype(np.float32)


@jit
def draw_umich_unit(heatmap: np.ndarray, cx: int, cy: int, radius: int,
                    patch32: np.ndarray) -> None:
    """:func:`draw_umich` with ``k = 1`` from a float32 patch (:func:`get_patch32`).

    The same values (``float32(g * 1) == float32(g)``), written row by row
    with a branch-free maximum so the inner loop vectorises.
    """
    H, W = heatmap.shape
    d = 2 * radius + 1
    x0 = max(cx - radius, 0)
    x1 = min(cx + radius + 1, W)
    y0 = max(cy - radius, 0)
    y1 = min(cy + radius + 1, H)
    if x0 >= x1 or y0 >= y1:
        return
    for py in range(y0, y1):
        start = (py - cy + radius) * d + (x0 - cx + radius)
        row = heatmap[py, x0:x1]
        src = patch32[start:start + (x1 - x0)]
        for i in range(x1 - x0):
            row[i] = max(row[i], src[i])


@jit
def draw_umich(heatmap: np.ndarray, cx: int, cy: int, radius: int, k: float,
               patch: np.ndarray) -> None:
    """CenterNet's ``draw_umich_gaussian``: ``heatmap = max(heatmap, k * gaussian)``.

    ``heatmap`` float32 ``(H, W)``; ``patch`` from :func:`get_patch` for
    ``radius``.  Pixels outside the map are skipped; the peak (``k``) sits at
    ``(cx, cy)``.
    """
    H, W = heatmap.shape
    d = 2 * radius + 1
    for dy in range(-radius, radius + 1):
        py = cy + dy
        if py < 0 or py >= H:
            continue
        row = (dy + radius) * d + radius
        for dx in range(-radius, radius + 1):
            px = cx + dx
            if px < 0 or px >= W:
                continue
            v = np.float32(patch[row + dx] * k)
            if v > heatmap[py, px]:
                heatmap[py, px] = v


def msra_patch(sigma: float) -> np.ndarray:
    """The MSRA Gaussian window for ``sigma``: float32 ``(n, n)``, ``n = ceil(6 sigma + 1)``.

    Computed with numpy exactly as CenterNet's ``draw_msra_gaussian`` does
    (float32 throughout, numpy's float32 ``exp``), so drawing it reproduces
    upstream bit for bit.  The window depends only on ``sigma``: the centre
    is always an integer pixel.
    """
    tmp_size = sigma * 3
    size = 2 * tmp_size + 1
    x = np.arange(0, size, 1, np.float32)
    y = x[:, np.newaxis]
    x0 = y0 = size // 2
    g = np.exp(- ((x - x0) ** 2 + (y - y0) ** 2) / np.float32(2 * sigma ** 2))
    return np.ascontiguousarray(g, dtype=np.float32)


@jit
def draw_msra(heatmap: np.ndarray, cx: float, cy: float, sigma: float,
              patch: np.ndarray) -> None:
    """CenterNet's ``draw_msra_gaussian``: ``heatmap = max(heatmap, patch)`` around ``int(c + 0.5)``.

    ``patch`` is :func:`msra_patch` of ``sigma``.  The window spans ``3 sigma``
    each side; corners truncate toward zero exactly like upstream's ``int()``.
    """
    H, W = heatmap.shape
    tmp = sigma * 3.0
    mu_x = int(cx + 0.5)
    mu_y = int(cy + 0.5)
    ul_x = int(mu_x - tmp)
    ul_y = int(mu_y - tmp)
    br_x = int(mu_x + tmp + 1.0)
    br_y = int(mu_y + tmp + 1.0)
    if ul_x >= W or ul_y >= H or br_x < 0 or br_y < 0:
        return
    n = patch.shape[0]
    gx0 = max(0, -ul_x)
    gx1 = min(min(br_x, W) - ul_x, n)
    gy0 = max(0, -ul_y)
    gy1 = min(min(br_y, H) - ul_y, n)
    ix0 = max(0, ul_x)
    iy0 = max(0, ul_y)
    for gy in range(gy0, gy1):
        py = iy0 + gy - gy0
        for gx in range(gx0, gx1):
            px = ix0 + gx - gx0
            v = patch[gy, gx]
            if v > heatmap[py, px]:
                heatmap[py, px] = v


@jit
def draw_msra_sigma(heatmap: np.ndarray, cx: int, cy: int, sigma: int, zero_nan: bool) -> None:
    """CenterNet's ``draw_msra_gaussian`` with a per-object integer ``sigma`` (exdet, ddd).

    The window (``3 sigma`` each side) is computed here in upstream's float32
    arithmetic, ``exp(-(dx^2 + dy^2) / (2 sigma^2))``, and merged with
    ``max``.  ``sigma == 0`` is upstream's 0/0: NaN at the centre pixel with
    ``zero_nan`` (merged as ``np.maximum`` does, NaN wins), else the limit of
    the Gaussian, 1.0 at the centre.
    """
    H, W = heatmap.shape
    tmp = sigma * 3
    ul_x = cx - tmp
    ul_y = cy - tmp
    br_x = cx + tmp + 1
    br_y = cy + tmp + 1
    if ul_x >= W or ul_y >= H or br_x < 0 or br_y < 0:
        return
    denom = np.float32(2 * sigma * sigma)
    for py in range(max(0, ul_y), min(br_y, H)):
        dy = np.float32(py - cy)
        for px in range(max(0, ul_x), min(br_x, W)):
            dx = np.float32(px - cx)
            if sigma == 0:
                if zero_nan:
                    heatmap[py, px] = np.float32(np.nan)
                    continue
                g = np.float32(1.0)
            else:
                g = np.exp(-(dx * dx + dy * dy) / denom)
            h = heatmap[py, px]
            if g > h:
                heatmap[py, px] = g


@jit
def draw_elliptic(heatmap: np.ndarray, cx: int, cy: int, radius_x: int, radius_y: int,
                  k: float) -> None:
    """TTFNet's truncated elliptic Gaussian: sigmas ``(2 r_x + 1)/6`` and ``(2 r_y + 1)/6``.

    ``heatmap = max(heatmap, k * exp(-(dx^2 / 2 sx^2 + dy^2 / 2 sy^2)))`` over a
    ``(2 r_y + 1) x (2 r_x + 1)`` window; values below ``eps * max`` are 0.
    """
    H, W = heatmap.shape
    sx = (2 * radius_x + 1) / 6.0
    sy = (2 * radius_y + 1) / 6.0
    for dy in range(-radius_y, radius_y + 1):
        py = cy + dy
        if py < 0 or py >= H:
            continue
        for dx in range(-radius_x, radius_x + 1):
            px = cx + dx
            if px < 0 or px >= W:
                continue
            g = math.exp(-(dx * dx / (2.0 * sx * sx) + dy * dy / (2.0 * sy * sy)))
            if g < _EPS64:
                g = 0.0
            v = np.float32(g * k)
            if v > heatmap[py, px]:
                heatmap[py, px] = v


@jit
def draw_dense_reg(regmap: np.ndarray, heatmap: np.ndarray, channel: int, cx: int, cy: int,
                   value: np.ndarray, radius: int, is_offset: bool, patch: np.ndarray) -> None:
    """CenterNet's ``draw_dense_reg``: write ``value`` where this object's Gaussian wins.

    ``regmap`` float32 ``(D, H, W)``; ``heatmap`` float32 ``(C, H, W)``, compared
    at ``channel`` or, when ``channel < 0``, at its maximum over channels (what
    ``dense_wh`` passes).  A pixel gets the value when the unscaled float64
    Gaussian is ``>=`` the heatmap there.  ``value`` float32 ``(D,)``; with
    ``is_offset`` and ``D == 2`` each pixel gets ``value - (dx, dy)``, the vector
    from that pixel to the target point.
    """
    D = regmap.shape[0]
    C, H, W = heatmap.shape
    d = 2 * radius + 1
    for dy in range(-radius, radius + 1):
        py = cy + dy
        if py < 0 or py >= H:
            continue
        row = (dy + radius) * d + radius
        for dx in range(-radius, radius + 1):
            px = cx + dx
            if px < 0 or px >= W:
                continue
            if channel >= 0:
                h = heatmap[channel, py, px]
            else:
                h = heatmap[0, py, px]
                for c in range(1, C):
                    if heatmap[c, py, px] > h:
                        h = heatmap[c, py, px]
            if patch[row + dx] >= h:
                if is_offset and D == 2:
                    regmap[0, py, px] = np.float32(np.float64(value[0]) - dx)
                    regmap[1, py, px] = np.float32(np.float64(value[1]) - dy)
                else:
                    for i in range(D):
                        regmap[i, py, px] = value[i]
