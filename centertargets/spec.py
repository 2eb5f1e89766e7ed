"""Target names -> shape and dtype, and output heads -> channels, derived from a config.

Names, shapes and dtypes are CenterNet's, so a CenterNet training loop takes
the targets unchanged.  Symbols: C classes, J joints, M = ``max_objs``,
H x W the output map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

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


#: CenterNet's initial bias of heatmap heads trained with the focal loss:
#: ``-log((1 - 0.1) / 0.1) = -2.19``, so that every pixel starts at p = 0.1.
HEATMAP_PRIOR_BIAS = -2.19


@dataclass(frozen=True)
class HeadSpec:
    """One network output head: ``name``, ``channels`` and how it is trained and decoded.

    ``kind`` is ``"heatmap"`` for heads that output logits, trained with the
    focal loss and passed through a sigmoid by the decoder, or
    ``"regression"`` for heads whose raw values are the prediction (sizes,
    offsets, joint vectors, and MSRA heatmaps trained with MSE).  ``loss``
    names the criterion, ``targets`` the targets that supervise the head,
    and ``init_bias`` is CenterNet's initial bias for the head's last layer
    (``-2.19`` for focal heatmaps, 0 otherwise).
    """

    name: str
    channels: int
    kind: Literal["heatmap", "regression"]
    loss: str
    targets: tuple[str, ...]
    doc: str
    output_size: tuple[int, int]

    @property
    def init_bias(self) -> float:
        """CenterNet's initial bias of the head's last layer."""
        return HEATMAP_PRIOR_BIAS if self.kind == "heatmap" else 0.0

    def shape(self, batch: int) -> tuple[int, int, int, int]:
        """The head's output shape for a batch: ``(B, channels, H, W)``."""
        W, H = self.output_size
        return (batch, self.channels, H, W)


def describe_config(config: "CtdetConfig | MultiPoseConfig") -> str:
    """A short description of a config for error messages."""
    extra = f", num_joints={config.num_joints}" if config.task == "multi_pose" else ""
    return (f"{type(config).__name__}(output_size={config.output_size}, "
            f"num_classes={config.num_classes}, max_objs={config.max_objs}{extra})")


def check_head(outputs: Any, head: HeadSpec, batch: int | None = None, context: str = "") -> Any:
    """``outputs[head.name]``, checked to be a floating (B, channels, H, W) torch tensor.

    ``batch`` pins B when given.  Errors name the head, what was given and
    what was expected (``context`` says where the expectation comes from).
    Imports torch when called.
    """
    import torch

    name, where = head.name, f" from {context}" if context else ""
    W, H = head.output_size
    want = f"({'B' if batch is None else batch}, {head.channels}, {H}, {W})"
    if not hasattr(outputs, "keys"):
        raise TypeError(f"outputs is {type(outputs).__name__}: expected a dict of head tensors "
                        f"({head.name!r}, ...)")
    if name not in outputs:
        raise ValueError(f"outputs has no head {name!r}: expected a {want} tensor{where} "
                         f"(heads given: {sorted(outputs)})")
    t = outputs[name]
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"outputs[{name!r}] is {type(t).__name__}: expected a torch.Tensor {want}")
    if t.dim() != 4 or tuple(t.shape[1:]) != (head.channels, H, W) or \
            (batch is not None and t.shape[0] != batch):
        raise ValueError(f"outputs[{name!r}] has shape {tuple(t.shape)}: expected {want}, "
                         f"{head.channels} channel{'s' if head.channels != 1 else ''} for head "
                         f"{name!r}{where}")
    if not t.is_floating_point():
        raise TypeError(f"outputs[{name!r}] has dtype {t.dtype}: expected floating point")
    return t


def head_spec(config: "CtdetConfig | MultiPoseConfig") -> dict[str, HeadSpec]:
    """Every output head ``config`` needs, in CenterNet's order: name -> :class:`HeadSpec`.

    ctdet: ``hm`` (C), ``wh`` (2, or 2C with ``cat_spec_wh``), ``reg`` (2) with
    ``reg_offset``.  multi_pose: ``hm`` (C), ``wh`` (2), ``hps`` (2J), ``reg`` (2)
    with ``reg_offset``, ``hm_hp`` (J) with ``hm_hp``, ``hp_offset`` (2) with
    ``reg_hp_offset``.  The channels are CenterNet's ``opt.heads``; every head
    is (B, channels, H, W) at the output size.
    """
    C = config.num_classes
    msra = config.heatmap == "msra"
    out: dict[str, HeadSpec] = {}

    def add(name: str, channels: int, kind: str, loss: str, targets: tuple[str, ...],
            doc: str) -> None:
        out[name] = HeadSpec(name, int(channels), kind, loss, targets,  # type: ignore[arg-type]
                             doc, config.output_size)

    def heatmap(name: str, channels: int, regressed: bool, what: str) -> None:
        if regressed:           # MSRA heatmaps: raw values trained with MSE
            add(name, channels, "regression", "mse", (name,), f"{what}, regressed with MSE "
                "(no sigmoid)")
        else:
            add(name, channels, "heatmap", "focal", (name,), f"{what}, logits")

    def per_object(name: str, targets: tuple[str, ...], doc: str, channels: int = 2) -> None:
        add(name, channels, "regression", "l1 at ind", targets, doc + ", read at ind")

    if config.task == "ctdet":
        heatmap("hm", C, msra, "centre heatmap per class")
        if config.dense_wh:
            add("wh", 2, "regression", "dense l1", ("dense_wh", "dense_wh_mask"),
                "box size at every pixel, weighted by the centre heatmap")
        elif config.cat_spec_wh:
            per_object("wh", ("cat_spec_wh", "cat_spec_mask"),
                       "box size per class (columns 2c, 2c+1)", 2 * C)
        else:
            per_object("wh", ("wh", "reg_mask"), "box size")
    else:
        J = config.num_joints
        heatmap("hm", C, False, "person-centre heatmap")      # upstream: focal even with MSRA
        per_object("wh", ("wh", "reg_mask"), "box size")
        if config.dense_hp:
            add("hps", 2 * J, "regression", "dense l1", ("dense_hps", "dense_hps_mask"),
                "joint vectors from the centre at every pixel, weighted by the centre heatmap")
        else:
            per_object("hps", ("hps", "hps_mask"), "joint vectors (dx, dy) from the integer "
                       "centre", 2 * J)
    if config.reg_offset:
        per_object("reg", ("reg", "reg_mask"), "sub-pixel centre offset")
    if config.task == "multi_pose":
        if config.hm_hp:
            heatmap("hm_hp", config.num_joints, msra, "joint heatmaps")
        if config.reg_hp_offset:
            add("hp_offset", 2, "regression", "l1 at hp_ind", ("hp_offset", "hp_mask"),
                "sub-pixel joint offset read at hp_ind")
    return out
