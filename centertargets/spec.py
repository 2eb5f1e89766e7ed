"""Target names -> shape and dtype, and output heads -> channels: the types and builders.

Each task unit (:mod:`centertargets.tasks`) lists its own targets and heads
with :class:`Targets` and :class:`Heads`; ``config.spec()`` and
``config.head_spec()`` return them.  Names, shapes and dtypes are CenterNet's,
so a CenterNet training loop takes the targets unchanged.  Symbols: C
classes, J joints, M = ``max_objs``, H x W the output map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np


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


F32, U8, I64 = _F32, _U8, _I64
I32 = np.dtype(np.int32)


class SparseLayout(NamedTuple):
    """What ``heatmaps="sparse"`` sends for a config: ``maps``, the heatmaps recorded in the
    draw list (map index = position here); ``rows``, the most rows one sample can need; or,
    when ``maps`` is empty, ``dense_reason``, why they stay dense."""

    maps: tuple[str, ...]
    rows: int
    dense_reason: str = ""


def draws_spec(layout: SparseLayout) -> TargetSpec:
    """The ``draws`` target of a sparse layout: (rows, 8) int32, unused rows zero."""
    return TargetSpec("draws", (layout.rows, 8), I32,
                      "draw list of " + ", ".join(layout.maps) + " (op, map, channel, 5 "
                      "operands per row; centertargets.sparse), rendered on the device")


class Targets:
    """Builds a task's ``{name: TargetSpec}`` in order: ``t.add("hm", (C, H, W), F32)``.

    ``doc`` defaults to the shared description of CenterNet's target names.
    """

    def __init__(self) -> None:
        self.out: dict[str, TargetSpec] = {}

    def add(self, name: str, shape: tuple[int, ...], dtype: np.dtype, doc: str | None = None
            ) -> None:
        self.out[name] = TargetSpec(name, tuple(int(v) for v in shape), np.dtype(dtype),
                                    _DOCS[name] if doc is None else doc)


def target_spec(config: Any) -> dict[str, TargetSpec]:
    """Every target ``config`` produces, in CenterNet's order: ``config.spec()``."""
    return config.spec()


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


class Heads:
    """Builds a task's ``{name: HeadSpec}`` in order, for an output map of ``output_size``."""

    def __init__(self, output_size: tuple[int, int]) -> None:
        self.output_size = output_size
        self.out: dict[str, HeadSpec] = {}

    def add(self, name: str, channels: int, kind: str, loss: str, targets: tuple[str, ...],
            doc: str) -> None:
        self.out[name] = HeadSpec(name, int(channels), kind, loss, targets,  # type: ignore[arg-type]
                                  doc, self.output_size)

    def heatmap(self, name: str, channels: int, regressed: bool, what: str) -> None:
        """A heatmap head: logits under the focal loss, or raw values under MSE (MSRA maps)."""
        if regressed:
            self.add(name, channels, "regression", "mse", (name,),
                     f"{what}, regressed with MSE (no sigmoid)")
        else:
            self.add(name, channels, "heatmap", "focal", (name,), f"{what}, logits")

    def per_object(self, name: str, targets: tuple[str, ...], doc: str, channels: int = 2
                   ) -> None:
        """A regression head read at each object's ``ind``."""
        self.add(name, channels, "regression", "l1 at ind", targets, doc + ", read at ind")


def head_spec(config: Any) -> dict[str, HeadSpec]:
    """Every output head ``config`` needs, in CenterNet's order: ``config.head_spec()``."""
    return config.head_spec()
