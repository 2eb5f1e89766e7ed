"""The ``ddd`` task: monocular 3D detection on KITTI (upstream CenterNet's ``DddDataset``).

Each COCO annotation carries its 2D ``bbox`` and the object's ``alpha`` (the
observation angle), ``depth`` (metres), ``dim`` (height, width, length) and,
for evaluation, ``location`` and ``rotation_y``; each image may carry its
camera's 3x4 ``calib`` (else the dataset's, :data:`KITTI_CALIB`).  Targets:
the centre heatmap ``hm``; at each centre (``ind``) the depth ``dep``, the
dimensions ``dim``, the orientation as two overlapping angle bins
(``rotbin`` which bins hold it, ``rotres`` the angle relative to each bin's
centre), the 2D size ``wh`` and offset ``reg``; ``reg_mask`` and ``rot_mask``.

Categories map to classes through ``category_map`` (KITTI's:
:data:`KITTI_CATEGORY_MAP`).  Negative classes mark ignore regions, drawn into
``hm`` but never positives: ``-1`` every class, ``-2 - c`` class ``c``: the
Gaussian with 0.9999 at its centre (``rect_mask``: the whole box at 0.9999);
``-99`` and below are skipped.  Upstream's own augmentation (``aug_ddd``)
shifts and scales the image (no flip, no rotation, no colour); then every
``reg_mask`` is 0 while ``rot_mask`` stays 1.  Loss:
:class:`losses.ddd.DddLoss`; decoder: :class:`losses.ddd.DddDecoder`, and
:func:`losses.ddd.ddd_post_process` for 3D boxes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

import numpy as np

from ..augment import AugmentParams, annotations_to_output
from ..config import BaseConfig, check_bool, check_choice, fail
from ..encoders import Annotations, Encoder, call_kernel, check_boxes, kernel_array
from ..kernels._jit import jit
from ..kernels.encode import (ST_BAD_CLASS, ST_DEGENERATE, ST_ENCODED, ST_IGNORED, S_BAD_CLASS,
                              S_COLLISIONS, S_DEGENERATE, S_ENCODED, S_IGNORED, S_INPUT,
                              clip_box, consider_objects)
from ..kernels.canvas import (FAM_UMICH, patch_for, peak_at, put_msra_sigma, put_umich,
                              set_box, set_pixel)
from ..kernels.gaussian import gaussian_radius
from ..spec import F32, I64, U8, Heads, HeadSpec, SparseLayout, Targets, TargetSpec
from .base import TaskUnit, register

if TYPE_CHECKING:  # pragma: no cover
    from ..coco import CocoDataset, ImageAnnotations

__all__ = ["DddConfig", "DddEncoder", "encode_ddd", "KITTI_CATEGORY_MAP", "KITTI_CALIB",
           "KITTI_MEAN", "KITTI_STD", "alpha_to_8"]

#: KITTI's COCO categories (upstream's ``cat_ids``): Pedestrian, Car, Cyclist are classes
#: 0-2; Van and Truck (4, 5) ignore class 2... as upstream maps them; 7, 8 are skipped;
#: DontCare (9) ignores every class.
KITTI_CATEGORY_MAP = ((1, 0), (2, 1), (3, 2), (4, -3), (5, -3), (6, -2), (7, -99), (8, -99),
                      (9, -1))
#: The camera of images without their own ``calib`` (upstream's ``self.calib``).
KITTI_CALIB = ((707.0493, 0, 604.0814, 45.75831), (0, 707.0493, 180.5066, -0.3454157),
               (0, 0, 1.0, 0.004981016))
#: Upstream's KITTI normalisation: ImageNet's RGB numbers, applied to the BGR image as they are.
KITTI_MEAN = (0.485, 0.456, 0.406)
KITTI_STD = (0.229, 0.224, 0.225)

_DOCS = {
    "dep": "depth (metres) of object k, read at ind",
    "dim": "3D height, width, length (metres) of object k",
    "rotbin": "which of the two orientation bins hold alpha (1/0 each)",
    "rotres": "alpha relative to each bin's centre (-pi/2, +pi/2), where the bin holds it",
    "rot_mask": "1 where slot k's orientation, size and offset are supervised (also when "
                "augmented)",
    "reg_mask": "1 where slot k's depth and dimensions are supervised (0 when augmented)",
}


def alpha_to_8(alpha: float) -> list[float]:
    """Upstream's ``_alpha_to_8``: ``[0, bin1, sin1, cos1, 0, bin2, sin2, cos2]`` of an angle."""
    ret = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    if alpha < np.pi / 6. or alpha > 5 * np.pi / 6.:
        r = alpha - (-0.5 * np.pi)
        ret[1], ret[2], ret[3] = 1, np.sin(r), np.cos(r)
    if alpha > -np.pi / 6. or alpha < -5 * np.pi / 6.:
        r = alpha - (0.5 * np.pi)
        ret[5], ret[6], ret[7] = 1, np.sin(r), np.cos(r)
    return ret


@dataclass(frozen=True)
class DddConfig(BaseConfig):
    """Everything that shapes upstream's ``ddd`` targets.

    Parameters
    ----------
    output_size : (width, height) of the output map (KITTI: 1280x384 input, (320, 96)).
    num_classes : C (KITTI: 3).  max_objs : M (upstream: 50).
    reg_offset : produce ``reg``.  reg_bbox : produce ``wh`` (upstream's ``--reg_bbox``).
    category_map : ``((category_id, class), ...)``; classes in [0, C), or -1 / -2 - c
        (ignore regions) or <= -99 (skipped).  None: the file's categories in order.
    rect_mask : draw ignore regions as their whole box at 0.9999.
    heatmap : ``"umich"`` or ``"msra"`` (``--mse_loss``; sigma = the radius).
    zero_sigma : with ``"msra"``, an object of radius 0: ``"peak"`` (1.0) or ``"nan"``
        (upstream's 0/0).
    scale_to_input : upstream's ``--keep_res`` for ddd: the scale is the input size
        instead of the image's.
    aug_ddd : probability of upstream's shift/scale augmentation in training (0.5).
    alpha_in_degree : annotations give alpha in degrees (converted as upstream does).
    with_gt_det : add ``gt_det`` (n, 18) float32, upstream's validation ``meta['gt_det']``
        (variable length: batch with a collate that keeps lists).
    msra_center : with ``"msra"``, ``"upstream"`` centres each Gaussian on ``int(c + 0.5)``
        while ``ind`` is ``int(c)`` (the peak is a pixel off when the fraction is >= 0.5);
        ``"ind"`` centres it on ``ind``.
    ignore_regions : ``"upstream"`` sets an ignore region's centre (or box) to 0.9999 even
        over a real object's 1.0 peak; ``"keep_positives"`` leaves 1.0 peaks alone.
    """

    output_size: tuple[int, int] = (320, 96)
    max_objs: int = 50
    num_classes: int = 3
    reg_bbox: bool = True
    category_map: tuple[tuple[int, int], ...] | None = KITTI_CATEGORY_MAP
    rect_mask: bool = False
    zero_sigma: Literal["peak", "nan"] = "peak"
    scale_to_input: bool = False
    aug_ddd: float = 0.5
    alpha_in_degree: bool = False
    with_gt_det: bool = False
    msra_center: Literal["upstream", "ind"] = "upstream"
    ignore_regions: Literal["upstream", "keep_positives"] = "upstream"

    task: ClassVar[str] = "ddd"
    _describe_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self._validate_common()
        owner = "DddConfig"
        for name in ("reg_bbox", "rect_mask", "scale_to_input", "alpha_in_degree",
                     "with_gt_det"):
            check_bool(owner, name, getattr(self, name))
        check_choice(owner, "zero_sigma", self.zero_sigma, ("peak", "nan"))
        check_choice(owner, "msra_center", self.msra_center, ("upstream", "ind"))
        check_choice(owner, "ignore_regions", self.ignore_regions, ("upstream", "keep_positives"))
        if self.heatmap in ("elliptic", "mmdet"):
            fail(owner, "heatmap", self.heatmap, "'umich' or 'msra'")
        if not (isinstance(self.aug_ddd, (int, float)) and 0 <= self.aug_ddd <= 1):
            fail(owner, "aug_ddd", self.aug_ddd, "a probability in [0, 1]")
        if self.category_map is not None:
            try:
                pairs = tuple((int(a), int(b)) for a, b in self.category_map)
            except (TypeError, ValueError):
                fail(owner, "category_map", self.category_map, "(category_id, class) pairs")
            C = self.num_classes
            for cid, cls in pairs:
                if not (0 <= cls < C or cls == -1 or -2 - (C - 1) <= cls <= -2 or cls <= -99):
                    fail(owner, "category_map", self.category_map,
                         f"classes in [0, {C}), -1 (ignore all), -2 - c (ignore class c) or "
                         f"<= -99 (skip): category {cid} maps to {cls}")
            if len({a for a, _ in pairs}) != len(pairs):
                fail(owner, "category_map", self.category_map, "distinct category ids")
            object.__setattr__(self, "category_map", pairs)

    def spec(self) -> dict[str, TargetSpec]:
        """``hm (C,H,W) f32, dep (M,1) f32, dim (M,3) f32, ind (M,) i64, rotbin (M,2) i64,
        rotres (M,2) f32, reg_mask, rot_mask (M,) u8``, ``wh (M,2)`` with ``reg_bbox``,
        ``reg (M,2)`` with ``reg_offset`` (``gt_det`` is extra, see ``with_gt_det``)."""
        W, H = self.output_size
        C, M = self.num_classes, self.max_objs
        t = Targets()
        t.add("hm", (C, H, W), F32)
        t.add("dep", (M, 1), F32, _DOCS["dep"])
        t.add("dim", (M, 3), F32, _DOCS["dim"])
        t.add("ind", (M,), I64)
        t.add("rotbin", (M, 2), I64, _DOCS["rotbin"])
        t.add("rotres", (M, 2), F32, _DOCS["rotres"])
        t.add("reg_mask", (M,), U8, _DOCS["reg_mask"])
        t.add("rot_mask", (M,), U8, _DOCS["rot_mask"])
        if self.with_cat:
            t.add("cat", (M,), I64)
        if self.reg_bbox:
            t.add("wh", (M, 2), F32)
        if self.reg_offset:
            t.add("reg", (M, 2), F32)
        return self.sparse_spec(t.out)

    def sparse_layout(self) -> SparseLayout:
        """``hm``: per object a Gaussian, and for an ignore region of every class a Gaussian
        and a 0.9999 centre per channel; dense with ``rect_mask`` and ``ignore_regions=
        "keep_positives"`` (which reads the map pixel by pixel)."""
        if self.rect_mask and self.ignore_regions == "keep_positives":
            return SparseLayout((), 0, "rect_mask=True with ignore_regions='keep_positives' "
                                "reads hm over each ignore box")
        return SparseLayout(("hm",), self.max_objs * 2 * self.num_classes)

    def head_spec(self) -> dict[str, HeadSpec]:
        """``hm`` (C), ``dep`` (1), ``rot`` (8), ``dim`` (3), ``wh`` (2), ``reg`` (2)."""
        h = Heads(self.output_size)
        loss = "mse of the sigmoid" if self.heatmap == "msra" else "focal"
        h.add("hm", self.num_classes, "heatmap", loss, ("hm",), "centre heatmap per class, logits")
        h.add("dep", 1, "regression", "l1 at ind (mean over every element)", ("dep", "reg_mask"),
              "depth through 1 / (sigmoid + 1e-6) - 1, read at ind")
        h.add("rot", 8, "regression", "bin cross-entropy + residual smooth-l1 at ind",
              ("rotbin", "rotres", "rot_mask"), "two angle bins: 2 logits, sin, cos each")
        h.add("dim", 3, "regression", "l1 at ind (mean over every element)", ("dim", "reg_mask"),
              "3D height, width, length, read at ind")
        if self.reg_bbox:
            h.add("wh", 2, "regression", "l1 at ind (mean over every element)",
                  ("wh", "rot_mask"), "2D box size, read at ind")
        if self.reg_offset:
            h.add("reg", 2, "regression", "l1 at ind (mean over every element)",
                  ("reg", "rot_mask"), "sub-pixel centre offset, read at ind")
        return h.out


@jit
def encode_ddd(boxes, classes, alpha, depth, dims,
               msra, zero_sigma_nan, radius_formula, min_overlap, min_radius, table32,
               augmented, rect_mask, msra_at_ind, keep_positives,
               hm, wh, reg, dep, dim, ind, rotbin, rotres, reg_mask,
               rot_mask, write_wh, write_reg, max_objs, centers, draws, stats, status):
    """Upstream's ``DddDataset`` targets for one sample.

    Called through :func:`centertargets.encoders.call_kernel` with every argument named.

    Parameters
    ----------
    boxes : float32 (N, 4) x1, y1, x2, y2 in output pixels (not clipped).
    classes : int64 (N,): a class in [0, C), -1 / -2 - c (ignore regions), <= -99 (skip).
    alpha, depth : float64 (N,); dims : float64 (N, 3).
    msra, zero_sigma_nan, radius_formula, min_overlap, min_radius, table32 : the heatmap.
    augmented : bool, upstream's aug_ddd was drawn (``reg_mask`` stays 0).
    rect_mask : bool, ignore regions as their box at 0.9999.
    msra_at_ind : bool, MSRA Gaussians at ``int(c)`` like ``ind`` (upstream: ``int(c + 0.5)``).
    keep_positives : bool, an ignore region never lowers a 1.0 peak (upstream: it does).
    hm : float32 (C, H, W); wh, reg : float32 (M, 2) when ``write_wh`` / ``write_reg``;
    dep (M, 1), dim (M, 3), rotres (M, 2) float32; ind (M,), rotbin (M, 2) int64;
    reg_mask, rot_mask uint8 (M,): written.
    centers : float32 (N, 4), written: each encoded object's centre and w, h (gt_det).
    draws : int32 (R, 8) or None: ``hm`` recorded (map 0) instead of drawn; ``hm`` is then
        a stand-in of its shape (not with ``rect_mask`` and ``keep_positives`` together).
    stats : int64 (NSTATS,); status : int8 (N,): written (ignore regions and skipped
        objects are ``ST_IGNORED``: they hold no slot).
    """
    C, H, W = hm.shape
    n = boxes.shape[0]
    stats[S_INPUT] = n
    for k in range(n):
        c = classes[k]
        if not (0 <= c < C or c == -1 or (-2 - (C - 1) <= c <= -2) or c <= -99):
            status[k] = ST_BAD_CLASS
            stats[S_BAD_CLASS] += 1
    if stats[S_BAD_CLASS] > 0:
        return
    nobj = consider_objects(n, max_objs, stats, status)
    half_pi = 0.5 * np.pi
    for k in range(nobj):
        cls = classes[k]
        if cls <= -99:
            status[k] = ST_IGNORED
            stats[S_IGNORED] += 1
            continue
        x1, y1, x2, y2 = clip_box(boxes, k, W, H)
        h = y2 - y1
        w = x2 - x1
        if not (h > 0 and w > 0):
            status[k] = ST_DEGENERATE
            stats[S_DEGENERATE] += 1
            continue
        # upstream's gaussian_radius((h, w)) here takes the sides as they are (no ceil)
        radius = max(min_radius, int(gaussian_radius(float(h), float(w), min_overlap,
                                                     radius_formula)))
        ctx = (x1 + x2) / np.float32(2.0)
        cty = (y1 + y2) / np.float32(2.0)
        cx = int(ctx)
        cy = int(cty)
        # MSRA Gaussians centre on int(c + 0.5), umich ones on int(c)
        mx = cx if msra_at_ind else int(ctx + np.float32(0.5))
        my = cy if msra_at_ind else int(cty + np.float32(0.5))
        if cls < 0:                                  # an ignore region: never a positive
            c0 = 0 if cls == -1 else -cls - 2
            c1 = C if cls == -1 else c0 + 1
            for cc in range(c0, c1):
                if rect_mask and keep_positives:     # dense only (sparse_layout)
                    for yy in range(int(y1), int(y2) + 1):
                        for xx in range(int(x1), int(x2) + 1):
                            if not hm[cc, yy, xx] == 1.0:
                                hm[cc, yy, xx] = np.float32(0.9999)
                elif rect_mask:
                    set_box(hm, draws, stats, 0, cc, int(x1), int(y1), int(x2) + 1, int(y2) + 1,
                            0.9999)
                else:
                    if msra:
                        put_msra_sigma(hm, draws, stats, 0, cc, mx, my, radius, zero_sigma_nan)
                    else:
                        put_umich(hm, draws, stats, 0, cc, cx, cy, radius,
                                  patch_for(draws, radius, table32), FAM_UMICH)
                    if not (keep_positives and peak_at(hm, draws, stats, 0, cc, cx, cy)):
                        set_pixel(hm, draws, stats, 0, cc, cx, cy, 0.9999)
            status[k] = ST_IGNORED
            stats[S_IGNORED] += 1
            continue
        if peak_at(hm, draws, stats, 0, cls, cx, cy):
            stats[S_COLLISIONS] += 1
        if msra:
            put_msra_sigma(hm, draws, stats, 0, cls, mx, my, radius, zero_sigma_nan)
        else:
            put_umich(hm, draws, stats, 0, cls, cx, cy, radius, patch_for(draws, radius, table32),
                      FAM_UMICH)
        if write_wh:
            wh[k, 0] = w
            wh[k, 1] = h
        a = alpha[k]
        if a < np.pi / 6. or a > 5 * np.pi / 6.:
            rotbin[k, 0] = 1
            rotres[k, 0] = a - (-half_pi)
        if a > -np.pi / 6. or a < -5 * np.pi / 6.:
            rotbin[k, 1] = 1
            rotres[k, 1] = a - half_pi
        dep[k, 0] = depth[k]
        dim[k, 0] = dims[k, 0]
        dim[k, 1] = dims[k, 1]
        dim[k, 2] = dims[k, 2]
        ind[k] = cy * W + cx
        if write_reg:
            reg[k, 0] = ctx - cx
            reg[k, 1] = cty - cy
        reg_mask[k] = 0 if augmented else 1
        rot_mask[k] = 1
        centers[k, 0] = ctx
        centers[k, 1] = cty
        centers[k, 2] = w
        centers[k, 3] = h
        status[k] = ST_ENCODED
        stats[S_ENCODED] += 1


class DddEncoder(Encoder):
    """Upstream's ``ddd`` targets from 2D boxes (output-map pixels) and 3D annotations.

    >>> enc = DddEncoder(DddConfig())
    >>> t = enc.encode(boxes, classes, alpha=alpha, depth=depth, dim=dim)

    ``classes`` are the mapped classes (ignore codes included, see
    :class:`DddConfig`).  Returned keys: :meth:`DddConfig.spec`, and ``gt_det``
    with ``with_gt_det``.
    """

    config: DddConfig
    _config_type = DddConfig

    def encode(self, boxes: Any, classes: Any, *, alpha: Any, depth: Any, dim: Any,
               augmented: bool = False, out: dict[str, np.ndarray] | None = None
               ) -> dict[str, np.ndarray]:
        """Targets for one sample: ``boxes`` (N, 4), ``classes`` (N,), ``alpha``, ``depth``
        (N,) and ``dim`` (N, 3)."""
        extras = {"alpha": alpha, "depth": depth, "dim": dim, "augmented": augmented}
        return self.encode_annotations(Annotations(boxes, classes, extras=extras), out=out)[0]

    def _checked(self, annotations: Annotations) -> Annotations:
        a = annotations
        b = check_boxes(a.boxes)
        n = len(b)
        c = np.asarray(a.classes if a.classes is not None else np.zeros(n), np.float64)
        if c.shape != (n,) or not np.all(np.isfinite(c)) or np.any(c != np.round(c)):
            raise ValueError(f"classes has shape {c.shape}: expected ({n},) integer classes "
                             "(ignore codes -1, -2 - c, <= -99 allowed)")
        extras = dict(a.extras)
        for name, shape in (("alpha", (n,)), ("depth", (n,)), ("dim", (n, 3))):
            v = np.asarray(extras.get(name, np.zeros(0)), np.float64)
            if v.shape != shape or not np.all(np.isfinite(v)):
                raise ValueError(f"{name} has shape {v.shape}: expected {shape} finite numbers")
            extras[name] = v
        extras["augmented"] = bool(extras.get("augmented", False))
        return Annotations(b, kernel_array(c, np.int64), extras=extras)

    def encode_prepared(self, annotations: Annotations, out: dict[str, np.ndarray] | None = None
                        ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        # each encoded object's centre and size, for gt_det: written by the kernel
        b = annotations
        a = Annotations(b.boxes, b.classes, b.keypoints, b.rotated, {
            **b.extras, "centers": np.zeros((len(b.boxes), 4), np.float32)})
        t, stats, status = super().encode_prepared(a, out)
        if self.config.with_gt_det:
            t["gt_det"] = self._gt_det(a, status)
        return t, stats, status

    def _gt_det(self, a: Annotations, status: np.ndarray) -> np.ndarray:
        """Upstream's validation ``gt_det``: one row per encoded object, in order."""
        rows = []
        for k in np.flatnonzero(status == ST_ENCODED):
            ctx, cty, w, h = (np.float32(v) for v in a.extras["centers"][k])
            row = [ctx, cty, 1] + alpha_to_8(float(a.extras["alpha"][k])) + \
                [float(a.extras["depth"][k])] + [float(v) for v in a.extras["dim"][k]]
            if self.config.reg_bbox:
                row += [w, h]
            rows.append(row + [int(a.classes[k])])
        return np.array(rows, np.float32) if rows else np.zeros((1, 18), np.float32)

    def _run(self, a: Annotations, t: dict[str, np.ndarray], stats: np.ndarray,
             status: np.ndarray) -> None:
        cfg, off = self.config, self._off
        e = a.extras
        call_kernel(encode_ddd, boxes=a.boxes, classes=a.classes, alpha=e["alpha"],
                    depth=e["depth"], dims=e["dim"], msra=cfg.heatmap == "msra",
                    zero_sigma_nan=cfg.zero_sigma == "nan",
                    radius_formula=self._heat["radius_formula"],
                    min_overlap=self._heat["min_overlap"], min_radius=self._heat["min_radius"],
                    table32=self._heat["table32"], augmented=bool(e.get("augmented", False)),
                    rect_mask=cfg.rect_mask, msra_at_ind=cfg.msra_center == "ind",
                    keep_positives=cfg.ignore_regions == "keep_positives", hm=self._map(t, "hm"),
                    wh=t.get("wh", off["f2"]),
                    reg=t.get("reg", off["f2"]), dep=t["dep"], dim=t["dim"], ind=t["ind"],
                    rotbin=t["rotbin"], rotres=t["rotres"], reg_mask=t["reg_mask"],
                    rot_mask=t["rot_mask"], write_wh="wh" in t, write_reg="reg" in t,
                    max_objs=cfg.max_objs, centers=e["centers"], draws=t.get("draws"),
                    stats=stats, status=status)


@functools.lru_cache(maxsize=16)
def _class_lookup(category_map: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array([a for a, _ in category_map], np.int64)
    order = np.argsort(keys)
    return keys[order], np.array([b for _, b in category_map], np.int64)[order]


class DddUnit(TaskUnit):
    name = "ddd"
    config_type = DddConfig
    encoder_type = DddEncoder
    loss = "centertargets.losses.ddd:DddLoss"
    decoder = "centertargets.losses.ddd:DddDecoder"
    decode_kinds = ("ddd_decode",)
    specificity = 3
    center_dtype = "float64"            # upstream's DddDataset keeps c in float64
    mean = KITTI_MEAN
    std = KITTI_STD

    FIELDS = (("alpha", (), "the observation angle alpha, one number"),
              ("depth", (), "the depth in metres, one number"),
              ("dim", (3,), "3 numbers: height, width, length in metres"))

    def fits(self, coco: "CocoDataset") -> bool:
        return coco.has_field("depth") and coco.has_field("dim")

    def config_for_coco(self, coco: "CocoDataset", output_size: tuple[int, int],
                        max_objs: int | None = None) -> DddConfig:
        """A file with KITTI's nine category ids gets KITTI's map (3 classes and ignore
        regions), any other its own categories as classes; the map keeps the first image's
        aspect ratio at ``output_size``'s width (KITTI: 128 -> 128x40)."""
        W = int(output_size[0])
        H = int(output_size[1])
        if len(coco) and coco[0].width and coco[0].height:
            H = max(8, int(round(W * coco[0].height / coco[0].width / 8)) * 8)
        if sorted(coco.category_ids) == sorted(c for c, _ in KITTI_CATEGORY_MAP):
            return DddConfig(output_size=(W, H), max_objs=max_objs or 50)
        return DddConfig(output_size=(W, H), max_objs=max_objs or 50,
                         num_classes=max(coco.num_classes, 1), category_map=None)

    def adapt(self, config: Any, coco: "CocoDataset") -> DddConfig:
        for name, shape, what in self.FIELDS:
            coco.dense_field(name, shape, what)
        coco.dense_image_field("calib", (3, 4), KITTI_CALIB, "the camera's 3x4 projection "
                               "matrix P2 (3 rows of 4 numbers)")
        if config.category_map is None:
            return super().adapt(config, coco)
        mapped = {a for a, _ in config.category_map}
        missing = [c for c in coco.category_ids if c not in mapped]
        if missing:
            raise ValueError(f"the COCO file's categories {missing} are not in "
                             "config.category_map: expected a class (or ignore code) for "
                             "every category id")
        return config

    def prepared(self, image: "ImageAnnotations", params: AugmentParams,
                 output_size: tuple[int, int], config: Any) -> Annotations:
        if params.flipped or params.rot:
            raise ValueError(f"{params}: expected no flip and no rotation (upstream's ddd "
                             "has neither)")
        boxes, _ = annotations_to_output(image.boxes_xywh, image.width, params, output_size)
        if config.category_map is None:
            classes = np.array(image.classes, np.int64)
        else:
            keys, values = _class_lookup(config.category_map)
            classes = values[np.searchsorted(keys, image.category_ids)]
        f = image.fields
        alpha = np.radians(f["alpha"] + 45) if config.alpha_in_degree else f["alpha"]
        return Annotations(boxes, classes, extras={
            "alpha": np.ascontiguousarray(alpha), "depth": np.ascontiguousarray(f["depth"]),
            "dim": np.ascontiguousarray(f["dim"]), "augmented": params.augmented})

    def sample_params(self, augment: Any, rng: np.random.Generator, width: int, height: int,
                      config: Any, keep_res_input: tuple[float, float] | None
                      ) -> AugmentParams:
        """Upstream's ddd draws: centre of the image, scale (w, h) (the input size with
        ``scale_to_input``); in training, with probability ``aug_ddd``, the scale times
        ``clip(N(1, scale), 1 +- scale)`` and the centre shifted by ``clip(N(0, shift),
        +-2 shift)`` of the image's sides.  No flip, no rotation, no colour."""
        W, H = config.output_size
        s = (float(W * 4), float(H * 4)) if config.scale_to_input else \
            (float(width), float(height))
        c = [width / 2.0, height / 2.0]
        aug = bool(augment.train and rng.random() < config.aug_ddd)
        if aug:
            sf, cf = augment.scale, augment.shift
            f = float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
            s = (s[0] * f, s[1] * f)
            c[0] += width * float(np.clip(rng.standard_normal() * cf, -2 * cf, 2 * cf))
            c[1] += height * float(np.clip(rng.standard_normal() * cf, -2 * cf, 2 * cf))
        return AugmentParams((c[0], c[1]), s, center_dtype="float64", augmented=aug)

    def audit_rows(self, totals: Mapping[str, int]) -> list[tuple[str, int, str]]:
        return [("  ignore regions and skipped", totals.get("ignored", 0), "objects")]

    def item_meta(self, image: "ImageAnnotations", config: Any) -> dict[str, np.ndarray]:
        return {"calib": np.asarray(image.image_fields["calib"], np.float32)}

    def fixture_keep_res(self, meta: Mapping[str, Any]) -> bool:
        return False                    # ddd's keep_res only changes the scale, given in meta

    def config_from_meta(self, meta: Mapping[str, Any], common: dict[str, Any]) -> DddConfig:
        opts = meta.get("options", {})
        cmap = tuple(sorted((int(k), int(v)) for k, v in meta["cat_ids"].items())) \
            if "cat_ids" in meta else None
        return DddConfig(reg_bbox=bool(opts.get("reg_bbox", True)),
                         rect_mask=bool(opts.get("rect_mask", False)), zero_sigma="nan",
                         category_map=cmap,
                         alpha_in_degree=bool(meta.get("alpha_in_degree", False)),
                         with_gt_det=meta.get("split") == "val" or bool(opts.get("debug", 0)),
                         **common)

    def fixture_classes(self, meta: Mapping[str, Any]) -> tuple[list[dict[str, Any]],
                                                               list[int] | None]:
        ids = sorted(int(k) for k in meta["cat_ids"])
        return [{"id": c, "name": str(c)} for c in ids], ids

    def decode_fixture(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                       ) -> tuple[Any, dict[str, np.ndarray]]:
        from centertargets.losses.ddd import DddDecoder

        B, C, H, W = arrays["heat"].shape
        cfg = DddConfig(output_size=(W, H), num_classes=C, reg_offset="reg" in arrays,
                        reg_bbox="wh" in arrays, category_map=None)
        heads = {"hm": arrays["heat"], "dep": arrays["dep"], "rot": arrays["rot"],
                 "dim": arrays["dim"], "wh": arrays.get("wh"), "reg": arrays.get("reg")}
        return DddDecoder(cfg, K=int(meta["K"]), apply_sigmoid=False), heads


register(DddUnit())
