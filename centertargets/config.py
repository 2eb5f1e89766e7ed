"""Frozen, validated configurations: one object drives encoder, loss and decoder.

Sizes are ``(width, height)``; arrays are ``(C, H, W)``.  Every field that
reproduces an upstream CenterNet quirk defaults to CenterNet's behaviour and
names the corrected alternative (see the README's quirk table).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from .spec import HeadSpec, TargetSpec

HeatmapKind = Literal["umich", "msra", "elliptic"]
RadiusFormula = Literal["centernet", "corrected"]
OverflowPolicy = Literal["drop", "error"]

def _fail(owner: str, name: str, value: Any, expected: str) -> None:
    raise ValueError(f"{owner}.{name}={value!r}: expected {expected}")


#: Largest output side: float32 holds every integer coordinate of the map exactly up to
#: 2^24, so centres and keypoints can never round onto the pixel past the border.
MAX_OUTPUT_SIDE = 1 << 24


def _int(owner: str, name: str, value: Any, expected: str) -> int:
    """``value`` as an int (Python or numpy integers; not bools, not floats)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        _fail(owner, name, value, expected)
    return int(value)


def _check_int(owner: str, name: str, value: Any, lo: int, hi: int | None = None) -> int:
    v = _int(owner, name, value, "an int")
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        _fail(owner, name, value, f"an int {rng}")
    return v


def _check_bool(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(owner, name, value, "True or False")


def _check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        _fail(owner, name, value, "one of " + ", ".join(repr(c) for c in choices))


def _check_pos_float(owner: str, name: str, value: Any, hi: float | None = None,
                     why: str = "") -> float:
    ok = not isinstance(value, (bool, np.bool_)) and \
        isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) \
        and value > 0
    if not ok:
        _fail(owner, name, value, "a finite number > 0")
    if hi is not None and value > hi:
        _fail(owner, name, value, f"a number in (0, {hi:g}]{why}")
    return float(value)


def _output_size(owner: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (value, value)
    try:
        w, h = value
    except (TypeError, ValueError):
        _fail(owner, "output_size", value, "(width, height) of two ints")
    sizes = []
    for v in (w, h):
        n = _int(owner, "output_size", v, "(width, height) of two ints >= 1")
        if n < 1 or n > MAX_OUTPUT_SIDE:
            _fail(owner, "output_size", value, f"(width, height) of ints in [1, {MAX_OUTPUT_SIDE}]"
                  " (float32 coordinates are exact up to 2^24)")
        sizes.append(n)
    return (sizes[0], sizes[1])


@dataclass(frozen=True)
class RadiusConfig:
    """How the umich Gaussian's radius is derived from a box (output pixels).

    ``formula``: ``"centernet"`` (default, CenterNet's legacy roots, about 2.8x
    too large at ``min_overlap=0.7``) or ``"corrected"`` (the real roots).
    ``min_overlap``: the IoU a box shifted by the radius must keep (0.7).
    ``min_radius``: lower bound on the integer radius (CenterNet: 0).
    """

    formula: RadiusFormula = "centernet"
    min_overlap: float = 0.7
    min_radius: int = 0

    def __post_init__(self) -> None:
        _check_choice("RadiusConfig", "formula", self.formula, ("centernet", "corrected"))
        mo = self.min_overlap
        if isinstance(mo, (bool, np.bool_)) or not isinstance(mo, (int, float, np.integer,
                                                                  np.floating)) or not 0 < mo < 1:
            _fail("RadiusConfig", "min_overlap", mo, "a number strictly between 0 and 1")
        object.__setattr__(self, "min_overlap", float(mo))
        object.__setattr__(self, "min_radius", _check_int("RadiusConfig", "min_radius",
                                                          self.min_radius, 0, MAX_OUTPUT_SIDE))


@dataclass(frozen=True)
class _BaseConfig:
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

    def _validate_common(self) -> None:
        owner = type(self).__name__
        object.__setattr__(self, "output_size", _output_size(owner, self.output_size))
        side = max(self.output_size)
        object.__setattr__(self, "max_objs", _check_int(owner, "max_objs", self.max_objs, 1,
                                                        1 << 20))
        object.__setattr__(self, "num_classes", _check_int(owner, "num_classes",
                                                           self.num_classes, 1, 1 << 16))
        _check_bool(owner, "reg_offset", self.reg_offset)
        _check_choice(owner, "heatmap", self.heatmap, ("umich", "msra", "elliptic"))
        object.__setattr__(self, "msra_sigma", _check_pos_float(
            owner, "msra_sigma", self.msra_sigma, float(min(side, 512)),
            " (a wider Gaussian than the map, or than 512, only costs memory)"))
        if self.heatmap == "msra" and (self.msra_sigma < 1 or not self.msra_sigma.is_integer()):
            _fail(owner, "msra_sigma", self.msra_sigma,
                  "an integer >= 1 with heatmap='msra': upstream's draw_msra_gaussian truncates "
                  "3 * sigma with int(), so a fractional sigma puts less than 1.0 at the centre "
                  "and a sigma below 1 can move the peak off 'ind' or draw nothing")
        object.__setattr__(self, "elliptic_alpha", _check_pos_float(
            owner, "elliptic_alpha", self.elliptic_alpha, 10.0, " (TTFNet uses 0.54)"))
        if not isinstance(self.radius, RadiusConfig):
            _fail(owner, "radius", self.radius, "a RadiusConfig")
        if self.radius.min_radius > side:
            _fail(owner, "radius", self.radius, f"min_radius <= {side}, the map's larger side")
        _check_choice(owner, "overflow", self.overflow, ("drop", "error"))
        _check_bool(owner, "with_cat", self.with_cat)

    @property
    def width(self) -> int:
        """Output (heatmap) width in pixels."""
        return self.output_size[0]

    @property
    def height(self) -> int:
        """Output (heatmap) height in pixels."""
        return self.output_size[1]

    def spec(self) -> dict[str, "TargetSpec"]:
        """Every target this config produces: name -> :class:`~centertargets.spec.TargetSpec`."""
        from .spec import target_spec

        return target_spec(self)

    def head_spec(self) -> dict[str, "HeadSpec"]:
        """Every network output head this config needs: name -> :class:`~centertargets.spec.HeadSpec`.

        Losses, decoders and examples read the heads from here; build a model's
        last layers from it (``channels``, ``init_bias``).
        """
        from .spec import head_spec

        return head_spec(self)

    def heads(self) -> dict[str, int]:
        """Head name -> channels, CenterNet's ``opt.heads`` (e.g. ``{"hm": 1, "wh": 2, "hps": 34, ...}``)."""
        return {name: h.channels for name, h in self.head_spec().items()}

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class CtdetConfig(_BaseConfig):
    """Everything that shapes CenterNet's object-detection (``ctdet``) targets.

    Parameters
    ----------
    output_size : (width, height) of the output heatmap; CenterNet: input / 4.
    num_classes : C, channels of ``hm`` (COCO: 80).
    max_objs : M, slots in the per-object targets (CenterNet ctdet: 128).
    reg_offset : produce ``reg``, the sub-pixel centre offset.
    cat_spec_wh : per-class size targets ``cat_spec_wh`` / ``cat_spec_mask`` instead of ``wh``.
    dense_wh : dense size maps ``dense_wh`` / ``dense_wh_mask`` instead of ``wh``.
    heatmap : ``"umich"`` (CenterNet default, radius from the box), ``"msra"``
        (fixed ``msra_sigma``, CenterNet's ``--mse_loss``), or ``"elliptic"``
        (TTFNet: sigmas from ``elliptic_alpha`` times the box sides).
    msra_sigma : sigma of the MSRA Gaussian (CenterNet's ``hm_gauss``).
    radius : :class:`RadiusConfig`.
    overflow : ``"drop"`` objects beyond ``max_objs`` (CenterNet, but counted in
        the report) or ``"error"``.
    with_cat : also return ``cat`` (M,) int64, the class of each slot (not a
        CenterNet target; the "fast" focal loss reads positives with it).
    """

    cat_spec_wh: bool = False
    dense_wh: bool = False

    def __post_init__(self) -> None:
        self._validate_common()
        _check_bool("CtdetConfig", "cat_spec_wh", self.cat_spec_wh)
        _check_bool("CtdetConfig", "dense_wh", self.dense_wh)
        if self.cat_spec_wh and self.dense_wh:
            _fail("CtdetConfig", "dense_wh", True,
                  "False when cat_spec_wh=True (the two replace 'wh' in different ways)")
        if self.dense_wh and self.heatmap == "msra" and float(self.msra_sigma) != int(self.msra_sigma):
            _fail("CtdetConfig", "msra_sigma", self.msra_sigma,
                  "an integer when dense_wh=True (it is the dense window radius)")

    @property
    def task(self) -> str:
        return "ctdet"


@dataclass(frozen=True)
class MultiPoseConfig(_BaseConfig):
    """Everything that shapes CenterNet's multi-person pose (``multi_pose``) targets.

    Parameters beyond :class:`CtdetConfig`'s
    -----------------------------------------
    num_joints : J (COCO: 17).
    max_objs : M (CenterNet multi_pose: 32).  num_classes defaults to 1.
    hm_hp : produce ``hm_hp``, one heatmap per joint.
    reg_hp_offset : produce ``hp_offset`` / ``hp_ind`` / ``hp_mask``.
    dense_hp : ``dense_hps`` / ``dense_hps_mask`` maps instead of ``hps`` / ``hps_mask``.
    no_keypoints : persons with no labelled keypoint.  ``"centernet"``: their
        centre stays a positive (1.0) in ``hm`` and ``reg_mask`` is 0;
        ``"ignore"``: their centre is 0.9999 (neither positive nor a weighted
        negative for the focal loss) and ``reg_mask`` is 0.
    rotation : ``"centernet"``: with rotation, boxes use the unrotated
        transform, joints the rotated one, then ``hm`` is set to 0.9999 and
        ``reg_mask``/``hps_mask`` are zeroed; ``"corners"``: the box is the
        hull of its 4 rotated corners and the targets are kept.
    occluded_joints : ``"centernet"`` draws ``v=1`` (labelled, occluded)
        joints in ``hm_hp`` like visible ones; ``"ignore_in_hm_hp"`` leaves
        them out of ``hm_hp`` (CenterTrack's choice) but keeps their offsets.
    flip_idx : left/right joint pairs swapped by a horizontal flip; None
        (default): from the data (``CenterNetDataset`` takes them from the
        COCO file's keypoint names, none when the names have no left/right
        pairs).  COCO's are :data:`centertargets.coco.COCO_FLIP_IDX`.
    """

    max_objs: int = 32
    num_classes: int = 1
    num_joints: int = 17
    hm_hp: bool = True
    reg_hp_offset: bool = True
    dense_hp: bool = False
    no_keypoints: Literal["centernet", "ignore"] = "centernet"
    rotation: Literal["centernet", "corners"] = "centernet"
    occluded_joints: Literal["centernet", "ignore_in_hm_hp"] = "centernet"
    flip_idx: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        self._validate_common()
        owner = "MultiPoseConfig"
        object.__setattr__(self, "num_joints", _check_int(owner, "num_joints", self.num_joints,
                                                          1, 4096))
        for name in ("hm_hp", "reg_hp_offset", "dense_hp"):
            _check_bool(owner, name, getattr(self, name))
        _check_choice(owner, "no_keypoints", self.no_keypoints, ("centernet", "ignore"))
        _check_choice(owner, "rotation", self.rotation, ("centernet", "corners"))
        _check_choice(owner, "occluded_joints", self.occluded_joints,
                      ("centernet", "ignore_in_hm_hp"))
        if self.flip_idx is not None:
            self._check_flip_idx()
        if self.dense_hp and self.heatmap == "msra" and float(self.msra_sigma) != int(self.msra_sigma):
            _fail(owner, "msra_sigma", self.msra_sigma,
                  "an integer when dense_hp=True (it is the dense window radius)")

    def _check_flip_idx(self) -> None:
        owner = "MultiPoseConfig"
        try:
            pairs = tuple((int(a), int(b)) for a, b in self.flip_idx)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            _fail(owner, "flip_idx", self.flip_idx, "a sequence of (left, right) joint pairs")
        seen: set[int] = set()
        for a, b in pairs:
            if not (0 <= a < self.num_joints and 0 <= b < self.num_joints) or a == b \
                    or a in seen or b in seen:
                _fail(owner, "flip_idx", self.flip_idx,
                      f"disjoint pairs of distinct joint indices in [0, {self.num_joints})")
            seen.update((a, b))
        object.__setattr__(self, "flip_idx", pairs)

    @property
    def task(self) -> str:
        return "multi_pose"


Config = CtdetConfig | MultiPoseConfig
