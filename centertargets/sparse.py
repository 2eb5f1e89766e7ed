"""Sparse heatmaps: the draw list a worker sends instead of the dense maps (numpy side).

With ``config.replace(heatmaps="sparse")`` an encoder (and a
:class:`~centertargets.CenterNetDataset`) returns, instead of its heatmaps (``hm``,
``hm_hp``, exdet's five, tracking's ``pre_hm``), one int32 array ``draws`` of shape ``(R, 8)``: every write the
encoder would have made to those maps, in order, one row each (R from
``config.sparse_layout().rows``, unused rows zero, so ``default_collate``
stacks them).  A ctdet sample's 5.2 MB ``hm`` (80 x 128 x 128 float32) becomes
4 KB; the training device renders the batch
(:func:`centertargets.device.render_heatmaps`), bit for bit the dense
encoder's maps.  Row layout (columns):

====  =====  =======  ====  ====  ======  ======  ======
op    map    channel  c0    c1    c2      c3      c4
====  =====  =======  ====  ====  ======  ======  ======
1     m      c        cx    cy    family  a       b         max with a patch centred at (cx, cy)
2     m      c or -1  x0    y0    x1      y1      bits      max with a constant over a box
3     m      c or -1  x0    y0    x1      y1      bits      set a box to a constant
====  =====  =======  ====  ====  ======  ======  ======

``m`` indexes ``config.sparse_layout().maps``; a box is ``[x0, x1) x [y0, y1)``,
clipped to the map; ``bits`` is a float32's bit pattern; channel -1 means every
channel.  A patch (:func:`patch`) is named by its family and two integers:
``FAM_UMICH`` (CenterNet's Gaussian of radius ``a``), ``FAM_MMDET``
(mmdetection's float32 values), ``FAM_MSRA`` (the fixed window of integer sigma
``a``), ``FAM_ELLIPTIC`` (TTFNet, radii ``a`` = x and ``b`` = y), ``FAM_MSRA_SIGMA``
(exdet's and ddd's MSRA window of a per-object sigma ``a``).  Max rows
commute; a set row does not, so a renderer applies the max rows before a set
row, the set row, then the rest (set rows come from the quirks that assign:
multi_pose's ``no_keypoints="ignore"`` centres and rotation blank, ddd's 0.9999
ignore centres and boxes, exdet's NaN of a 0 sigma, tracking's occluded joints).

:func:`render` draws one sample's list (numpy, compiled, as
:func:`replay_batch` draws batches: the rows in order, with the encoder's
``max``); :func:`centertargets.device.render_heatmaps` renders torch batches on
any device: on a CPU through the same compiled replay into the tensors'
memory, elsewhere as a scatter of ``max`` per pixel.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

from .kernels.canvas import (DRAW_COLUMNS, FAM_ELLIPTIC, FAM_MMDET, FAM_MSRA, FAM_MSRA_SIGMA,
                             FAM_UMICH, OP_MAX, OP_PATCH, OP_SET, replay)
from .kernels.gaussian import (draw_elliptic, draw_msra_sigma, get_patch32, mmdet_patch_table32,
                               msra_patch, patch_table32)

__all__ = ["patch", "render", "prepare", "replay_prepared", "replay_batch", "check_draws", "PatchBank", "BANK", "FAM_UMICH",
           "FAM_MMDET", "FAM_MSRA", "FAM_ELLIPTIC", "FAM_MSRA_SIGMA", "OP_PATCH", "OP_MAX",
           "OP_SET", "DRAW_COLUMNS"]

#: Largest patch radius a draw row may name (a patch of a larger radius covers more than any
#: map this package accepts needs; :func:`patch` refuses it instead of allocating it).
MAX_PATCH_RADIUS = 4096


@functools.lru_cache(maxsize=4096)
def patch(family: int, a: int, b: int = 0) -> np.ndarray:
    """The float32 patch a draw row names, ``(2 ry + 1, 2 rx + 1)``, centred on its middle
    pixel: the very values the dense encoder writes with ``max`` (read-only, cached).

    ``FAM_UMICH``/``FAM_MMDET``: radius ``a`` (the encoders' tables, or the kernels'
    computation beyond them); ``FAM_MSRA``/``FAM_MSRA_SIGMA``: integer sigma ``a``, radius
    ``3a``; ``FAM_ELLIPTIC``: radii ``a`` (x) and ``b`` (y).
    """
    family, a, b = int(family), int(a), int(b)
    if not (0 <= a <= MAX_PATCH_RADIUS and 0 <= b <= MAX_PATCH_RADIUS):
        raise ValueError(f"patch parameters ({a}, {b}) of family {family}: expected integers "
                         f"in [0, {MAX_PATCH_RADIUS}]")
    if family in (FAM_UMICH, FAM_MMDET):
        table = mmdet_patch_table32() if family == FAM_MMDET else patch_table32()
        d = 2 * a + 1
        p = np.array(get_patch32(a, table), np.float32).reshape(d, d)
    elif family == FAM_MSRA:
        if a < 1:
            raise ValueError(f"MSRA patch sigma {a}: expected an integer >= 1")
        p = msra_patch(float(a))
    elif family == FAM_ELLIPTIC:
        p = np.zeros((2 * b + 1, 2 * a + 1), np.float32)
        draw_elliptic(p, a, b, a, b, 1.0)
    elif family == FAM_MSRA_SIGMA:
        p = np.zeros((6 * a + 1, 6 * a + 1), np.float32)
        draw_msra_sigma(p, 3 * a, 3 * a, a, False)
    else:
        raise ValueError(f"patch family {family}: expected one of FAM_UMICH ({FAM_UMICH}), "
                         f"FAM_MMDET ({FAM_MMDET}), FAM_MSRA ({FAM_MSRA}), FAM_ELLIPTIC "
                         f"({FAM_ELLIPTIC}), FAM_MSRA_SIGMA ({FAM_MSRA_SIGMA})")
    p.flags.writeable = False
    return p


def check_draws(draws: np.ndarray, shapes: list[tuple[int, int, int]]) -> None:
    """Raise ValueError naming the first row of ``draws`` (R, 8) (or (B, R, 8)) that names an
    unknown op or map, a channel outside its map, or a box with x1 < x0 or y1 < y0."""
    d = np.asarray(draws)
    if d.ndim not in (2, 3) or d.shape[-1] != DRAW_COLUMNS or d.dtype.kind not in "iu":
        raise ValueError(f"draws is {d.dtype} {d.shape}: expected integer rows of "
                         f"{DRAW_COLUMNS} columns, (R, 8) or (B, R, 8)")
    rows = d.reshape(-1, DRAW_COLUMNS).astype(np.int64)
    op, m, c = rows[:, 0], rows[:, 1], rows[:, 2]
    nmaps = len(shapes)
    chans = np.array([s[0] for s in shapes] + [0], np.int64)[np.clip(m, 0, nmaps)]
    is_box = (op == OP_MAX) | (op == OP_SET)
    bad = ~np.isin(op, (0, OP_PATCH, OP_MAX, OP_SET))
    live = op != 0
    bad |= live & ((m < 0) | (m >= nmaps))
    bad |= live & ~(((c >= 0) & (c < chans)) | (is_box & (c == -1)))
    bad |= is_box & ((rows[:, 5] < rows[:, 3]) | (rows[:, 6] < rows[:, 4]))
    bad |= (op == OP_PATCH) & ((rows[:, 6] < 0) | (rows[:, 7] < 0)
                               | (rows[:, 6] > MAX_PATCH_RADIUS)
                               | (rows[:, 7] > MAX_PATCH_RADIUS))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = ", ".join(str(int(v)) for v in np.unravel_index(i, d.shape[:-1]))
        o, mi, ci = (int(v) for v in rows[i, :3])
        if o not in (0, OP_PATCH, OP_MAX, OP_SET):
            why = f"op {o}: expected 0 (unused), {OP_PATCH} (patch), {OP_MAX} (max box) or " \
                  f"{OP_SET} (set box)"
        elif not 0 <= mi < nmaps:
            why = f"map {mi}: expected a map index in [0, {nmaps})"
        elif not (0 <= ci < chans[i] or (is_box[i] and ci == -1)):
            why = f"channel {ci}: expected a channel in [0, {chans[i]})" + \
                (" or -1 (all)" if is_box[i] else "")
        elif is_box[i]:
            why = "box: expected x0 <= x1 and y0 <= y1"
        else:
            why = f"patch radius: expected integers in [0, {MAX_PATCH_RADIUS}]"
        raise ValueError(f"draws[{where}]={rows[i].tolist()}: {why} (rows: centertargets.sparse)")


class PatchBank:
    """Every patch draw rows have named in this process, in one flat float32 array: key ->
    offset.  Grows when rows name a new patch (a new radius), then stays; renderers copy
    :attr:`values` to their device once per growth."""

    def __init__(self) -> None:
        self.index: dict[int, int] = {}
        self.values = np.zeros(1, np.float32)
        self.generation = 0

    def offsets(self, rows: np.ndarray) -> np.ndarray:
        """int64 (N,): where each patch row's patch starts in :attr:`values` (0 for others)."""
        rows = np.asarray(rows, np.int64)
        out = np.zeros(len(rows), np.int64)
        is_patch = rows[:, 0] == OP_PATCH
        if not is_patch.any():
            return out
        keys = (rows[is_patch, 5] << 50) | (rows[is_patch, 6] << 25) | rows[is_patch, 7]
        uniq, inverse = np.unique(keys, return_inverse=True)
        new = [k for k in uniq.tolist() if k not in self.index]
        if new:
            parts, size = [self.values], self.values.size
            for key in new:
                p = patch(key >> 50, (key >> 25) & 0x1FFFFFF, key & 0x1FFFFFF)
                self.index[key] = size
                parts.append(p.ravel())
                size += p.size
            self.values = np.concatenate(parts)
            self.values.flags.writeable = False
            self.generation += 1
        out[is_patch] = np.array([self.index[k] for k in uniq.tolist()], np.int64)[inverse]
        return out


#: The process's patch bank (shared by every renderer).
BANK = PatchBank()


def prepare(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch's ``draws`` (B, R, 8) as the replay takes them: the used rows (N, 8), each
    row's sample (N,) and where its patch starts in :data:`BANK` (N,), all fresh arrays."""
    d = np.ascontiguousarray(draws, np.int32)
    B, R, _ = d.shape
    flat = d.reshape(B * R, DRAW_COLUMNS)
    live = np.flatnonzero(flat[:, 0] != 0)
    rows = flat[live]
    return rows, live // R, BANK.offsets(rows)


def replay_prepared(prepared: tuple[np.ndarray, np.ndarray, np.ndarray],
                    maps: list[np.ndarray], clear: bool = False) -> None:
    """Replay :func:`prepare`'s rows into ``maps`` (float32 (B, C, H, W) each), or, with
    ``clear``, zero every pixel they cover; the rows must have been checked."""
    rows, sample, poff = prepared
    for m, mp in enumerate(maps):
        on = rows[:, 1] == m
        replay(np.ascontiguousarray(rows[on]), sample[on], poff[on], BANK.values, mp, clear)


def replay_batch(draws: np.ndarray, maps: list[np.ndarray], clear: bool = False,
                 checked: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay a batch's ``draws`` (B, R, 8) into ``maps`` (float32 (B, C, H, W) each, zeroed),
    or, with ``clear``, zero every pixel they cover (undo).  Compiled; the rows are checked
    first (:func:`check_draws`) unless ``checked``.  Returns the prepared rows
    (:func:`prepare`), which :func:`replay_prepared` replays again (to clear them)."""
    d = np.ascontiguousarray(draws, np.int32)
    if not checked:
        check_draws(d, [tuple(mp.shape[1:]) for mp in maps])
    prepared = prepare(d)
    replay_prepared(prepared, maps, clear)
    return prepared


def render(targets: Mapping[str, Any], config: Any) -> dict[str, Any]:
    """One sample's targets with ``draws`` rendered to its dense maps (numpy, float32).

    ``targets``: an encoder's (or a dataset item's) targets from a ``heatmaps="sparse"``
    config; returns a new dict without ``draws`` and with the maps of
    ``config.sparse_layout().maps`` (the other entries shared).  Bit for bit the dense
    encoder's maps.  For batches use :func:`centertargets.device.render_heatmaps`.
    """
    layout = config.sparse_layout()
    out = dict(targets)
    if config.heatmaps != "sparse" or not layout.maps:
        return out
    dense = config.dense_spec()
    draws = np.asarray(out.pop("draws"))
    if draws.ndim != 2:
        raise ValueError(f"draws has shape {draws.shape}: expected one sample's (R, 8)")
    maps = [dense[m].zeros()[None] for m in layout.maps]
    check_draws(draws, [tuple(mp.shape[1:]) for mp in maps])      # errors name the row
    replay_batch(draws[None], maps, checked=True)
    out.update((name, mp[0]) for name, mp in zip(layout.maps, maps))
    return out
