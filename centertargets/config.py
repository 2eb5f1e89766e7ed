"""What every task's config shares: the base class, ``RadiusConfig`` and the validators.

One frozen, validated config drives a task's encoder, loss and decoder; each
task's own config class (``CtdetConfig``, ``MultiPoseConfig``, ...) lives in
its unit under :mod:`centertargets.tasks` and derives from :class:`BaseConfig`.
Sizes are ``(width, height)``; arrays are ``(C, H, W)``.  Every field that
reproduces an upstream CenterNet quirk defaults to CenterNet's behaviour and
names the corrected alternative (see the README's quirk table).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .spec import HeadSpec, SparseLayout, TargetSpec, draws_spec

HeatmapKind = Literal["umich", "msra", "elliptic", "mmdet"]
HeatmapFormat = Literal["dense", "sparse"]
RadiusFormula = Literal["centernet", "corrected"]
OverflowPolicy = Literal["drop", "error"]

def fail(owner: str, name: str, value: Any, expected: str) -> None:
    raise ValueError(f"{owner}.{name}={value!r}: expected {expected}")


#: Largest output side: float32 holds every integer coordinate of the map exactly up to
#: 2^24, so centres and keypoints can never round onto the pixel past the border.
MAX_OUTPUT_SIDE = 1 << 24


def as_int(owner: str, name: str, value: Any, expected: str) -> int:
    """``value`` as an int (Python or numpy integers; not bools, not floats)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        fail(owner, name, value, expected)
    return int(value)


def check_int(owner: str, name: str, value: Any, lo: int, hi: int | None = None) -> int:
    v = as_int(owner, name, value, "an int")
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        fail(owner, name, value, f"an int {rng}")
    return v


def check_bool(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        fail(owner, name, value, "True or False")


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        fail(owner, name, value, "one of " + ", ".join(repr(c) for c in choices))


def check_pos_float(owner: str, name: str, value: Any, hi: float | None = None,
                     why: str = "") -> float:
    ok = not isinstance(value, (bool, np.bool_)) and \
        isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) \
        and value > 0
    if not ok:
        fail(owner, name, value, "a finite number > 0")
    if hi is not None and value > hi:
        fail(owner, name, value, f"a number in (0, {hi:g}]{why}")
    return float(value)


def _output_size(owner: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (value, value)
    try:
        w, h = value
    except (TypeError, ValueError):
        fail(owner, "output_size", value, "(width, height) of two ints")
    sizes = []
    for v in (w, h):
        n = as_int(owner, "output_size", v, "(width, height) of two ints >= 1")
        if n < 1 or n > MAX_OUTPUT_SIDE:
            fail(owner, "output_size", value, f"(width, height) of ints in [1, {MAX_OUTPUT_SIDE}]"
                  " (float32 coordinates are exact up to 2^24)")
        sizes.append(n)
    return (sizes[0], sizes[1])


@dataclass(frozen=True)
class RadiusConfig:
    """How the umich Gaussian's radius is derived from a box (output pixels).

    ``formula``: ``"centernet"`` (default, CenterNet's legacy roots: 3.3x-3.6x the
    corrected radius at ``min_overlap=0.7``, median 3.4x) or ``"corrected"`` (the real
    roots).  ``min_overlap``: the IoU a box shifted by the radius must keep (0.7).
    ``min_radius``: lower bound on the integer radius (CenterNet: 0).
    ``round_sides``: CenterNet rounds the box sides up before the formula; False takes
    them as they are (mmdetection).  :meth:`mmdet` is mmdetection's CenterNet.
    """

    formula: RadiusFormula = "centernet"
    min_overlap: float = 0.7
    min_radius: int = 0
    round_sides: bool = True

    @classmethod
    def mmdet(cls) -> "RadiusConfig":
        """mmdetection's CenterNet head: the corrected roots at ``min_overlap=0.3``, box sides
        not rounded up."""
        return cls("corrected", 0.3, 0, round_sides=False)

    def __post_init__(self) -> None:
        check_choice("RadiusConfig", "formula", self.formula, ("centernet", "corrected"))
        mo = self.min_overlap
        if isinstance(mo, (bool, np.bool_)) or not isinstance(mo, (int, float, np.integer,
                                                                  np.floating)) or not 0 < mo < 1:
            fail("RadiusConfig", "min_overlap", mo, "a number strictly between 0 and 1")
        object.__setattr__(self, "min_overlap", float(mo))
        object.__setattr__(self, "min_radius", check_int("RadiusConfig", "min_radius",
                                                          self.min_radius, 0, MAX_OUTPUT_SIDE))
        check_bool("RadiusConfig", "round_sides", self.round_sides)


#: Task name -> its registered unit (filled by ``tasks.base.register``): what
#: :meth:`BaseConfig.from_coco` asks, without this module importing the tasks.
UNITS: dict[str, Any] = {}


@dataclass(frozen=True)
class BaseConfig:
    """The fields every task's config has (see a task's config for their meaning).

    Subclasses set ``task`` (the unit's name), call :meth:`_validate_common`
    in ``__post_init__``, and implement :meth:`spec` (ending with :meth:`sparse_spec`) and
    :meth:`head_spec`; a task whose kernel can record its heatmaps overrides
    :meth:`sparse_layout`.
    """

    task: ClassVar[str] = ""
    output_size: tuple[int, int] = (128, 128)
    max_objs: int = 128
    num_classes: int = 80
    reg_offset: bool = True
    heatmap: HeatmapKind = "umich"
    msra_sigma: float = 2.0
    elliptic_alpha: float = 0.54
    radius: RadiusConfig = field(default_factory=RadiusConfig)
    overflow: OverflowPolicy = "drop"
    with_cat: bool = False
    heatmaps: HeatmapFormat = "dense"

    def _validate_common(self) -> None:
        owner = type(self).__name__
        object.__setattr__(self, "output_size", _output_size(owner, self.output_size))
        side = max(self.output_size)
        object.__setattr__(self, "max_objs", check_int(owner, "max_objs", self.max_objs, 1,
                                                        1 << 20))
        object.__setattr__(self, "num_classes", check_int(owner, "num_classes",
                                                           self.num_classes, 1, 1 << 16))
        check_bool(owner, "reg_offset", self.reg_offset)
        check_choice(owner, "heatmap", self.heatmap, ("umich", "msra", "elliptic", "mmdet"))
        object.__setattr__(self, "msra_sigma", check_pos_float(
            owner, "msra_sigma", self.msra_sigma, float(min(side, 512)),
            " (a wider Gaussian than the map, or than 512, only costs memory)"))
        if self.heatmap == "msra" and (self.msra_sigma < 1 or not self.msra_sigma.is_integer()):
            fail(owner, "msra_sigma", self.msra_sigma,
                  "an integer >= 1 with heatmap='msra': upstream's draw_msra_gaussian truncates "
                  "3 * sigma with int(), so a fractional sigma puts less than 1.0 at the centre "
                  "and a sigma below 1 can move the peak off 'ind' or draw nothing")
        object.__setattr__(self, "elliptic_alpha", check_pos_float(
            owner, "elliptic_alpha", self.elliptic_alpha, 10.0, " (TTFNet uses 0.54)"))
        if not isinstance(self.radius, RadiusConfig):
            fail(owner, "radius", self.radius, "a RadiusConfig")
        if self.radius.min_radius > side:
            fail(owner, "radius", self.radius, f"min_radius <= {side}, the map's larger side")
        check_choice(owner, "overflow", self.overflow, ("drop", "error"))
        check_bool(owner, "with_cat", self.with_cat)
        check_choice(owner, "heatmaps", self.heatmaps, ("dense", "sparse"))

    @classmethod
    def from_coco(cls, coco: Any, output_size: Any = (128, 128), **overrides: Any) -> Any:
        """A config of this task fitting a loaded COCO file, then ``overrides``.

        From the file: the classes (``coco.num_classes``; pass ``category_map=`` when loading
        to merge or remap categories), the joints and their left/right flip pairs (pose),
        what the task reads from its annotations; the task's defaults for the rest
        (``max_objs``: ctdet 128, pose 32, ...).  ``MultiPoseConfig.from_coco(coco,
        output_size=(128, 128), max_objs=20)``.
        """
        unit = UNITS.get(cls.task)
        if unit is None or unit.config_type is not cls:
            raise TypeError(f"{cls.__name__}.from_coco: expected the config class of a "
                            f"registered task ({', '.join(sorted(UNITS))})")
        out = _output_size(cls.__name__, output_size)
        cfg = unit.config_for_coco(coco, out, overrides.pop("max_objs", None))
        if overrides:
            cfg = cfg.replace(**overrides)
        return unit.adapt(cfg, coco)

    @property
    def width(self) -> int:
        """Output (heatmap) width in pixels."""
        return self.output_size[0]

    @property
    def height(self) -> int:
        """Output (heatmap) height in pixels."""
        return self.output_size[1]

    def spec(self) -> dict[str, TargetSpec]:
        """Every target this config produces: name -> :class:`~centertargets.spec.TargetSpec`."""
        raise NotImplementedError

    def sparse_layout(self) -> SparseLayout:
        """Which heatmaps this config can send as a draw list (``heatmaps="sparse"``), and the
        most rows one sample can need; a task that cannot says why (``dense_reason``)."""
        return SparseLayout((), 0, f"the {self.task} task draws its heatmaps densely only")

    def sparse_spec(self, dense: dict[str, TargetSpec]) -> dict[str, TargetSpec]:
        """``dense`` (a task's targets) with ``heatmaps="sparse"`` applied: the heatmaps of
        :meth:`sparse_layout` replaced by ``draws`` (R, 8) int32; ``dense`` itself otherwise."""
        layout = self.sparse_layout()
        if self.heatmaps != "sparse" or not layout.maps:
            return dense
        out = {k: v for k, v in dense.items() if k not in layout.maps}
        out["draws"] = draws_spec(layout)
        return out

    def dense_spec(self) -> dict[str, TargetSpec]:
        """:meth:`spec` with ``heatmaps="dense"``: the shapes the draw list renders to."""
        return self.spec() if self.heatmaps == "dense" else self.replace(heatmaps="dense").spec()

    def head_spec(self) -> dict[str, HeadSpec]:
        """Every network output head this config needs: name -> :class:`~centertargets.spec.HeadSpec`.

        Losses, decoders and examples read the heads from here; build a model's
        last layers from it (``channels``, ``init_bias``).
        """
        raise NotImplementedError

    def describe(self) -> str:
        """A short description for error messages (type, sizes and what shapes the targets)."""
        extra = "".join(f", {k}={getattr(self, k)}" for k in self._describe_fields)
        return (f"{type(self).__name__}(output_size={self.output_size}, "
                f"num_classes={self.num_classes}, max_objs={self.max_objs}{extra})")

    _describe_fields: ClassVar[tuple[str, ...]] = ()

    def heads(self) -> dict[str, int]:
        """Head name -> channels, CenterNet's ``opt.heads`` (e.g. ``{"hm": 1, "wh": 2, "hps": 34, ...}``)."""
        return {name: h.channels for name, h in self.head_spec().items()}

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
