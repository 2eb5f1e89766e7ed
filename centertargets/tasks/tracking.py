"""The ``tracking`` task: CenterTrack's training sample (xingyizhou/CenterTrack, ``GenericDataset``).

CenterTrack feeds the network the current frame, the previous frame
(``pre_img``) and a heatmap of the previous frame's objects (``pre_hm``, at
input resolution), and supervises, besides CenterNet's ``hm``/``reg``/``wh``,
a ``tracking`` offset from each object's integer centre back to where the
same ``track_id`` was in the previous frame (output pixels).  Its targets are
the *generic* form of every CenterNet head: every regression head has a mask
of its own width (``reg_mask`` is (M, 2) float32, not (M,) uint8), classes
come as ``cat`` and a float ``mask``, and optional heads add ``ltrb`` /
``ltrb_amodal`` (box sides from the centre), pose (``hps``, ``hm_hp``,
``hp_offset``, ``joint``) and 3D (``dep``, ``dim``, ``rot``, ``amodel_offset``,
``velocity``, ``nuscenes_att``).

To make the network robust to its own mistakes at test time, the previous
frame's heatmap is disturbed while training: each previous centre moves by
``N(0, hm_disturb)`` of the box size, an object is left out ("lost") with
probability ``lost_disturb`` and a false positive blob is added near an object
with probability ``fp_disturb``; the previous frame itself is drawn from
``max_frame_dist`` frames around the current one, under its own small
shift/scale.  Every one of these draws is in :class:`TrackParams`, so
``TrackingDataset.item(index, params)`` replays a sample exactly, upstream's
recorded draws included (``centertargets compare``).

Classes: upstream's ``cat_ids`` convention (:class:`TrackingConfig.cat_ids`):
category -> ``cls_id``, 1-based (``cls_id - 1`` is the channel); ``0`` ignores
every class over the box, ``-c`` class ``c - 1``; ``<= -999`` and ``> C`` are
skipped (``<= -99`` in the previous frame).  Loss:
:class:`losses.tracking.GenericLoss`; decoder:
:class:`losses.tracking.TrackingDecoder`; tracker:
:class:`centertargets.tracker.Tracker`; dataset:
:class:`centertargets.tracking.TrackingDataset`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

import numpy as np

from ..augment import AugmentParams, ColorParams
from ..config import BaseConfig, check_bool, check_choice, check_int, fail
from ..encoders import Annotations, Encoder, as_numeric, bind_kernel, kernel_array
from ..kernels._jit import jit
from ..kernels.canvas import FAM_UMICH, max_box, patch_for, peak_at, put_umich, set_pixel
from ..kernels.encode import (ST_BAD_CLASS, ST_DEGENERATE, ST_IGNORED, S_BAD_CLASS,
                              S_COLLISIONS, S_DEGENERATE, S_ENCODED, S_IGNORED, S_INPUT,
                              S_KPS_ENCODED, S_KPS_LABELLED, S_KPS_OUTSIDE, clip_box,
                              consider_objects)
from ..kernels.gaussian import object_radius, patch_table32_covering
from ..kernels.transform import _apply, corner_hull, two_corners
from ..spec import F32, I64, Heads, HeadSpec, SparseLayout, Targets, TargetSpec
from .base import TaskUnit, register

if TYPE_CHECKING:  # pragma: no cover
    from ..coco import CocoDataset, ImageAnnotations

__all__ = ["TrackingConfig", "TrackingEncoder", "TrackParams", "NUSCENES_ATT_RANGE",
           "PRE_USED", "PRE_LOST", "PRE_SKIPPED", "PRE_CROWD", "PRE_EMPTY", "frame_geometry"]

#: nuScenes' attribute groups: attribute ``a`` (0-based) supervises the mask over these.
NUSCENES_ATT_RANGE = {0: (0, 1), 1: (0, 1), 2: (2, 3, 4), 3: (2, 3, 4), 4: (2, 3, 4),
                      5: (5, 6, 7), 6: (5, 6, 7), 7: (5, 6, 7)}

#: What became of each previous-frame object (``meta["pre_status"]``).
PRE_USED = 0        # drawn into pre_hm, its centre a tracking target
PRE_LOST = 1        # drawn nowhere (the lost_disturb draw); its disturbed centre is the target
PRE_SKIPPED = 2     # class skipped (cls_id > C or <= -99)
PRE_CROWD = 3       # a crowd box
PRE_EMPTY = 4       # no area once mapped into the input and clipped

#: A previous-frame object's draws when nothing is disturbed: no shift, kept, no false positive.
NO_DISTURB = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0)

_DOCS = {
    "pre_hm": "previous frame's objects at input resolution (disturbed, see hm_disturb)",
    "ind": "flat index cy * W + cx of slot k's integer centre",
    "cat": "class of slot k (0-based)",
    "mask": "1.0 where slot k holds an object (the focal loss' positives)",
    "tracking": "previous centre of the same track_id minus this integer centre",
    "ltrb": "box sides (x1, y1, x2, y2) minus the integer centre, box clipped to the map",
    "ltrb_amodal": "as ltrb, box not clipped",
    "nuscenes_att": "one-hot nuScenes attribute",
    "velocity": "velocity (3 numbers) as annotated",
    "hps": "joint minus integer centre (dx, dy) for each joint of slot k",
    "hm_hp_mask": "1.0 where slot k * J + j holds a visible (v = 2) joint inside the map",
    "hp_offset": "sub-pixel joint offset, slot k * J + j",
    "hp_ind": "flat index of joint j of slot k, slot k * J + j",
    "joint": "joint type j of slot k * J + j",
    "dep": "depth times the sample's scale draw aug_s",
    "dim": "3D height, width, length",
    "amodel_offset": "projected 3D centre minus the integer centre",
    "rotbin": "which of the two orientation bins hold alpha",
    "rotres": "alpha relative to each bin's centre",
    "rot_mask": "1.0 where slot k's orientation is supervised",
}

#: The regression heads of the generic sample with their widths (heads on -> the target and
#: its ``<head>_mask`` of that width), in upstream's order.
def _regression_heads(cfg: "TrackingConfig") -> list[tuple[str, int]]:
    heads = [("reg", 2)]
    if cfg.wh:
        heads.append(("wh", 2))
    heads.append(("tracking", 2))
    if cfg.ltrb:
        heads.append(("ltrb", 4))
    if cfg.ltrb_amodal:
        heads.append(("ltrb_amodal", 4))
    if cfg.nuscenes_att:
        heads.append(("nuscenes_att", 8))
    if cfg.velocity:
        heads.append(("velocity", 3))
    if cfg.num_joints:
        heads.append(("hps", 2 * cfg.num_joints))
    if cfg.ddd:
        heads += [("dep", 1), ("dim", 3), ("amodel_offset", 2)]
    return heads


@dataclass(frozen=True)
class TrackingConfig(BaseConfig):
    """Everything that shapes CenterTrack's tracking sample.

    Parameters
    ----------
    output_size : (width, height) of the output map; the input is ``down_ratio`` times it.
    num_classes : C.  max_objs : M (upstream: 128; KITTI tracking 50, MOT 256).
    down_ratio : input / output (4).
    cat_ids : ``((category_id, cls_id), ...)``, upstream's map: ``cls_id`` in 1..C is class
        ``cls_id - 1``; 0 ignores every class over the box, ``-c`` class ``c - 1``; ``> C`` or
        ``<= -999`` skipped (the previous frame skips ``<= -99``).  None: the file's
        categories in increasing id order are classes 0..C-1.
    wh, ltrb, ltrb_amodal : the box heads (upstream: ``wh`` unless its weight is 0;
        ``--ltrb``, ``--ltrb_amodal``).
    num_joints, flip_idx : pose tracking (``tracking,multi_pose``): ``hps``, ``hm_hp``,
        ``hp_offset`` with J joints; left/right pairs swapped by a flip.
    ddd, velocity, nuscenes_att : 3D tracking (``tracking,ddd``): ``dep``, ``rot``, ``dim``,
        ``amodel_offset``; ``--velocity``; ``--nuscenes_att``.
    pre_hm : produce ``pre_hm`` (``--pre_hm``).
    hm_disturb, lost_disturb, fp_disturb : the previous frame's disturbances (0: none).
    max_frame_dist : training draws the previous frame among those with
        ``|frame_id - current| < max_frame_dist`` (the current one included).
    same_aug_pre : the previous frame shares the current transform (when it is another
        frame); otherwise it gets its own shift/scale around the current one.
    pre_shift, pre_scale : that shift (fraction of the scale) and scale jitter, each a
        Gaussian clipped at 2 sigma (CenterTrack's ``--shift``/``--scale``; its scripts: 0.05).
    max_pre_objs : room for the previous frame's per-object draws in ``meta`` (a previous
        frame with more objects is an error naming the image).
    pre_box_corners : upstream maps a previous box through its two defining corners
        (``"two"``; under rotation a box can invert and be skipped); ``"four"``: the hull of
        its four corners, as the current frame's boxes.
    flip_velocity : upstream drops the velocity of a flipped sample (``"drop"``: mask 0);
        ``"mirror"`` negates its x component instead.
    outside_ignore : an ignore or crowd box wholly outside the map still marks a one-pixel
        strip on the border after clipping (``"strip"``, upstream); ``"skip"`` marks nothing.
    """

    output_size: tuple[int, int] = (128, 128)
    max_objs: int = 128
    num_classes: int = 80
    down_ratio: int = 4
    cat_ids: tuple[tuple[int, int], ...] | None = None
    wh: bool = True
    ltrb: bool = False
    ltrb_amodal: bool = False
    num_joints: int = 0
    flip_idx: tuple[tuple[int, int], ...] = ()
    ddd: bool = False
    velocity: bool = False
    nuscenes_att: bool = False
    pre_hm: bool = True
    hm_disturb: float = 0.0
    lost_disturb: float = 0.0
    fp_disturb: float = 0.0
    max_frame_dist: int = 3
    same_aug_pre: bool = False
    pre_shift: float = 0.05
    pre_scale: float = 0.05
    max_pre_objs: int = 256
    pre_box_corners: Literal["two", "four"] = "two"
    flip_velocity: Literal["drop", "mirror"] = "drop"
    outside_ignore: Literal["strip", "skip"] = "strip"

    task: ClassVar[str] = "tracking"
    _describe_fields: ClassVar[tuple[str, ...]] = ("num_joints", "ddd")

    def __post_init__(self) -> None:
        self._validate_common()
        owner = "TrackingConfig"
        if self.heatmap != "umich":
            fail(owner, "heatmap", self.heatmap, "'umich' (CenterTrack draws umich Gaussians)")
        if not self.reg_offset:
            fail(owner, "reg_offset", self.reg_offset, "True (CenterTrack always has reg)")
        for name in ("wh", "ltrb", "ltrb_amodal", "ddd", "velocity", "nuscenes_att", "pre_hm",
                     "same_aug_pre"):
            check_bool(owner, name, getattr(self, name))
        check_choice(owner, "pre_box_corners", self.pre_box_corners, ("two", "four"))
        check_choice(owner, "flip_velocity", self.flip_velocity, ("drop", "mirror"))
        check_choice(owner, "outside_ignore", self.outside_ignore, ("strip", "skip"))
        object.__setattr__(self, "down_ratio", check_int(owner, "down_ratio", self.down_ratio,
                                                         1, 64))
        object.__setattr__(self, "num_joints", check_int(owner, "num_joints", self.num_joints,
                                                         0, 1024))
        object.__setattr__(self, "max_frame_dist", check_int(owner, "max_frame_dist",
                                                             self.max_frame_dist, 1))
        object.__setattr__(self, "max_pre_objs", check_int(owner, "max_pre_objs",
                                                           self.max_pre_objs, 1, 1 << 20))
        for name in ("hm_disturb", "lost_disturb", "fp_disturb", "pre_shift", "pre_scale"):
            v = getattr(self, name)
            hi = 1.0 if name in ("lost_disturb", "fp_disturb") else 10.0
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or not 0 <= v <= hi:
                fail(owner, name, v, "a probability in [0, 1]" if hi == 1.0 else
                     "a number in [0, 10] (a fraction of the box size or scale; CenterTrack "
                     "uses 0.05)")
            object.__setattr__(self, name, float(v))
        try:
            pairs = tuple((int(a), int(b)) for a, b in self.flip_idx)
        except (TypeError, ValueError):
            fail(owner, "flip_idx", self.flip_idx, "(left, right) joint pairs")
        if any(not (0 <= a < self.num_joints and 0 <= b < self.num_joints) for a, b in pairs):
            fail(owner, "flip_idx", self.flip_idx, f"joint indices in [0, {self.num_joints})")
        object.__setattr__(self, "flip_idx", pairs)
        if self.cat_ids is not None:
            try:
                cmap = tuple((int(a), int(b)) for a, b in self.cat_ids)
            except (TypeError, ValueError):
                fail(owner, "cat_ids", self.cat_ids, "(category_id, cls_id) pairs")
            C = self.num_classes
            for cid, cls in cmap:
                if not (-C <= cls or cls <= -999):
                    fail(owner, "cat_ids", self.cat_ids,
                         f"cls_id in [-{C}, {C}] (ignore 0 / -c, class c) or > {C} / <= -999 "
                         f"(skipped): category {cid} maps to {cls}")
            if len({a for a, _ in cmap}) != len(cmap):
                fail(owner, "cat_ids", self.cat_ids, "distinct category ids")
            object.__setattr__(self, "cat_ids", cmap)

    @property
    def input_size(self) -> tuple[int, int]:
        """``(width, height)`` of the network input (and of ``pre_hm``)."""
        return (self.output_size[0] * self.down_ratio, self.output_size[1] * self.down_ratio)

    def spec(self) -> dict[str, TargetSpec]:
        """Upstream's returned targets (without ``image``/``pre_img``), names, shapes, dtypes:
        ``pre_hm (1, ih, iw)``, ``hm (C, H, W)``, ``ind``/``cat (M,) i64``, ``mask (M,) f32``,
        every regression head and its mask ``(M, width) f32``, pose ``hm_hp (J, H, W)``,
        ``hm_hp_mask (M*J,)``, ``hp_offset``/``hp_offset_mask (M*J, 2)``, ``hp_ind``/``joint
        (M*J,) i64``; 3D ``rotbin (M, 2) i64``, ``rotres (M, 2)``, ``rot_mask (M,)``."""
        W, H = self.output_size
        C, M, J = self.num_classes, self.max_objs, self.num_joints
        t = Targets()
        if self.pre_hm:
            iw, ih = self.input_size
            t.add("pre_hm", (1, ih, iw), F32, _DOCS["pre_hm"])
        t.add("hm", (C, H, W), F32)
        t.add("ind", (M,), I64, _DOCS["ind"])
        t.add("cat", (M,), I64, _DOCS["cat"])
        t.add("mask", (M,), F32, _DOCS["mask"])
        for name, width in _regression_heads(self):
            t.add(name, (M, width), F32, _DOCS.get(name))
            t.add(name + "_mask", (M, width), F32, f"1.0 per coordinate of {name} supervised")
        if J:
            t.add("hm_hp", (J, H, W), F32)
            t.add("hm_hp_mask", (M * J,), F32, _DOCS["hm_hp_mask"])
            t.add("hp_offset", (M * J, 2), F32, _DOCS["hp_offset"])
            t.add("hp_ind", (M * J,), I64, _DOCS["hp_ind"])
            t.add("hp_offset_mask", (M * J, 2), F32, "1.0 where hp_offset is supervised")
            t.add("joint", (M * J,), I64, _DOCS["joint"])
        if self.ddd:
            t.add("rotbin", (M, 2), I64, _DOCS["rotbin"])
            t.add("rotres", (M, 2), F32, _DOCS["rotres"])
            t.add("rot_mask", (M,), F32, _DOCS["rot_mask"])
        return self.sparse_spec(t.out)

    def sparse_layout(self) -> SparseLayout:
        """``hm``, ``hm_hp`` (with joints) and ``pre_hm`` (with ``pre_hm``): per current
        object at most its centre (or an ignore box) and per joint a patch and a set pixel
        (or a box), per previous object two patches (its centre and a false positive)."""
        maps = ("hm",) + (("hm_hp",) if self.num_joints else ()) + \
            (("pre_hm",) if self.pre_hm else ())
        pre = 2 * self.max_pre_objs if self.pre_hm else 0
        return SparseLayout(maps, self.max_objs * (2 + 2 * self.num_joints) + pre)

    def head_spec(self) -> dict[str, HeadSpec]:
        """CenterTrack's heads (``opt.heads``): ``hm`` (C), ``reg``, ``wh``, ``tracking`` (2),
        and with their options ``ltrb``, ``ltrb_amodal`` (4), ``hps`` (2J), ``hm_hp`` (J),
        ``hp_offset`` (2), ``dep`` (1), ``rot`` (8), ``dim`` (3), ``amodel_offset`` (2),
        ``nuscenes_att`` (8), ``velocity`` (3)."""
        h = Heads(self.output_size)
        h.heatmap("hm", self.num_classes, False, "centre heatmap per class")
        widths = dict(_regression_heads(self))
        order = ["reg", "wh", "tracking", "ltrb", "ltrb_amodal", "hps"]
        for name in order:
            if name in widths:
                h.add(name, widths[name], "regression", "weighted l1 at ind",
                      (name, name + "_mask"), f"{_DOCS.get(name, name)}, read at ind")
        if self.num_joints:
            h.heatmap("hm_hp", self.num_joints, False, "joint heatmap per joint type")
            h.add("hp_offset", 2, "regression", "weighted l1 at hp_ind",
                  ("hp_offset", "hp_offset_mask"), "sub-pixel joint offset, read at hp_ind")
        if self.ddd:
            h.add("dep", 1, "regression", "weighted l1 at ind of 1 / (sigmoid + 1e-6) - 1",
                  ("dep", "dep_mask"), "depth through 1 / (sigmoid + 1e-6) - 1")
            h.add("rot", 8, "regression", "bin cross-entropy + residual smooth-l1 at ind",
                  ("rotbin", "rotres", "rot_mask"), "two angle bins: 2 logits, sin, cos each")
            h.add("dim", 3, "regression", "weighted l1 at ind", ("dim", "dim_mask"),
                  "3D height, width, length")
            h.add("amodel_offset", 2, "regression", "weighted l1 at ind",
                  ("amodel_offset", "amodel_offset_mask"), "projected 3D centre offset")
        if self.nuscenes_att:
            h.add("nuscenes_att", 8, "regression", "bce with logits at ind",
                  ("nuscenes_att", "nuscenes_att_mask"), "nuScenes attributes, logits")
        if self.velocity:
            h.add("velocity", 3, "regression", "weighted l1 at ind",
                  ("velocity", "velocity_mask"), "velocity")
        return h.out


# --- the draws -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackParams:
    """Everything one tracking sample draws; given the two images, it fixes the sample.

    ``current``: the current frame's :class:`~centertargets.augment.AugmentParams`
    (centre in the flipped image's pixels, as CenterTrack passes it; scale
    ``max(W, H) * aug_s``; rotation; flip; colour).  ``aug_s``: the scale draw
    alone (``dep = depth * aug_s``).  ``pre_image_id``: the previous frame.
    ``pre``: its own transform (centre, scale, the *current* rotation and flip,
    its own colour), or None when it shares the current one (``same_aug_pre``;
    then ``pre_color`` is its colour).  ``disturb``: float64 (P, 6), per
    previous-frame annotation in file order: the two ``hm_disturb`` normals,
    the lost draw, the false-positive draw and its two normals (rows of
    :data:`NO_DISTURB` disturb nothing).
    """

    current: AugmentParams
    pre_image_id: int
    aug_s: float = 1.0
    pre: AugmentParams | None = None
    pre_color: ColorParams | None = None
    disturb: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))

    def __post_init__(self) -> None:
        if not isinstance(self.current, AugmentParams):
            raise ValueError(f"TrackParams.current={self.current!r}: expected AugmentParams")
        if self.pre is not None and not isinstance(self.pre, AugmentParams):
            raise ValueError(f"TrackParams.pre={self.pre!r}: expected AugmentParams or None")
        d = np.array(self.disturb, np.float64).reshape(-1, 6) \
            if np.size(self.disturb) else np.zeros((0, 6))
        check_disturb("TrackParams.disturb", d)
        d.flags.writeable = False
        object.__setattr__(self, "disturb", d)
        object.__setattr__(self, "pre_image_id", int(self.pre_image_id))
        if not (math.isfinite(self.aug_s) and self.aug_s > 0):
            raise ValueError(f"TrackParams.aug_s={self.aug_s!r}: expected a number > 0")
        object.__setattr__(self, "aug_s", float(self.aug_s))

    @property
    def pre_params(self) -> AugmentParams:
        """The previous frame's transform (the current one under ``same_aug_pre``)."""
        if self.pre is not None:
            return self.pre
        c = self.current
        return AugmentParams(c.center, c.scale, c.rot, c.flipped, self.pre_color)

    def disturb_rows(self, n: int) -> np.ndarray:
        """``disturb`` for ``n`` previous objects (missing rows: :data:`NO_DISTURB`)."""
        d = np.empty((n, 6))
        d[:] = NO_DISTURB
        k = min(n, len(self.disturb))
        d[:k] = self.disturb[:k]
        return d


def check_disturb(name: str, d: np.ndarray) -> None:
    """Previous-object draws (P, 6) as :class:`TrackParams` holds them, or a ValueError."""
    normal, uniform = d[:, [0, 1, 4, 5]], d[:, [2, 3]]
    if not (np.isfinite(d).all() and (np.abs(normal) <= 1e3).all()
            and ((uniform >= 0) & (uniform <= 1)).all()):
        raise ValueError(f"{name}: expected rows of (normal, normal, uniform, uniform, normal, "
                         "normal) draws: normals within +-1e3, uniforms in [0, 1]")


def sample_current(augment: Any, rng: np.random.Generator, width: int, height: int
                   ) -> tuple[AugmentParams, float]:
    """CenterTrack's current-frame draws (``_get_aug_param`` and the flip coin):
    ``(params, aug_s)``.  Training: random crop (a scale among 0.6..1.3 and a centre
    away from the borders) or, without ``rand_crop``, a shift/scale jitter; the rotation
    coin; the flip (the centre is not mirrored: CenterTrack flips image and boxes)."""
    c = np.array([width / 2.0, height / 2.0], np.float32)
    s = float(max(width, height))
    color = ColorParams.draw(rng, augment.color_var, augment.lighting_std) \
        if augment.color_on else None
    if not augment.train:
        return AugmentParams((float(c[0]), float(c[1])), s, color=color), 1.0
    aug_s = augment.draw_crop(rng, c, s, s, width, height)
    rot = augment.draw_rotation(rng)
    flipped = bool(rng.random() < augment.flip)
    return AugmentParams((float(c[0]), float(c[1])), s * aug_s, rot, flipped, color), aug_s


def sample_pre_transform(augment: Any, rng: np.random.Generator, current: AugmentParams,
                         shift: float, scale: float) -> AugmentParams:
    """The previous frame's own transform (``_get_aug_param(disturb=True)``): the current
    centre moved by ``clip(N(0, shift), +-2 shift)`` of the current scale per axis (in
    float32, as upstream's array), the scale times ``clip(N(1, scale), 1 +- scale)``; the
    current rotation and flip (upstream draws a rotation here and discards it)."""
    s = current.scale if not isinstance(current.scale, tuple) else current.scale[0]
    c = np.array(current.center, np.float32)
    c[0] += s * np.clip(rng.standard_normal() * shift, -2 * shift, 2 * shift)
    c[1] += s * np.clip(rng.standard_normal() * shift, -2 * shift, 2 * shift)
    f = float(np.clip(rng.standard_normal() * scale + 1, 1 - scale, 1 + scale))
    color = ColorParams.draw(rng, augment.color_var, augment.lighting_std) \
        if augment.color_on else None
    return AugmentParams((float(c[0]), float(c[1])), s * f, current.rot, current.flipped, color)


def sample_disturb(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` rows of previous-object draws: two normals, two uniforms, two normals."""
    d = np.empty((n, 6))
    d[:, 0:2] = rng.standard_normal((n, 2))
    d[:, 2:4] = rng.random((n, 2))
    d[:, 4:6] = rng.standard_normal((n, 2))
    return d


# --- kernels ---------------------------------------------------------------------------------

@jit
def frame_geometry(boxes_xywh, width, flipped, m, corners, out):
    """A frame's boxes through CenterTrack's flip and an affine map, float32 x1, y1, x2, y2.

    The flip is upstream's ``[W - x - 1 - w, y, w, h]`` in float64 on the json values,
    then ``x2 = x + w`` in float64, then float32.  ``corners``: the four corners and
    their hull (the current frame's ``_get_bbox_output``), else the two defining corners
    (the previous frame's ``_get_pre_dets``).  Returns the first non-finite row, or -1.
    """
    bad = -1
    for i in range(boxes_xywh.shape[0]):
        x = boxes_xywh[i, 0]
        w = boxes_xywh[i, 2]
        if flipped:
            x = width - x - 1.0 - w
        x1 = np.float32(x)
        y1 = np.float32(boxes_xywh[i, 1])
        x2 = np.float32(x + w)
        y2 = np.float32(boxes_xywh[i, 1] + boxes_xywh[i, 3])
        b = corner_hull(m, x1, y1, x2, y2) if corners else two_corners(m, x1, y1, x2, y2)
        for c in range(4):
            out[i, c] = b[c]
        for c in range(4):
            if bad < 0 and not math.isfinite(out[i, c]):
                bad = i
    return bad


@jit
def _points(kps, amodel, width, flipped, perm, m, out_kps, out_amodel):
    """Joints (float32, as upstream's ``_flip_anns`` and ``affine_transform``) and amodal
    centres (float64 result, NaN stays NaN) through the flip and the output map."""
    one = np.float32(1.0)
    for i in range(kps.shape[0]):
        for j in range(kps.shape[1]):
            src = perm[j] if flipped else j
            x = np.float32(kps[i, src, 0])
            y = np.float32(kps[i, src, 1])
            if flipped:
                x = np.float32(width) - x - one
            px, py = _apply(m, x, y)
            out_kps[i, j, 0] = np.float32(px)
            out_kps[i, j, 1] = np.float32(py)
            out_kps[i, j, 2] = np.float32(kps[i, src, 2])
    for i in range(amodel.shape[0]):
        ax = amodel[i, 0]
        if math.isnan(ax):
            out_amodel[i, 0] = np.nan
            out_amodel[i, 1] = np.nan
            continue
        if flipped:
            ax = width - ax - 1.0
        px, py = _apply(m, np.float32(ax), np.float32(amodel[i, 1]))
        out_amodel[i, 0] = px
        out_amodel[i, 1] = py


_radius = object_radius


@jit
def _trunc(v):
    """``int(v)`` (toward zero, as ``astype(int32)``) for a disturbed centre, bounded to
    +-2^30 so that absurd draws (a huge ``hm_disturb`` or replayed value) can neither
    overflow nor reach the map; NaN lands far outside it too."""
    if not (v > -1073741824.0):
        return -1073741824
    if v > 1073741824.0:
        return 1073741824
    return int(v)


@jit
def _radius_bound(boxes, width, height, radius_formula, min_overlap, min_radius):
    """A radius no box of ``boxes`` (clipped to the map) exceeds: the radius grows with both
    sides, so the largest height and width bound it."""
    hmax = np.float32(0.0)
    wmax = np.float32(0.0)
    for k in range(boxes.shape[0]):
        x1, y1, x2, y2 = clip_box(boxes, k, width, height)
        hmax = max(hmax, y2 - y1)
        wmax = max(wmax, x2 - x1)
    return _radius(hmax, wmax, radius_formula, min_overlap, min_radius)


@jit
def _sides(out, mask, k, x1, y1, x2, y2, cx, cy):
    """``ltrb``: the box's sides minus the integer centre (float32 - int, in float64)."""
    out[k, 0] = np.float32(np.float64(x1) - cx)
    out[k, 1] = np.float32(np.float64(y1) - cy)
    out[k, 2] = np.float32(np.float64(x2) - cx)
    out[k, 3] = np.float32(np.float64(y2) - cy)
    for c in range(4):
        mask[k, c] = 1.0


@jit
def encode_pre(pre_boxes, pre_classes, pre_crowd, pre_track, disturb, num_classes,
               input_w, input_h, down_ratio, hm_disturb, lost_disturb, fp_disturb, draw_hm,
               radius_formula, min_overlap, min_radius, table32,
               pre_hm, pre_cts, pre_tids, pre_status, pre_fp, draws, stats, m_pre):
    """CenterTrack's ``_get_pre_dets``: the previous frame's centres and ``pre_hm``.

    Parameters
    ----------
    pre_boxes : float32 (P, 4) x1, y1, x2, y2 in input pixels (two corners mapped, not
        clipped).  pre_classes : int64 (P,) cls_id.  pre_crowd : bool (P,).
    pre_track : float64 (P,) track ids (-1 where absent, as upstream).
    disturb : float64 (P, 6), see :class:`TrackParams`.
    input_w, input_h : the input size (boxes are clipped to it).
    pre_hm : float32 (1, input_h, input_w), drawn when ``draw_hm`` (else any stand-in).
    pre_cts : float32 (P, 2), written: the used objects' centres / down_ratio, packed.
    pre_tids : float64 (P,), written: their track ids, packed.
    pre_status : int8 (P,), pre_fp : bool (P,): written per object.
    draws, stats, m_pre : with ``draws`` (R, 8) int32, ``pre_hm`` is recorded there as map
        ``m_pre`` instead (``pre_hm`` then only gives the shape); None: drawn.
    Returns the number of used objects (rows of ``pre_cts``).
    """
    ih = input_h
    iw = input_w
    n = 0
    down = np.float32(down_ratio)
    for k in range(pre_boxes.shape[0]):
        cls = pre_classes[k]
        if cls > num_classes or cls <= -99:
            pre_status[k] = 2
            continue
        if pre_crowd[k]:
            pre_status[k] = 3
            continue
        x1, y1, x2, y2 = clip_box(pre_boxes, k, iw, ih)
        h = y2 - y1
        w = x2 - x1
        if not (h > 0 and w > 0):
            pre_status[k] = 4
            continue
        radius = _radius(h, w, radius_formula, min_overlap, min_radius)
        c0x = (x1 + x2) / np.float32(2.0)
        c0y = (y1 + y2) / np.float32(2.0)
        # NumPy 2: (python float randn * hm_disturb) * float32 w is float32 arithmetic
        ctx = c0x + np.float32(disturb[k, 0] * hm_disturb) * w
        cty = c0y + np.float32(disturb[k, 1] * hm_disturb) * h
        conf = disturb[k, 2] > lost_disturb
        if conf:
            pre_cts[n, 0] = c0x / down
            pre_cts[n, 1] = c0y / down
        else:
            pre_cts[n, 0] = ctx / down
            pre_cts[n, 1] = cty / down
        pre_tids[n] = pre_track[k]
        n += 1
        pre_status[k] = 0 if conf else 1
        if draw_hm and conf:
            put_umich(pre_hm, draws, stats, m_pre, 0, _trunc(ctx), _trunc(cty), radius,
                      patch_for(draws, radius, table32), FAM_UMICH)
        if disturb[k, 3] < fp_disturb and draw_hm:
            pre_fp[k] = True
            if conf:
                fx = c0x + np.float32(disturb[k, 4] * 0.05) * w
                fy = c0y + np.float32(disturb[k, 5] * 0.05) * h
                put_umich(pre_hm, draws, stats, m_pre, 0, _trunc(fx), _trunc(fy), radius,
                          patch_for(draws, radius, table32), FAM_UMICH)
    return n


@jit
def encode_tracking(boxes, classes, crowd, track, kps, alpha, depth, dims, amodel, velocity,
                    att, att_range, aug_s, pre_cts, pre_tids, n_pre,
                    radius_formula, min_overlap, min_radius, table32, max_objs,
                    hm, ind, cat, mask, reg, reg_mask, wh, wh_mask, tracking, tracking_mask,
                    ltrb, ltrb_mask, ltrb_amodal, ltrb_amodal_mask, hps, hps_mask, hm_hp,
                    hm_hp_mask, hp_offset, hp_ind, hp_offset_mask, joint, dep, dep_mask, dim,
                    dim_mask, amodel_offset, amodel_offset_mask, vel, vel_mask, nus, nus_mask,
                    rotbin, rotres, rot_mask, write_wh, write_ltrb, write_ltrb_amodal,
                    write_ddd, write_vel, write_nus, outside_strip, stats, status, draws,
                    m_hm, m_hp):
    """CenterTrack's ``GenericDataset`` targets of the current frame (its loop over ``k``).

    Parameters
    ----------
    boxes : float32 (N, 4) x1, y1, x2, y2 in output pixels (the 4-corner hull, not clipped).
    classes : int64 (N,) cls_id (see :class:`TrackingConfig.cat_ids`).  crowd : bool (N,).
    track : float64 (N,) track ids (NaN: none).  kps : float32 (N, J, 3) output pixels and v.
    alpha, depth : float64 (N,); dims (N, 3); amodel (N, 2) output pixels (float64);
    velocity (N, 3); att (N,): NaN where absent.  att_range : bool (8, 8).
    aug_s : the scale draw.  pre_cts (P, 2) f32, pre_tids (P,) f64, n_pre: previous centres.
    Every target as upstream's shape; heads that are off get empty arrays with their flag off.
    outside_strip : an ignore box wholly outside the map marks its clipped strip (upstream).
    stats : int64 (NSTATS,); status : int8 (N,): written.
    draws, m_hm, m_hp : with ``draws`` (R, 8) int32, ``hm`` and ``hm_hp`` are recorded
        there as maps ``m_hm`` and ``m_hp`` instead (the arrays then only give the shapes).
    """
    C, H, W = hm.shape
    J = hm_hp.shape[0]
    n = boxes.shape[0]
    stats[S_INPUT] = n
    for k in range(n):
        c = classes[k]
        if -C > c > -999:
            status[k] = ST_BAD_CLASS
            stats[S_BAD_CLASS] += 1
    if stats[S_BAD_CLASS] > 0:
        return
    nobj = consider_objects(n, max_objs, stats, status)
    half_pi = 0.5 * np.pi
    for k in range(nobj):
        cls = classes[k]
        if cls > C or cls <= -999:
            status[k] = ST_IGNORED
            stats[S_IGNORED] += 1
            continue
        ax1, ay1, ax2, ay2 = boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3]   # amodal
        x1, y1, x2, y2 = clip_box(boxes, k, W, H)
        if cls <= 0 or crowd[k]:
            status[k] = ST_IGNORED
            stats[S_IGNORED] += 1
            if not outside_strip and (ax2 < 0 or ay2 < 0 or ax1 > W - 1 or ay1 > H - 1):
                continue
            # hm[c, int(y1):int(y2) + 1, int(x1):int(x2) + 1] = max(., 1): every class for 0
            bx0, by0, bx1, by1 = int(x1), int(y1), int(x2) + 1, int(y2) + 1
            max_box(hm, draws, stats, m_hm, -1 if cls == 0 else abs(cls) - 1,
                    bx0, by0, bx1, by1, 1.0)
            if cls <= 1 and J > 0:
                max_box(hm_hp, draws, stats, m_hp, -1, bx0, by0, bx1, by1, 1.0)
            continue
        h = y2 - y1
        w = x2 - x1
        if not (h > 0 and w > 0):
            status[k] = ST_DEGENERATE
            stats[S_DEGENERATE] += 1
            continue
        radius = _radius(h, w, radius_formula, min_overlap, min_radius)
        ctx = (x1 + x2) / np.float32(2.0)
        cty = (y1 + y2) / np.float32(2.0)
        cx = int(ctx)
        cy = int(cty)
        cat[k] = cls - 1
        mask[k] = 1.0
        if write_wh:
            wh[k, 0] = w
            wh[k, 1] = h
            wh_mask[k, 0] = 1.0
            wh_mask[k, 1] = 1.0
        ind[k] = cy * W + cx
        reg[k, 0] = np.float32(np.float64(ctx) - cx)
        reg[k, 1] = np.float32(np.float64(cty) - cy)
        reg_mask[k, 0] = 1.0
        reg_mask[k, 1] = 1.0
        if peak_at(hm, draws, stats, m_hm, cls - 1, cx, cy):
            stats[S_COLLISIONS] += 1
        p32 = patch_for(draws, radius, table32)
        put_umich(hm, draws, stats, m_hm, cls - 1, cx, cy, radius, p32, FAM_UMICH)
        stats[S_ENCODED] += 1
        t = track[k]
        if not math.isnan(t):
            for p in range(n_pre):
                if pre_tids[p] == t:
                    tracking[k, 0] = np.float32(np.float64(pre_cts[p, 0]) - cx)
                    tracking[k, 1] = np.float32(np.float64(pre_cts[p, 1]) - cy)
                    tracking_mask[k, 0] = 1.0
                    tracking_mask[k, 1] = 1.0
                    break
        if write_ltrb:
            _sides(ltrb, ltrb_mask, k, x1, y1, x2, y2, cx, cy)
        if write_ltrb_amodal:
            _sides(ltrb_amodal, ltrb_amodal_mask, k, ax1, ay1, ax2, ay2, cx, cy)
        if write_nus and not math.isnan(att[k]) and att[k] > 0:
            a = int(att[k] - 1)
            nus[k, a] = 1.0
            for c in range(8):
                if att_range[a, c]:
                    nus_mask[k, c] = 1.0
        if write_vel and not math.isnan(velocity[k, 0]):
            for c in range(3):
                vel[k, c] = np.float32(velocity[k, c])
                vel_mask[k, c] = 1.0
        for j in range(J):
            v = kps[k, j, 2]
            px = kps[k, j, 0]
            py = kps[k, j, 1]
            if v > 0:
                stats[S_KPS_LABELLED] += 1
                if px >= 0 and px < W and py >= 0 and py < H:
                    stats[S_KPS_ENCODED] += 1
                    hps[k, 2 * j] = np.float32(np.float64(px) - cx)
                    hps[k, 2 * j + 1] = np.float32(np.float64(py) - cy)
                    hps_mask[k, 2 * j] = 1.0
                    hps_mask[k, 2 * j + 1] = 1.0
                    qx = int(px)
                    qy = int(py)
                    s = k * J + j
                    hp_offset[s, 0] = np.float32(np.float64(px) - qx)
                    hp_offset[s, 1] = np.float32(np.float64(py) - qy)
                    hp_ind[s] = qy * W + qx
                    hp_offset_mask[s, 0] = 1.0
                    hp_offset_mask[s, 1] = 1.0
                    hm_hp_mask[s] = 1.0
                    joint[s] = j
                    put_umich(hm_hp, draws, stats, m_hp, j, qx, qy, radius, p32, FAM_UMICH)
                    if v == 1:
                        set_pixel(hm_hp, draws, stats, m_hp, j, qx, qy, 1.0)
                        hp_offset_mask[s, 0] = 0.0
                        hp_offset_mask[s, 1] = 0.0
                        hm_hp_mask[s] = 0.0
                else:
                    stats[S_KPS_OUTSIDE] += 1
            else:
                max_box(hm_hp, draws, stats, m_hp, j, int(x1), int(y1), int(x2) + 1,
                        int(y2) + 1, 1.0)
        if write_ddd:
            a = alpha[k]
            if not math.isnan(a):
                rot_mask[k] = 1.0
                if a < np.pi / 6. or a > 5 * np.pi / 6.:
                    rotbin[k, 0] = 1
                    rotres[k, 0] = np.float32(a - (-half_pi))
                if a > -np.pi / 6. or a < -5 * np.pi / 6.:
                    rotbin[k, 1] = 1
                    rotres[k, 1] = np.float32(a - half_pi)
            if not math.isnan(depth[k]):
                dep_mask[k, 0] = 1.0
                dep[k, 0] = np.float32(depth[k] * aug_s)
            if not math.isnan(dims[k, 0]):
                for c in range(3):
                    dim_mask[k, c] = 1.0
                    dim[k, c] = np.float32(dims[k, c])
            if not math.isnan(amodel[k, 0]):
                amodel_offset_mask[k, 0] = 1.0
                amodel_offset_mask[k, 1] = 1.0
                amodel_offset[k, 0] = np.float32(amodel[k, 0] - cx)
                amodel_offset[k, 1] = np.float32(amodel[k, 1] - cy)


# --- the encoder -----------------------------------------------------------------------------

_PER_OBJECT = (("crowd", (), np.bool_), ("track", (), np.float64), ("alpha", (), np.float64),
               ("depth", (), np.float64), ("dim", (3,), np.float64),
               ("amodel", (2,), np.float64), ("velocity", (3,), np.float64),
               ("att", (), np.float64))
_PRE = (("pre_boxes", (4,), np.float32), ("pre_classes", (), np.int64),
        ("pre_crowd", (), np.bool_), ("pre_track", (), np.float64),
        ("pre_disturb", (6,), np.float64))


#: encode_tracking's output arguments -> the targets they are.
_KERNEL_TARGETS = {
    "hm": "hm", "ind": "ind", "cat": "cat", "mask": "mask", "reg": "reg", "reg_mask": "reg_mask",
    "wh": "wh", "wh_mask": "wh_mask", "tracking": "tracking", "tracking_mask": "tracking_mask",
    "ltrb": "ltrb", "ltrb_mask": "ltrb_mask", "ltrb_amodal": "ltrb_amodal",
    "ltrb_amodal_mask": "ltrb_amodal_mask", "hps": "hps", "hps_mask": "hps_mask",
    "hm_hp": "hm_hp", "hm_hp_mask": "hm_hp_mask", "hp_offset": "hp_offset", "hp_ind": "hp_ind",
    "hp_offset_mask": "hp_offset_mask", "joint": "joint", "dep": "dep", "dep_mask": "dep_mask",
    "dim": "dim", "dim_mask": "dim_mask", "amodel_offset": "amodel_offset",
    "amodel_offset_mask": "amodel_offset_mask", "vel": "velocity", "vel_mask": "velocity_mask",
    "nus": "nuscenes_att", "nus_mask": "nuscenes_att_mask", "rotbin": "rotbin",
    "rotres": "rotres", "rot_mask": "rot_mask"}


class TrackingEncoder(Encoder):
    """CenterTrack's targets for one sample: the current frame's objects and the previous
    frame's, already mapped by the sample's transforms.

    >>> enc = TrackingEncoder(TrackingConfig(num_classes=1))
    >>> t = enc.encode(boxes, classes, track_ids=ids, pre_boxes=pre, pre_classes=pc,
    ...                pre_track_ids=pids)

    Current frame (:class:`Annotations`): ``boxes`` float32 (N, 4) in output
    pixels (not clipped), ``classes`` the cls_ids (1..C; ignore and skip codes,
    see :class:`TrackingConfig`), ``keypoints`` (N, J, 3) in output pixels
    with pose; ``extras``: ``track`` (N,) (NaN: no track id), ``crowd`` (N,),
    3D ``alpha``, ``depth``, ``dim`` (N, 3), ``amodel`` (N, 2, output pixels),
    ``velocity`` (N, 3), ``att`` (N,) (NaN rows: absent), ``aug_s``; the
    previous frame: ``pre_boxes`` (P, 4) in INPUT pixels, ``pre_classes``,
    ``pre_crowd``, ``pre_track`` (-1: none) and ``pre_disturb`` (P, 6).
    Returned: :meth:`TrackingConfig.spec`; :meth:`encode_prepared` also leaves
    the previous frame's results in :attr:`last_pre` (``pre_cts``,
    ``pre_track_ids``, ``pre_status``, ``pre_fp``).
    """

    config: TrackingConfig
    _config_type = TrackingConfig

    def __init__(self, config: TrackingConfig) -> None:
        super().__init__(config)
        att = np.zeros((8, 8), np.bool_)
        for a, cols in NUSCENES_ATT_RANGE.items():
            att[a, list(cols)] = True
        self._att = att
        self.last_pre: dict[str, np.ndarray] = {}
        h, cfg = self._heat, config
        # encode_tracking's arguments that only depend on the config: the heatmap, the flags,
        # and empty stand-ins (one dtype and ndim each) for the targets of heads that are off
        f2 = np.zeros((0, 2), np.float32)
        off = {"hm_hp": np.zeros((0, 1, 1), np.float32), "hm_hp_mask": np.zeros(0, np.float32),
               "hp_ind": np.zeros(0, np.int64), "joint": np.zeros(0, np.int64),
               "dep": np.zeros((0, 1), np.float32), "dep_mask": np.zeros((0, 1), np.float32),
               "rotbin": np.zeros((0, 2), np.int64), "rot_mask": np.zeros(0, np.float32)}
        spec = config.spec()
        on = [(arg, name) for arg, name in _KERNEL_TARGETS.items() if name in spec]
        self._target_args = tuple(arg for arg, _ in on)
        self._target_getter = lambda t, _get=operator.itemgetter(*(n for _, n in on)): _get(t)
        radius = {"radius_formula": h["radius_formula"], "min_overlap": h["min_overlap"],
                  "min_radius": h["min_radius"]}
        # heatmaps recorded in draws: their shape-only stand-ins, bound like the heads off
        recorded = self._sparse_maps
        m = {name: i for i, name in enumerate(config.sparse_layout().maps)}
        self._encode = bind_kernel(
            encode_tracking, att_range=att, table32=h["table32"], max_objs=cfg.max_objs,
            write_wh=cfg.wh, write_ltrb=cfg.ltrb, write_ltrb_amodal=cfg.ltrb_amodal,
            write_ddd=cfg.ddd, write_vel=cfg.velocity, write_nus=cfg.nuscenes_att,
            outside_strip=cfg.outside_ignore == "strip", m_hm=m["hm"],
            m_hp=m.get("hm_hp", -1), **radius,
            **{arg: recorded.get(name, off.get(name, f2))
               for arg, name in _KERNEL_TARGETS.items() if name not in spec})
        iw, ih = cfg.input_size
        self._encode_pre = bind_kernel(
            encode_pre, num_classes=cfg.num_classes, input_w=iw, input_h=ih,
            down_ratio=cfg.down_ratio, hm_disturb=cfg.hm_disturb,
            lost_disturb=cfg.lost_disturb, fp_disturb=cfg.fp_disturb,
            draw_hm=cfg.pre_hm, m_pre=m.get("pre_hm", -1), **radius)
        self._no_pre_hm = recorded.get("pre_hm", np.zeros((1, 0, 0), np.float32))

    def encode(self, boxes: Any, classes: Any, *, track_ids: Any = None, pre_boxes: Any = None,
               pre_classes: Any = None, pre_track_ids: Any = None, keypoints: Any = None,
               out: dict[str, np.ndarray] | None = None, **extras: Any
               ) -> dict[str, np.ndarray]:
        """Targets from arrays: current ``boxes`` (N, 4) output pixels, ``classes`` cls_ids
        (1..C), ``track_ids`` (N,); previous ``pre_boxes`` (P, 4) INPUT pixels,
        ``pre_classes``, ``pre_track_ids``; other extras by name (see the class)."""
        ex = dict(extras)
        if track_ids is not None:
            ex["track"] = track_ids
        if pre_boxes is not None:
            ex["pre_boxes"] = pre_boxes
        if pre_classes is not None:
            ex["pre_classes"] = pre_classes
        if pre_track_ids is not None:
            ex["pre_track"] = pre_track_ids
        return self.encode_annotations(Annotations(boxes, classes, keypoints, extras=ex),
                                       out=out)[0]

    def _checked(self, annotations: Annotations) -> Annotations:
        a = annotations
        b = kernel_array(as_numeric(a.boxes if a.boxes is not None else np.zeros((0, 4)),
                                    "boxes").reshape(-1, 4), np.float32)
        n = len(b)
        if not np.isfinite(b).all():
            raise ValueError("boxes: expected finite coordinates")
        c = as_numeric(a.classes if a.classes is not None else np.ones(n), "classes")
        if c.shape != (n,) or not np.all(np.isfinite(c)) or np.any(c != np.round(c)):
            raise ValueError(f"classes has shape {c.shape}: expected ({n},) integer cls_ids "
                             "(1..C; 0 / -c ignore, > C / <= -999 skipped)")
        J = self.config.num_joints
        k = np.zeros((n, J, 3), np.float32) if a.keypoints is None else \
            kernel_array(as_numeric(a.keypoints, "keypoints"), np.float32)
        if k.shape != (n, J, 3) or not np.isfinite(k).all():
            raise ValueError(f"keypoints has shape {k.shape}: expected ({n}, {J}, 3) finite "
                             "x, y, v in output pixels")
        ex = dict(a.extras)
        pre_n = len(np.asarray(ex.get("pre_boxes", np.zeros((0, 4)))).reshape(-1, 4))
        defaults = {"crowd": False, "track": np.nan, "alpha": np.nan, "depth": np.nan,
                    "dim": np.nan, "amodel": np.nan, "velocity": np.nan, "att": np.nan,
                    "pre_classes": 1, "pre_crowd": False, "pre_track": -1.0,
                    "pre_disturb": NO_DISTURB}
        for group, count in ((_PER_OBJECT, n), (_PRE, pre_n)):
            for name, shape, dtype in group:
                v = ex.get(name)
                if v is None:
                    if name == "pre_boxes":
                        v = np.zeros((0, 4))
                    else:
                        v = np.broadcast_to(np.asarray(defaults[name], dtype),
                                            (count,) + shape)
                arr = kernel_array(as_numeric(v, name), dtype)
                if arr.shape != (count,) + shape:
                    raise ValueError(f"{name} has shape {arr.shape}: expected "
                                     f"{(count,) + shape}")
                if name in ("pre_boxes", "pre_track") and \
                        not np.isfinite(arr.astype(np.float64)).all():
                    raise ValueError(f"{name}: expected finite numbers")
                if name == "pre_disturb":
                    check_disturb(name, arr)
                if arr.dtype == np.float64 and np.isinf(arr).any():
                    raise ValueError(f"{name} holds an infinite value: expected finite numbers "
                                     "(NaN: absent)")
                ex[name] = arr
        aug_s = ex.get("aug_s", 1.0)
        if not (isinstance(aug_s, (int, float)) and math.isfinite(aug_s) and aug_s > 0):
            raise ValueError(f"aug_s={aug_s!r}: expected the scale draw, a number > 0")
        ex["aug_s"] = float(aug_s)
        return Annotations(b, kernel_array(c, np.int64), k, extras=ex)

    def _run(self, a: Annotations, t: dict[str, np.ndarray], stats: np.ndarray,
             status: np.ndarray) -> None:
        cfg = self.config
        h = self._heat
        ex = a.extras
        P = len(ex["pre_boxes"])
        draws = t.get("draws")
        if draws is not None and cfg.pre_hm and P > cfg.max_pre_objs:
            raise ValueError(f"{P} previous-frame objects (pre_boxes): expected at most "
                             f"max_pre_objs={cfg.max_pre_objs} with heatmaps='sparse', which "
                             "sizes the draw list by it (raise max_pre_objs)")
        pre_cts = np.empty((P, 2), np.float32)
        pre_tids = np.empty(P, np.float64)
        pre_status = np.empty(P, np.int8)
        pre_fp = np.zeros(P, np.bool_)
        pre_hm = t.get("pre_hm")
        table32 = h["table32"]
        if pre_hm is not None and P:        # input-resolution radii: a table that covers them
            iw, ih = cfg.input_size
            table32 = patch_table32_covering(_radius_bound(
                ex["pre_boxes"], iw, ih, h["radius_formula"], h["min_overlap"],
                h["min_radius"]))
        n_pre = self._encode_pre(
            pre_boxes=ex["pre_boxes"], pre_classes=ex["pre_classes"], pre_crowd=ex["pre_crowd"],
            pre_track=ex["pre_track"], disturb=ex["pre_disturb"], table32=table32,
            pre_hm=self._no_pre_hm if pre_hm is None else pre_hm, pre_cts=pre_cts,
            pre_tids=pre_tids, pre_status=pre_status, pre_fp=pre_fp, draws=draws, stats=stats)
        self.last_pre = {"pre_cts": pre_cts[:n_pre], "pre_track_ids": pre_tids[:n_pre],
                         "pre_status": pre_status, "pre_fp": pre_fp}
        kps = a.keypoints if a.keypoints is not None else \
            np.zeros((len(a.boxes), cfg.num_joints, 3), np.float32)
        self._encode(
            **dict(zip(self._target_args, self._target_getter(t))), boxes=a.boxes,
            classes=a.classes, crowd=ex["crowd"], track=ex["track"], kps=kps,
            alpha=ex["alpha"], depth=ex["depth"], dims=ex["dim"], amodel=ex["amodel"],
            velocity=ex["velocity"], att=ex["att"], aug_s=float(ex["aug_s"]),
            pre_cts=pre_cts, pre_tids=pre_tids, n_pre=n_pre, stats=stats, status=status,
            draws=draws)

    @staticmethod
    def _write_cat(t: dict[str, np.ndarray], classes: np.ndarray, status: np.ndarray) -> None:
        return                          # the kernel writes cat (cls_id - 1) itself


# --- the unit --------------------------------------------------------------------------------

def _velocity(v: Any) -> np.ndarray:
    """A velocity as upstream reads it: the first 3 numbers, absent (NaN) when any value is
    <= -1000 (``min(velocity) > -1000``; flipped samples have it as -10000)."""
    a = np.asarray(v, np.float64).reshape(-1)
    if a.size < 3:
        raise ValueError("fewer than 3 numbers")
    return a[:3] if a.min() > -1000 else np.full(3, np.nan)


class TrackingUnit(TaskUnit):
    name = "tracking"
    config_type = TrackingConfig
    encoder_type = TrackingEncoder
    loss = "centertargets.losses.tracking:GenericLoss"
    decoder = "centertargets.losses.tracking:TrackingDecoder"
    specificity = 5                  # the default for a file with videos
    video = True
    dataset = "centertargets.tracking:TrackingDataset"
    fixture_check = "centertargets.compat.centertrack:fixture_steps"

    #: Optional per-annotation fields: name, shape, what, parse.
    FIELDS = (("track_id", (), "an integer track id", None),
              ("alpha", (), "the observation angle alpha, one number", None),
              ("depth", (), "the depth in metres, one number", None),
              ("dim", (3,), "3 numbers: height, width, length in metres", None),
              ("amodel_center", (2,), "the projected 3D centre (x, y) in image pixels", None),
              ("velocity", (3,), "at least 3 numbers", _velocity),
              ("attributes", (), "a nuScenes attribute (an integer, 0: none)", None))

    def fits(self, coco: "CocoDataset") -> bool:
        return coco.videos is not None

    def dataset_audit(self, ds: Any) -> dict[str, Any]:
        return ds.video_audit()

    def audit_rows(self, totals: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
        rows = [("  ignore, crowd, skipped", totals.get("ignored", 0), "objects")]
        if "videos" in totals:
            rows += [("videos", totals["videos"], ""),
                     ("  previous candidates (mean)", totals["mean_previous_candidates"], ""),
                     ("  frames without previous", totals["frames_without_previous"], ""),
                     ("  unmatched in frame before", totals["objects_unmatched_in_previous"],
                      "objects")]
        return rows

    def render(self, item: Mapping[str, Any], config: Any, coco: "CocoDataset",
               annotations: Annotations | None = None) -> np.ndarray:
        from ..visualize import render_tracking
        return render_tracking(dict(item), config, scale=2)

    def config_for_coco(self, coco: "CocoDataset", output_size: tuple[int, int],
                        max_objs: int | None = None) -> TrackingConfig:
        J = coco.num_joints if coco.keypoint_names or coco.num_joints else 0
        return TrackingConfig(output_size=output_size, max_objs=max_objs or 128,
                              num_classes=max(coco.num_classes, 1), num_joints=J,
                              flip_idx=coco.flip_idx if J else ())

    def adapt(self, config: Any, coco: "CocoDataset") -> TrackingConfig:
        for name, shape, what, parse in self.FIELDS:
            coco.dense_field(name, shape, what, optional=True, parse=parse)
        if config.cat_ids is None:
            return super().adapt(config, coco)
        mapped = {a for a, _ in config.cat_ids}
        missing = [c for c in coco.category_ids if c not in mapped]
        if missing:
            raise ValueError(f"the COCO file's categories {missing} are not in config.cat_ids: "
                             "expected a cls_id for every category id")
        if config.num_joints and coco.num_joints != config.num_joints:
            raise ValueError(f"the COCO file has {coco.num_joints} joints per annotation: "
                             f"expected config.num_joints={config.num_joints}")
        return config

    def cls_ids(self, image: "ImageAnnotations", config: TrackingConfig) -> np.ndarray:
        """The annotations' upstream cls_ids (``cat_ids``, else class index + 1)."""
        if config.cat_ids is None:
            return np.asarray(image.classes, np.int64) + 1
        keys = np.array([a for a, _ in config.cat_ids], np.int64)
        vals = np.array([b for _, b in config.cat_ids], np.int64)
        order = np.argsort(keys)
        pos = np.searchsorted(keys[order], image.category_ids)
        return vals[order][np.minimum(pos, len(keys) - 1)]

    def prepared(self, image: "ImageAnnotations", params: Any, output_size: tuple[int, int],
                 config: Any, previous: "ImageAnnotations | None" = None,
                 width: int | None = None) -> Annotations:
        """Both frames through the sample's transforms (``params``: :class:`TrackParams`; an
        :class:`AugmentParams` is a static image: the previous frame is this one under the
        same transform, undisturbed).  ``width``: the current frame's width (the flip)."""
        if isinstance(params, AugmentParams):
            params = TrackParams(params, image.image_id)
        if previous is None:
            previous = image
        W = float(image.width if width is None else width)
        cur = params.current
        m_out = cur.matrix(output_size)
        n = len(image.boxes_xywh)
        boxes = np.empty((n, 4), np.float32)
        bad = frame_geometry(np.ascontiguousarray(image.boxes_xywh), W, cur.flipped, m_out,
                             True, boxes)
        pre = params.pre_params
        iw, ih = output_size[0] * config.down_ratio, output_size[1] * config.down_ratio
        m_pre = pre.matrix((iw, ih))
        P = len(previous.boxes_xywh)
        pre_boxes = np.empty((P, 4), np.float32)
        bad_pre = frame_geometry(np.ascontiguousarray(previous.boxes_xywh), W, cur.flipped,
                                 m_pre, config.pre_box_corners == "four", pre_boxes)
        if bad >= 0 or bad_pre >= 0:
            which, img, i = ("current", image, bad) if bad >= 0 else ("previous", previous,
                                                                      bad_pre)
            raise ValueError(f"image id={img.image_id}: annotation id={int(img.ann_ids[i])} "
                             f"maps to non-finite coordinates under {params}")
        f = image.fields
        J = config.num_joints
        kps = np.zeros((n, J, 3), np.float32)
        amodel = np.full((n, 2), np.nan)
        if J or config.ddd:
            from ..geometry import flip_permutation
            src = image.keypoints if J and image.keypoints is not None else np.zeros((n, J, 3))
            _points(np.ascontiguousarray(src, np.float64),
                    np.ascontiguousarray(f["amodel_center"]) if config.ddd else amodel,
                    W, cur.flipped, flip_permutation(J, config.flip_idx), m_out, kps, amodel)
        alpha = f["alpha"]
        if cur.flipped and config.ddd:
            alpha = np.where(alpha > 0, np.pi - alpha, -np.pi - alpha)
        velocity = f["velocity"]
        if cur.flipped and config.flip_velocity == "drop":    # upstream: -10000, absent
            velocity = np.full_like(velocity, np.nan)
        elif cur.flipped:
            velocity = velocity * np.array([-1.0, 1.0, 1.0])
        ptrack = previous.fields["track_id"]
        return Annotations(boxes, self.cls_ids(image, config), kps, extras={
            "crowd": np.ascontiguousarray(image.iscrowd), "track": f["track_id"],
            "alpha": np.ascontiguousarray(alpha), "depth": f["depth"], "dim": f["dim"],
            "amodel": amodel, "velocity": np.ascontiguousarray(velocity),
            "att": f["attributes"], "aug_s": params.aug_s,
            "pre_boxes": pre_boxes, "pre_classes": self.cls_ids(previous, config),
            "pre_crowd": np.ascontiguousarray(previous.iscrowd),
            "pre_track": np.where(np.isnan(ptrack), -1.0, ptrack),
            "pre_disturb": params.disturb_rows(P)})

    def fixture_classes(self, meta: Mapping[str, Any]) -> tuple[list[dict[str, Any]],
                                                               list[int] | None]:
        ids = sorted(int(a) for a, _ in meta["dataset"]["cat_ids"])
        return [{"id": c, "name": str(c)} for c in ids], ids


register(TrackingUnit())
