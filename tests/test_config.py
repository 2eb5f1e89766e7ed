"""Config validation and target specs."""

from __future__ import annotations

import numpy as np
import pytest

from centertargets import CtdetConfig, MultiPoseConfig, RadiusConfig


@pytest.mark.parametrize("cls, kwargs, field", [
    (CtdetConfig, dict(output_size=(0, 10)), "output_size"),
    (CtdetConfig, dict(output_size="big"), "output_size"),
    (CtdetConfig, dict(num_classes=0), "num_classes"),
    (CtdetConfig, dict(max_objs=2.5), "max_objs"),
    (CtdetConfig, dict(heatmap="gauss"), "heatmap"),
    (CtdetConfig, dict(msra_sigma=-1.0), "msra_sigma"),
    (CtdetConfig, dict(overflow="truncate"), "overflow"),
    (CtdetConfig, dict(cat_spec_wh=True, dense_wh=True), "dense_wh"),
    (CtdetConfig, dict(reg_offset=1), "reg_offset"),
    (MultiPoseConfig, dict(num_joints=0), "num_joints"),
    (MultiPoseConfig, dict(flip_idx=((1, 40),)), "flip_idx"),
    (MultiPoseConfig, dict(no_keypoints="drop"), "no_keypoints"),
    (MultiPoseConfig, dict(rotation="hull"), "rotation"),
    (MultiPoseConfig, dict(dense_hp=True, heatmap="msra", msra_sigma=2.5), "msra_sigma"),
    (RadiusConfig, dict(min_overlap=1.0), "min_overlap"),
    (RadiusConfig, dict(formula="cornernet"), "formula"),
    (RadiusConfig, dict(min_radius=-1), "min_radius"),
])
def test_bad_values_name_the_field(cls, kwargs, field):
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{field}="):
        cls(**kwargs)


def test_configs_are_frozen():
    cfg = CtdetConfig()
    with pytest.raises(AttributeError):
        cfg.num_classes = 3  # type: ignore[misc]
    assert cfg.replace(num_classes=3).num_classes == 3


def test_spec_shapes_follow_centernet():
    s = MultiPoseConfig(output_size=(96, 64)).spec()
    assert list(s) == ["hm", "reg_mask", "ind", "wh", "hps", "hps_mask", "reg", "hm_hp",
                       "hp_offset", "hp_ind", "hp_mask"]
    assert s["hm"].shape == (1, 64, 96) and s["hm_hp"].shape == (17, 64, 96)
    assert s["hps"].shape == (32, 34) and s["hps_mask"].dtype == np.uint8
    assert s["hp_offset"].shape == (32 * 17, 2) and s["hp_mask"].dtype == np.int64
    d = MultiPoseConfig(dense_hp=True, hm_hp=False, reg_hp_offset=False).spec()
    assert "hps" not in d and d["dense_hps"].shape == (34, 128, 128) and "hm_hp" not in d
    c = CtdetConfig(cat_spec_wh=True).spec()
    assert "wh" not in c and c["cat_spec_wh"].shape == (128, 160)
    assert CtdetConfig(output_size=64).output_size == (64, 64)


@pytest.mark.parametrize("kw,want", [
    # CenterNet's opts.py: heads = {'hm': C, 'wh': 2 or 2C (cat_spec_wh)} + reg
    (dict(), {"hm": 80, "wh": 2, "reg": 2}),
    (dict(cat_spec_wh=True, num_classes=3), {"hm": 3, "wh": 6, "reg": 2}),
    (dict(reg_offset=False, dense_wh=True), {"hm": 80, "wh": 2}),
])
def test_ctdet_heads_are_centernets(kw, want):
    cfg = CtdetConfig(**kw)
    assert cfg.heads() == want and list(cfg.heads()) == list(want)
    spec = cfg.head_spec()
    assert spec["hm"].kind == "heatmap" and spec["hm"].init_bias == pytest.approx(-2.19)
    assert spec["wh"].kind == "regression" and spec["wh"].init_bias == 0.0
    assert spec["hm"].shape(4) == (4, cfg.num_classes, 128, 128)
    assert CtdetConfig(heatmap="msra").head_spec()["hm"].kind == "regression"   # MSE, no sigmoid


@pytest.mark.parametrize("kw,want", [
    # {'hm': C, 'wh': 2, 'hps': 2J} + reg, hm_hp (J), hp_offset
    (dict(), {"hm": 1, "wh": 2, "hps": 34, "reg": 2, "hm_hp": 17, "hp_offset": 2}),
    (dict(num_joints=14, flip_idx=(), hm_hp=False), {"hm": 1, "wh": 2, "hps": 28, "reg": 2,
                                                      "hp_offset": 2}),
    (dict(reg_offset=False, reg_hp_offset=False), {"hm": 1, "wh": 2, "hps": 34, "hm_hp": 17}),
])
def test_multi_pose_heads_are_centernets(kw, want):
    cfg = MultiPoseConfig(**kw)
    assert cfg.heads() == want and list(cfg.heads()) == list(want)
    msra = MultiPoseConfig(heatmap="msra").head_spec()
    assert msra["hm"].kind == "heatmap" and msra["hm_hp"].kind == "regression"  # upstream's split
    assert msra["hm_hp"].loss == "mse"
