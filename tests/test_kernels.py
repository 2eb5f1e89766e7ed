"""Gaussian radius and drawing kernels, checked against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from centertargets.kernels.gaussian import (
    PATCH_TABLE_MAX_RADIUS, draw_dense_reg, draw_elliptic, draw_msra, draw_umich, get_patch,
    gaussian_radius_centernet, gaussian_radius_corrected, msra_patch, patch_table)


def _ious(h: float, w: float, r: float) -> tuple[float, float, float]:
    """IoU of the three CornerNet cases for a corner error of r (from their geometry)."""
    inter1 = (w - r) * (h - r)
    case1 = inter1 / (2 * w * h - inter1)
    case2 = (w - 2 * r) * (h - 2 * r) / (w * h)
    case3 = w * h / ((w + 2 * r) * (h + 2 * r))
    return case1, case2, case3


@pytest.mark.parametrize("overlap", [0.5, 0.7, 0.9])
def test_corrected_radius_keeps_the_overlap_it_is_derived_from(overlap, rng):
    for h, w in rng.uniform(2, 300, size=(200, 2)):
        r = gaussian_radius_corrected(h, w, overlap)
        ious = _ious(h, w, r)
        assert min(ious) == pytest.approx(overlap, abs=1e-9)
        # any larger radius breaks the condition in some case
        assert min(_ious(h, w, r * 1.01)) < overlap


def test_legacy_radius_is_several_times_too_large(rng):
    for h, w in rng.uniform(4, 200, size=(100, 2)):
        legacy = gaussian_radius_centernet(h, w, 0.7)
        fixed = gaussian_radius_corrected(h, w, 0.7)
        assert 2.5 < legacy / fixed < 4.0
        assert min(_ious(h, w, legacy)) < 0.7


@pytest.mark.parametrize("radius", [0, 1, 2, 5, PATCH_TABLE_MAX_RADIUS, PATCH_TABLE_MAX_RADIUS + 3])
def test_umich_patch_is_the_gaussian_of_sigma_d_over_6(radius):
    d = 2 * radius + 1
    sigma = d / 6
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    want = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    got = get_patch(radius, patch_table()).reshape(d, d)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[radius, radius] == 1.0


def test_patch_table_holds_upstreams_own_gaussian_bit_for_bit():
    # upstream's gaussian2D: np.ogrid, np.exp, values below eps * max set to 0
    for radius in (0, 1, 3, 7, 20, PATCH_TABLE_MAX_RADIUS):
        d = 2 * radius + 1
        sigma = d / 6
        m = (d - 1.0) / 2.0
        y, x = np.ogrid[-m:m + 1, -m:m + 1]
        h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
        h[h < np.finfo(h.dtype).eps * h.max()] = 0
        np.testing.assert_array_equal(get_patch(radius, patch_table()).reshape(d, d), h)


def test_umich_draw_is_elementwise_max_and_clips_at_the_border():
    table = patch_table()
    a = np.zeros((20, 30), np.float32)
    b = np.zeros((20, 30), np.float32)
    both = np.zeros((20, 30), np.float32)
    draw_umich(a, 1, 2, 5, 1.0, get_patch(5, table))
    draw_umich(b, 4, 3, 3, 0.5, get_patch(3, table))
    draw_umich(both, 1, 2, 5, 1.0, get_patch(5, table))
    draw_umich(both, 4, 3, 3, 0.5, get_patch(3, table))
    np.testing.assert_array_equal(both, np.maximum(a, b))
    assert a[2, 1] == 1.0 and b[3, 4] == np.float32(0.5)
    # window beyond the left/top edge: only in-map pixels, correct values
    sigma = 11 / 6
    assert a[0, 0] == np.float32(np.exp(-(1 + 4) / (2 * sigma * sigma)))
    # centres entirely outside draw nothing and do not fail
    c = np.zeros((20, 30), np.float32)
    draw_umich(c, -10, 5, 3, 1.0, get_patch(3, table))
    draw_umich(c, 40, 25, 3, 1.0, get_patch(3, table))
    assert not c.any()


def test_msra_draw_peak_and_sigma():
    hm = np.zeros((32, 32), np.float32)
    draw_msra(hm, 10.0, 12.0, 2.0, msra_patch(2.0))
    assert hm[12, 10] == 1.0
    assert hm[12, 11] == pytest.approx(np.exp(-1 / 8), rel=1e-6)
    assert hm[12, 16] == pytest.approx(np.exp(-36 / 8), rel=1e-6)   # 3 sigma: last pixel
    assert hm[12, 17] == 0.0
    edge = np.zeros((8, 8), np.float32)
    draw_msra(edge, 0.0, 7.0, 3.0, msra_patch(3.0))
    assert edge[7, 0] == 1.0


def test_elliptic_gaussian_follows_each_side():
    hm = np.zeros((40, 60), np.float32)
    draw_elliptic(hm, 30, 20, 10, 3, 1.0)
    assert hm[20, 30] == 1.0
    assert hm[20, 40] > 0 and hm[20, 41] == 0      # x extent = radius_x
    assert hm[23, 30] > 0 and hm[24, 30] == 0      # y extent = radius_y
    sx = 21 / 6
    assert hm[20, 35] == pytest.approx(np.exp(-25 / (2 * sx * sx)), rel=1e-6)


def test_dense_reg_writes_offsets_where_the_gaussian_dominates():
    table = patch_table()
    reg = np.zeros((2, 15, 15), np.float32)
    heat = np.zeros((1, 15, 15), np.float32)
    heat[0, 7, 9] = 0.99          # another object's stronger value at one pixel
    draw_dense_reg(reg, heat, 0, 7, 7, np.array([3.5, -2.0], np.float32), 2, True,
                   get_patch(2, table))
    assert reg[0, 7, 7] == 3.5 and reg[1, 7, 7] == -2.0
    assert reg[0, 6, 8] == 2.5 and reg[1, 6, 8] == -1.0   # value minus (dx, dy)
    assert reg[0, 7, 9] == 0.0                               # lost to the stronger value
    assert not reg[:, :, :5].any() and not reg[:, :, 10:].any()


def test_bound_kernel_passes_every_argument_to_its_parameter_and_checks_the_names():
    from numba import njit

    from centertargets.encoders import bind_kernel

    @njit
    def weigh(a, b, c, d):
        return 1000 * a + 100 * b + 10 * c + d

    k = bind_kernel(weigh, b=2, d=4)
    assert k(a=1, c=3) == 1234 == k(c=3, a=1)
    assert bind_kernel(weigh, a=1, b=2, c=3, d=4)() == 1234
    assert bind_kernel(weigh)(d=4, c=3, b=2, a=1) == 1234
    with pytest.raises(TypeError, match="weigh.*unexpected keyword argument 'e'"):
        k(a=1, c=3, e=5)
    with pytest.raises(TypeError, match="weigh.*missing 1 required keyword-only argument: 'c'"):
        k(a=1)
    with pytest.raises(TypeError, match="weigh.*got multiple values|unexpected keyword argument 'b'"):
        k(a=1, b=2, c=3)
    with pytest.raises(TypeError, match=r"weigh: unknown arguments \['e'\]"):
        bind_kernel(weigh, e=1)
