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
