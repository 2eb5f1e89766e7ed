"""mmdetection's CenterNet targets: ``RadiusConfig.mmdet()`` against a transcription of its
``gaussian_radius`` / ``gen_gaussian_target`` (mmdet/models/utils/gaussian_target.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from centertargets import CtdetConfig, CtdetEncoder, RadiusConfig


def _mmdet_radius(h: float, w: float, min_overlap: float = 0.3) -> float:
    a1, b1 = 1, h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - math.sqrt(b1 ** 2 - 4 * a1 * c1)) / (2 * a1)
    a2, b2 = 4, 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 - math.sqrt(b2 ** 2 - 4 * a2 * c2)) / (2 * a2)
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / (2 * a3)
    return min(r1, r2, r3)


def _mmdet_heatmap(box: np.ndarray, W: int, H: int) -> tuple[np.ndarray, int]:
    """One box's ``center_heatmap_target`` as mmdet's CenterNet head draws it (torch)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
    r = max(0, int(_mmdet_radius(y2 - y1, x2 - x1)))
    d = 2 * r + 1
    x = torch.arange(-r, r + 1, dtype=torch.float32).view(1, -1)
    y = torch.arange(-r, r + 1, dtype=torch.float32).view(-1, 1)
    g = (-(x * x + y * y) / (2 * (d / 6) * (d / 6))).exp()
    g[g < torch.finfo(g.dtype).eps * g.max()] = 0
    hm = torch.zeros(H, W)
    left, right = min(cx, r), min(W - cx, r + 1)
    top, bottom = min(cy, r), min(H - cy, r + 1)
    torch.max(hm[cy - top:cy + bottom, cx - left:cx + right],
              g[r - top:r + bottom, r - left:r + right],
              out=hm[cy - top:cy + bottom, cx - left:cx + right])
    return hm.numpy(), r


def test_mmdet_preset_reproduces_mmdets_radii_and_heatmaps(rng):
    W = H = 96
    cfg = CtdetConfig(output_size=(W, H), num_classes=1, heatmap="mmdet",
                      radius=RadiusConfig.mmdet())
    enc = CtdetEncoder(cfg)
    legacy = CtdetEncoder(CtdetConfig(output_size=(W, H), num_classes=1))
    same_radius = differs_from_centernet = 0
    for _ in range(300):
        cx, cy = rng.uniform(10, 86, 2)
        w, h = rng.uniform(1.5, 60, 2)
        box = np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]], np.float32)
        box = np.clip(box, 0, W - 1)
        want, r = _mmdet_heatmap(box[0], W, H)
        got = enc.encode(box, [0])["hm"][0]
        support = np.argwhere(got > 0)
        got_r = int(max(support[:, 0].max() - support[:, 0].min(),
                        support[:, 1].max() - support[:, 1].min()) // 2)
        same_radius += got_r == r or r == 0
        assert np.array_equal(got, want)            # mmdetection's values, bit for bit
        # CenterNet's umich values (float64, rounded once) under the same radius: within 6
        # float32 ulp of mmdetection's float32 ones (the argument's rounding, |arg| <= 4.5,
        # and torch's exp), same support
        umich = CtdetEncoder(cfg.replace(heatmap="umich")).encode(box, [0])["hm"][0]
        np.testing.assert_array_max_ulp(umich, want, maxulp=6)
        differs_from_centernet += not np.array_equal(legacy.encode(box, [0])["hm"][0], got)
    assert same_radius == 300
    assert differs_from_centernet > 250        # CenterNet's default is another heatmap
    with pytest.raises(ValueError, match="ExdetConfig.heatmap='mmdet'"):
        from centertargets import ExdetConfig
        ExdetConfig(heatmap="mmdet")


def test_round_sides_switch():
    box = np.array([[10.0, 10.0, 13.1, 17.3]], np.float32)     # 3.1 x 7.3: radius 1 or 0
    a = CtdetEncoder(CtdetConfig(output_size=(64, 64), num_classes=1, radius=RadiusConfig(
        "corrected", 0.3, 0, round_sides=True))).encode(box, [0])["hm"][0]
    b = CtdetEncoder(CtdetConfig(output_size=(64, 64), num_classes=1, radius=RadiusConfig(
        "corrected", 0.3, 0, round_sides=False))).encode(box, [0])["hm"][0]
    ra, rb = (int(_mmdet_radius(math.ceil(7.3), math.ceil(3.1))),
              int(_mmdet_radius(7.3, 3.1)))
    assert ra != rb and (a > 0).sum() != (b > 0).sum()
