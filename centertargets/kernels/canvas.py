"""Heatmap writes that either draw into a dense map or append a row to a draw list.

A task kernel that supports sparse heatmaps takes ``draws`` next to its maps:
``None`` for dense targets (numba prunes the recording branch, and the kernel
compiles to the plain drawing code), or an int32 ``(R, 8)`` array to which each
write of a heatmap appends one row instead.  The dense map argument is then a
stand-in that only carries its shape (never read or written).  Rows come in
the order the writes happened; :mod:`centertargets.sparse` documents their
columns and renders them, and :func:`replay` draws them here.  The count of
rows is kept in ``stats[S_DRAWS]``.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .encode import S_DRAWS, S_DRAWS_LOST, draw_peak, draw_point
from .gaussian import draw_msra_sigma, draw_umich_unit, get_patch32

OP_PATCH = 1
OP_MAX = 2
OP_SET = 3
DRAW_COLUMNS = 8
ONE_BITS = 0x3F800000          # float32 1.0

#: Patch families: umich patches of radius ``a`` from CenterNet's table (float64 values rounded
#: once), mmdetection's torch float32 table, MSRA windows of integer sigma ``a`` (numpy's
#: float32 ``exp``, the config's fixed window), TTFNet's elliptic Gaussians of radii
#: ``(a, b)`` = ``(rx, ry)``, MSRA windows of a per-object sigma ``a`` (computed in compiled
#: float32, exdet's and ddd's ``draw_msra_gaussian`` with the radius as sigma).
FAM_UMICH = 1
FAM_MMDET = 2
FAM_MSRA = 3
FAM_ELLIPTIC = 4
FAM_MSRA_SIGMA = 5


@jit
def float_bits(v):
    """The bit pattern of ``float32(v)`` as an int32 (how constants travel in a row)."""
    a = np.empty(1, np.float32)
    a[0] = v
    return a.view(np.int32)[0]


@jit
def push(draws, stats, op, m, c, v0, v1, v2, v3, v4):
    """Append one row to ``draws``; counts it in ``stats``, or as lost when full."""
    n = stats[S_DRAWS]
    if n >= draws.shape[0]:
        stats[S_DRAWS_LOST] += 1
        return
    draws[n, 0] = op
    draws[n, 1] = m
    draws[n, 2] = c
    draws[n, 3] = v0
    draws[n, 4] = v1
    draws[n, 5] = v2
    draws[n, 6] = v3
    draws[n, 7] = v4
    stats[S_DRAWS] = n + 1


@jit
def patch_for(draws, radius, table32):
    """The float32 patch a dense draw of ``radius`` needs (:func:`~.gaussian.get_patch32`);
    when recording, ``table32`` itself, unread: the row names the patch instead, so a radius
    beyond the table is not computed for nothing."""
    if draws is None:
        return get_patch32(radius, table32)
    return table32


@jit
def put_peak(hm, draws, stats, m, c, cx, cy, radius, msra, msra_sigma, elliptic_alpha, w, h,
             p32, family):
    """An object centre in channel ``c`` of map ``m`` (:func:`~.encode.draw_peak`), or its row."""
    if draws is None:
        draw_peak(hm[c], cx, cy, radius, msra, msra_sigma, elliptic_alpha, w, h, p32)
    elif msra is not None:
        push(draws, stats, OP_PATCH, m, c, cx, cy, FAM_MSRA, int(msra_sigma), 0)
    elif elliptic_alpha is not None:
        rx = max(0, int(elliptic_alpha * w / 2.0))
        ry = max(0, int(elliptic_alpha * h / 2.0))
        push(draws, stats, OP_PATCH, m, c, cx, cy, FAM_ELLIPTIC, rx, ry)
    else:
        push(draws, stats, OP_PATCH, m, c, cx, cy, family, radius, 0)


@jit
def put_point(hm, draws, stats, m, c, cx, cy, radius, msra, msra_sigma, p32, family):
    """A joint in channel ``c`` of map ``m`` (:func:`~.encode.draw_point`), or its row."""
    if draws is None:
        draw_point(hm[c], cx, cy, radius, msra, msra_sigma, p32)
    elif msra is not None:
        push(draws, stats, OP_PATCH, m, c, cx, cy, FAM_MSRA, int(msra_sigma), 0)
    else:
        push(draws, stats, OP_PATCH, m, c, cx, cy, family, radius, 0)


@jit
def put_umich(hm, draws, stats, m, c, cx, cy, radius, p32, family):
    """:func:`~.gaussian.draw_umich_unit` of patch ``p32`` (family ``family``), or its row."""
    if draws is None:
        draw_umich_unit(hm[c], cx, cy, radius, p32)
    else:
        push(draws, stats, OP_PATCH, m, c, cx, cy, family, radius, 0)


@jit
def put_msra_sigma(hm, draws, stats, m, c, cx, cy, sigma, zero_nan):
    """:func:`~.gaussian.draw_msra_sigma`, or its row: a ``FAM_MSRA_SIGMA`` patch, or, for
    upstream's 0/0 (``sigma == 0`` with ``zero_nan``), the NaN it writes at the centre."""
    if draws is None:
        draw_msra_sigma(hm[c], cx, cy, sigma, zero_nan)
    elif sigma == 0 and zero_nan:
        push(draws, stats, OP_SET, m, c, cx, cy, cx + 1, cy + 1, float_bits(np.nan))
    else:
        push(draws, stats, OP_PATCH, m, c, cx, cy, FAM_MSRA_SIGMA, sigma, 0)


@jit
def set_pixel(hm, draws, stats, m, c, x, y, value):
    """``hm[c, y, x] = value``, or its row."""
    if draws is None:
        hm[c, y, x] = np.float32(value)
    else:
        push(draws, stats, OP_SET, m, c, x, y, x + 1, y + 1, float_bits(value))


@jit
def set_box(hm, draws, stats, m, c, x0, y0, x1, y1, value):
    """``hm[c, y0:y1, x0:x1] = value`` (the box inside the map), or its row."""
    if draws is None:
        for y in range(max(y0, 0), min(y1, hm.shape[1])):
            for x in range(max(x0, 0), min(x1, hm.shape[2])):
                hm[c, y, x] = np.float32(value)
    else:
        push(draws, stats, OP_SET, m, c, x0, y0, x1, y1, float_bits(value))


@jit
def max_box(hm, draws, stats, m, c, x0, y0, x1, y1, value):
    """``hm[c, y0:y1, x0:x1] = max(., value)`` (the box inside the map; ``c == -1``: every
    channel), or its row."""
    if draws is None:
        c0 = 0 if c == -1 else c
        c1 = hm.shape[0] if c == -1 else c + 1
        v = np.float32(value)
        for cc in range(c0, c1):
            for y in range(max(y0, 0), min(y1, hm.shape[1])):
                for x in range(max(x0, 0), min(x1, hm.shape[2])):
                    if hm[cc, y, x] < v:
                        hm[cc, y, x] = v
    else:
        push(draws, stats, OP_MAX, m, c, x0, y0, x1, y1, float_bits(value))


@jit
def set_all(hm, draws, stats, m, value):
    """Every pixel of every channel of ``hm`` set to ``value``, or its row."""
    if draws is None:
        hm[:, :, :] = np.float32(value)
    else:
        push(draws, stats, OP_SET, m, -1, 0, 0, hm.shape[2], hm.shape[1], float_bits(value))


@jit
def peak_at(hm, draws, stats, m, c, x, y):
    """Whether pixel ``(x, y)`` of channel ``c`` already holds 1.0 (a centre drawn there).

    Dense: reads ``hm``.  Sparse: the latest row that decides it, read backwards: a set box
    over the pixel (its constant), a max box over it with a constant >= 1, or a patch centred
    there (every family's centre value is 1.0).
    """
    if draws is None:
        return hm[c, y, x] == 1.0
    for i in range(stats[S_DRAWS] - 1, -1, -1):    # no row views: each costs a refcount
        if draws[i, 1] != m or (draws[i, 2] != c and draws[i, 2] != -1):
            continue
        if draws[i, 0] == OP_PATCH:
            if draws[i, 3] == x and draws[i, 4] == y:
                return True
        elif draws[i, 3] <= x < draws[i, 5] and draws[i, 4] <= y < draws[i, 6]:
            if draws[i, 0] == OP_SET:
                return draws[i, 7] == ONE_BITS
            v = np.empty(1, np.int32)
            v[0] = draws[i, 7]
            if v.view(np.float32)[0] >= 1.0:
                return True
    return False


@jit
def replay(rows, sample, poff, bank, hm, clear):
    """Replay draw ``rows`` (N, 8) of one map into ``hm`` float32 (B, C, H, W), in order.

    ``sample`` (N,) int64: each row's sample; ``poff`` (N,) int64: where a patch row's patch
    starts in ``bank`` (float32, flat); its side is ``2 a + 1`` (``FAM_ELLIPTIC``: ``2 a + 1``
    wide, ``2 b + 1`` high; ``FAM_MSRA``: ``6 a + 1``).  Everything is clipped to the map.
    With ``clear`` every pixel a row covers is set to 0 instead (undoing a replay).
    """
    B, C, H, W = hm.shape
    bits = rows[:, 7].copy().view(np.float32)       # the constants of box rows
    for i in range(rows.shape[0]):
        op = rows[i, 0]
        b = sample[i]
        c = rows[i, 2]
        if op == OP_PATCH:
            fam = rows[i, 5]
            rx = rows[i, 6]
            ry = rows[i, 7] if fam == FAM_ELLIPTIC else rx
            if fam == FAM_MSRA or fam == FAM_MSRA_SIGMA:
                rx = 3 * rx
                ry = rx
            w = 2 * rx + 1
            cx = rows[i, 3]
            cy = rows[i, 4]
            x0 = max(cx - rx, 0)
            x1 = min(cx + rx + 1, W)
            if x0 >= x1:
                continue
            for y in range(max(cy - ry, 0), min(cy + ry + 1, H)):
                src = poff[i] + (y - cy + ry) * w + (x0 - cx + rx)
                line = hm[b, c, y, x0:x1]          # line views vectorise, as draw_umich_unit
                if clear:
                    line[:] = 0.0
                else:
                    vals = bank[src:src + (x1 - x0)]
                    for x in range(x1 - x0):
                        line[x] = max(line[x], vals[x])
            continue
        value = bits[i]
        if clear:
            value = np.float32(0.0)
        c0 = 0 if c == -1 else c
        c1 = C if c == -1 else c + 1
        for cc in range(c0, c1):
            for y in range(max(rows[i, 4], 0), min(rows[i, 6], H)):
                for x in range(max(rows[i, 3], 0), min(rows[i, 5], W)):
                    if op == OP_SET or clear:
                        hm[b, cc, y, x] = value
                    elif value > hm[b, cc, y, x]:
                        hm[b, cc, y, x] = value
