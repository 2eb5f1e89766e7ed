"""Fused per-sample encoders: every target of one sample in one pass.

Inputs are already in output-map pixel coordinates (float32).  All output
arrays are preallocated and zeroed by the caller.  What a config does not use
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
from .gaussian import (draw_dense_reg, draw_elliptic, draw_msra, draw_umich_unit, get_patch,
                       get_patch32, object_radius)

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
NSTATS = 11

# values of ``status``
ST_ENCODED = 0
ST_DROPPED = 1
ST_DEGENERATE = 2
ST_NO_KEYPOINTS = 3
ST_BAD_CLASS = 4

# MultiPoseConfig.no_keypoints codes
NOKPS_CENTERNET = 0
NOKPS_IGNORE = 1


@jit
def _clip32(v: np.float32, hi: int) -> np.float32:
    if v < 0:
        return np.float32(0.0)
    if v > hi:
        return np.float32(hi)
    return v


@jit
def _start(boxes, classes, C, M, stats, status):
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
    nobj = min(n, M)
    stats[S_CONSIDERED] = nobj
    stats[S_DROPPED] = n - nobj
    for k in range(nobj, n):
        status[k] = ST_DROPPED
    return nobj


@jit
def _box(boxes, k, W, H):
    """Box k clipped to the map as CenterNet does: ``(w, h, ctx, cty)`` in float32."""
    x1 = _clip32(boxes[k, 0], W - 1)
    y1 = _clip32(boxes[k, 1], H - 1)
    x2 = _clip32(boxes[k, 2], W - 1)
    y2 = _clip32(boxes[k, 3], H - 1)
    return x2 - x1, y2 - y1, (x1 + x2) / np.float32(2.0), (y1 + y2) / np.float32(2.0)


@jit
def _radius(h, w, msra, msra_sigma, radius_formula, min_overlap, min_radius):
    """The window radius: the MSRA sigma (CenterNet's ``hm_gauss``) or the box-derived radius."""
    if msra is not None:
        return int(msra_sigma)
    return object_radius(h, w, radius_formula, min_overlap, min_radius)


@jit
def _draw_peak(hm2d, cx, cy, radius, msra, msra_sigma, elliptic_alpha, w, h, p32):
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
def _draw_point(hm2d, cx, cy, radius, msra, msra_sigma, p32):
    """A joint (or dense mask): msra, else the umich patch ``p32`` (elliptic has no joint form)."""
    if msra is not None:
        draw_msra(hm2d, float(cx), float(cy), msra_sigma, msra)
    else:
        draw_umich_unit(hm2d, cx, cy, radius, p32)


@jit
def encode_ctdet(boxes, classes,
                 msra_sigma, msra, radius_formula, min_overlap, min_radius, elliptic_alpha,
                 table, table32,
                 hm, wh, reg, ind, reg_mask, cat_spec_wh, cat_spec_mask, dense_wh, dense_wh_mask,
                 write_wh, write_reg, write_cat_spec,
                 stats, status):
    """CenterNet ``CTDetDataset`` targets for one sample.

    Called through ``centertargets.encoders._call`` with every argument named.

    Parameters
    ----------
    boxes : float32 (N, 4), x1, y1, x2, y2 in output pixels.
    classes : int64 (N,), class indices in [0, C).
    msra_sigma : float, sigma of the MSRA Gaussian.
    msra : float32 2-D, the precomputed MSRA window for ``msra_sigma``, or None
        (not the MSRA heatmap).
    radius_formula : int, ``RADIUS_CENTERNET`` or ``RADIUS_CORRECTED``.
    min_overlap : float, the radius' IoU target.
    min_radius : int, lower bound on the radius.
    elliptic_alpha : float, TTFNet's alpha for the elliptic Gaussian, or None
        (not the elliptic heatmap).
    table, table32 : precomputed umich patches (float64 and float32).
    hm : float32 (C, H, W), written.
    wh, reg : float32 (M, 2), written when ``write_wh`` / ``write_reg``.
    ind : int64 (M,); reg_mask : uint8 (M,), written.
    cat_spec_wh : float32 (M, 2C); cat_spec_mask : uint8 (M, 2C), when ``write_cat_spec``.
    dense_wh, dense_wh_mask : float32 (2, H, W), or None (no dense head).
    write_wh, write_reg, write_cat_spec : bool, which of those heads exist
        (an absent head is an empty array of the same dtype and ndim).
    stats : int64 (NSTATS,), counts, written; status : int8 (N,), per object, written.
    """
    C, H, W = hm.shape
    nobj = _start(boxes, classes, hm.shape[0], ind.shape[0], stats, status)
    value = np.zeros(2, dtype=np.float32)
    for k in range(nobj):
        w, h, ctx, cty = _box(boxes, k, W, H)
        if not (h > 0 and w > 0):
            status[k] = ST_DEGENERATE
            stats[S_DEGENERATE] += 1
            continue
        cls = classes[k]
        radius = _radius(h, w, msra, msra_sigma, radius_formula, min_overlap, min_radius)
        cx = int(ctx)
        cy = int(cty)
        if hm[cls, cy, cx] == 1.0:
            stats[S_COLLISIONS] += 1
        _draw_peak(hm[cls], cx, cy, radius, msra, msra_sigma, elliptic_alpha, w, h,
                   get_patch32(radius, table32))
        if write_wh:
            wh[k, 0] = w
            wh[k, 1] = h
        ind[k] = cy * W + cx
        if write_reg:
            reg[k, 0] = ctx - cx
            reg[k, 1] = cty - cy
        reg_mask[k] = 1
        if write_cat_spec:
            cat_spec_wh[k, 2 * cls] = w
            cat_spec_wh[k, 2 * cls + 1] = h
            cat_spec_mask[k, 2 * cls] = 1
            cat_spec_mask[k, 2 * cls + 1] = 1
        if dense_wh is not None:
            value[0] = w
            value[1] = h
            draw_dense_reg(dense_wh, hm, -1, cx, cy, value, radius, False,
                           get_patch(radius, table))
        status[k] = ST_ENCODED
        stats[S_ENCODED] += 1
    if dense_wh_mask is not None:
        for y in range(H):
            for x in range(W):
                m = hm[0, y, x]
                for c in range(1, C):
                    if hm[c, y, x] > m:
                        m = hm[c, y, x]
                dense_wh_mask[0, y, x] = m
                dense_wh_mask[1, y, x] = m


@jit
def encode_multi_pose(boxes, classes, kps,
                      msra_sigma, msra, radius_formula, min_overlap, min_radius,
                      elliptic_alpha, no_keypoints, ignore_occluded_in_hm_hp, rotated_quirk,
                      table, table32,
                      hm, wh, reg, ind, reg_mask, hps, hps_mask, hm_hp, hp_offset, hp_ind,
                      hp_mask, dense_hps, dense_hps_mask,
                      write_reg, write_hps, write_hm_hp, write_hp_offset,
                      stats, status):
    """CenterNet ``MultiPoseDataset`` targets for one sample.

    Called through ``centertargets.encoders._call`` with every argument named.

    Parameters
    ----------
    boxes : float32 (N, 4) in output pixels; classes : int64 (N,).
    kps : float32 (N, J, 3), x, y in output pixels and v the COCO visibility.
    msra_sigma, msra, radius_formula, min_overlap, min_radius,
    elliptic_alpha, table, table32 : as :func:`encode_ctdet`.
    no_keypoints : int, ``NOKPS_CENTERNET`` or ``NOKPS_IGNORE``.
    ignore_occluded_in_hm_hp : bool, leave v = 1 joints out of ``hm_hp``.
    rotated_quirk : bool, see below.
    hm : float32 (C, H, W); wh, reg : float32 (M, 2); ind : int64 (M,);
    reg_mask : uint8 (M,); hps : float32 (M, 2J); hps_mask : uint8 (M, 2J);
    hm_hp : float32 (J, H, W); hp_offset : float32 (M*J, 2); hp_ind, hp_mask :
    int64 (M*J,); dense_hps, dense_hps_mask : float32 (2J, H, W) or None: outputs.
    write_reg, write_hps, write_hm_hp, write_hp_offset : bool, which of those
        heads exist (an absent head is an empty array).
    stats : int64 (NSTATS,); status : int8 (N,): written.

    ``rotated_quirk``: the sample was rotated and CenterNet's behaviour is
    wanted, so degenerate boxes are still encoded, and at the end ``hm`` is
    set to 0.9999 everywhere and ``reg_mask``/``hps_mask`` are zeroed.
    """
    J = kps.shape[1]
    C, H, W = hm.shape
    nobj = _start(boxes, classes, hm.shape[0], ind.shape[0], stats, status)
    value = np.zeros(2, dtype=np.float32)
    for k in range(nobj):
        w, h, ctx, cty = _box(boxes, k, W, H)
        if not ((h > 0 and w > 0) or rotated_quirk):
            status[k] = ST_DEGENERATE
            stats[S_DEGENERATE] += 1
            continue
        cls = classes[k]
        radius = _radius(h, w, msra, msra_sigma, radius_formula, min_overlap, min_radius)
        cx = int(ctx)
        cy = int(cty)
        wh[k, 0] = w
        wh[k, 1] = h
        ind[k] = cy * W + cx
        if write_reg:
            reg[k, 0] = ctx - cx
            reg[k, 1] = cty - cy
        reg_mask[k] = 1
        status[k] = ST_ENCODED
        stats[S_ENCODED] += 1

        p32 = get_patch32(radius, table32)
        already_peak = hm[cls, cy, cx] == 1.0
        if already_peak:
            stats[S_COLLISIONS] += 1
        vsum = np.float32(0.0)
        for j in range(J):
            vsum += kps[k, j, 2]
        no_kps = vsum == 0
        if no_kps:
            stats[S_NO_KEYPOINTS] += 1
            status[k] = ST_NO_KEYPOINTS
            reg_mask[k] = 0
            if no_keypoints == NOKPS_CENTERNET:
                hm[cls, cy, cx] = np.float32(0.9999)

        for j in range(J):
            v = kps[k, j, 2]
            if not v > 0:
                continue
            stats[S_KPS_LABELLED] += 1
            px = kps[k, j, 0]
            py = kps[k, j, 1]
            if not (px >= 0 and px < W and py >= 0 and py < H):
                stats[S_KPS_OUTSIDE] += 1
                continue
            stats[S_KPS_ENCODED] += 1
            if write_hps:
                hps[k, 2 * j] = px - cx
                hps[k, 2 * j + 1] = py - cy
                hps_mask[k, 2 * j] = 1
                hps_mask[k, 2 * j + 1] = 1
            pix = int(px)
            piy = int(py)
            if write_hp_offset:
                hp_offset[k * J + j, 0] = px - pix
                hp_offset[k * J + j, 1] = py - piy
                hp_ind[k * J + j] = piy * W + pix
                hp_mask[k * J + j] = 1
            if dense_hps is not None and dense_hps_mask is not None:
                # before the centre Gaussian of this person, as upstream
                value[0] = px - cx
                value[1] = py - cy
                draw_dense_reg(dense_hps[2 * j:2 * j + 2], hm, cls, cx, cy, value, radius, True,
                               get_patch(radius, table))
                _draw_point(dense_hps_mask[2 * j], cx, cy, radius, msra, msra_sigma, p32)
            if write_hm_hp and not (ignore_occluded_in_hm_hp and v == 1):
                _draw_point(hm_hp[j], pix, piy, radius, msra, msra_sigma, p32)

        _draw_peak(hm[cls], cx, cy, radius, msra, msra_sigma, elliptic_alpha, w, h, p32)
        if no_kps and no_keypoints == NOKPS_IGNORE and not already_peak:
            hm[cls, cy, cx] = np.float32(0.9999)

    if dense_hps_mask is not None:
        # element by element: an array-to-array slice copy makes numba compile its
        # shape-mismatch error message, seconds of string formatting code
        for j in range(J):
            for y in range(H):
                for x in range(W):
                    dense_hps_mask[2 * j + 1, y, x] = dense_hps_mask[2 * j, y, x]
    if rotated_quirk:
        hm[:, :, :] = np.float32(0.9999)
        reg_mask[:] = 0
        if write_hps:
            hps_mask[:, :] = 0
