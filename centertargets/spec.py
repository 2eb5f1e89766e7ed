"""Target names -> shape and dtype, derived from a config.

Names, shapes and dtypes are CenterNet's, so a CenterNet training loop takes
the targets unchanged.  Symbols: C classes, J joints, M = ``max_objs``,
H x W the output map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .config import CtdetConfig, MultiPoseConfig


@dataclass(frozen=True)
class TargetSpec:
    """One target: its ``shape`` (per sample, no batch axis), ``dtype`` and meaning."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    doc: str

    def zeros(self) -> np.ndarray:
        """A zero-filled array of this shape and dtype."""
        return np.zeros(self.shape, dtype=self.dtype)


_F32 = np.dtype(np.float32)
_U8 = np.dtype(np.uint8)
_I64 = np.dtype(np.int64)

_DOCS = {
    "hm": "centre heatmap per class; 1.0 exactly at each object's integer centre, Gaussian around it",
    "wh": "box width and height (output pixels) of object slot k",
    "reg": "sub-pixel centre offset: centre - floor(centre)",
    "ind": "flat index cy * W + cx of object k's integer centre in the output map",
    "reg_mask": "1 where slot k holds an object whose wh/reg/hps are supervised",
    "cat_spec_wh": "wh written at columns 2c, 2c+1 of the object's class c",
    "cat_spec_mask": "1 at the two columns of the object's class",
    "dense_wh": "wh painted over each object's Gaussian window where it dominates",
    "dense_wh_mask": "max over classes of hm, twice (weights for the dense L1)",
    "hps": "joint minus integer centre (dx, dy) for each joint of object k",
    "hps_mask": "1 per coordinate whose joint is labelled and inside the map",
    "hm_hp": "one heatmap per joint type; 1.0 at each joint's integer position",
    "hp_offset": "sub-pixel joint offset: joint - floor(joint), slot k * J + j",
    "hp_ind": "flat index py * W + px of joint j of object k, slot k * J + j",
    "hp_mask": "1 where slot k * J + j holds a joint inside the map",
    "dense_hps": "joint offsets painted over the person's centre window (2J, H, W)",
    "dense_hps_mask": "centre Gaussian per joint, twice (weights for the dense L1)",
    "cat": "class index of slot k (only with with_cat=True; not a CenterNet target)",
}


def _mk(name: str, shape: tuple[int, ...], dtype: np.dtype) -> TargetSpec:
    return TargetSpec(name, tuple(int(s) for s in shape), dtype, _DOCS[name])


def target_spec(config: "CtdetConfig | MultiPoseConfig") -> dict[str, TargetSpec]:
    """Every target ``config`` produces, in CenterNet's order, with shape and dtype.

    ctdet: ``hm (C,H,W) f32, reg_mask (M,) u8, ind (M,) i64`` and ``wh (M,2)
    f32`` or ``cat_spec_wh/cat_spec_mask (M,2C) f32/u8`` or ``dense_wh/
    dense_wh_mask (2,H,W) f32``, plus ``reg (M,2) f32``.
    multi_pose: ``hm, reg_mask, ind, wh`` and ``hps (M,2J) f32 / hps_mask
    (M,2J) u8`` or ``dense_hps/dense_hps_mask (2J,H,W) f32``, plus ``reg``,
    ``hm_hp (J,H,W) f32``, ``hp_offset (M*J,2) f32, hp_ind (M*J,) i64,
    hp_mask (M*J,) i64``.
    """
    W, H = config.output_size
    C, M = config.num_classes, config.max_objs
    out: dict[str, TargetSpec] = {}

    def add(name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        out[name] = _mk(name, shape, dtype)

    add("hm", (C, H, W), _F32)
    add("reg_mask", (M,), _U8)
    add("ind", (M,), _I64)
    if config.with_cat:
        add("cat", (M,), _I64)
    if config.task == "ctdet":
        if config.dense_wh:
            add("dense_wh", (2, H, W), _F32)
            add("dense_wh_mask", (2, H, W), _F32)
        elif config.cat_spec_wh:
            add("cat_spec_wh", (M, 2 * C), _F32)
            add("cat_spec_mask", (M, 2 * C), _U8)
        else:
            add("wh", (M, 2), _F32)
        if config.reg_offset:
            add("reg", (M, 2), _F32)
        return out
    J = config.num_joints
    add("wh", (M, 2), _F32)
    if config.dense_hp:
        add("dense_hps", (2 * J, H, W), _F32)
        add("dense_hps_mask", (2 * J, H, W), _F32)
    else:
        add("hps", (M, 2 * J), _F32)
        add("hps_mask", (M, 2 * J), _U8)
    if config.reg_offset:
        add("reg", (M, 2), _F32)
    if config.hm_hp:
        add("hm_hp", (J, H, W), _F32)
    if config.reg_hp_offset:
        add("hp_offset", (M * J, 2), _F32)
        add("hp_ind", (M * J,), _I64)
        add("hp_mask", (M * J,), _I64)
    return out
