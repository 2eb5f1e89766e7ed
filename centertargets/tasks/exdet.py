"""The ``exdet`` task: ExtremeNet-style extreme points (upstream CenterNet's ``EXDetDataset``).

Each COCO annotation carries ``extreme_points``: its top, left, bottom and
right-most points, ``[[xt, yt], [xl, yl], [xb, yb], [xr, yr]]`` in image
pixels.  Targets: one heatmap per extreme point (``hm_t``, ``hm_l``,
``hm_b``, ``hm_r``: one channel per class, or one in all with
``agnostic_ex``) and the centre heatmap ``hm_c`` (per class, at the centre
of the extreme points' box), all drawn with the radius of that box; with
``reg_offset`` the points' sub-pixel offsets ``reg_t/l/b/r`` at their flat
indices ``ind_t/l/b/r``, under one ``reg_mask``.  A horizontal flip swaps
the left and right points.  Loss: :class:`losses.exdet.ExdetLoss`;
decoders: :func:`losses.exdet.exct_decode` and
:func:`losses.exdet.agnex_ct_decode` (:class:`losses.exdet.ExdetDecoder`).

With ``heatmap="msra"`` (upstream's ``--mse_loss``) upstream draws every
Gaussian with the box's radius as its sigma, and a radius of 0 makes it
divide 0 by 0: NaN in the heatmaps at that point (and in the loss).
``zero_sigma="peak"`` (the default here) draws the limit of the Gaussian
as sigma goes to 0 instead, 1.0 at the point and nothing around it;
``zero_sigma="nan"`` reproduces upstream, NaN included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

import numpy as np

from ..augment import annotations_to_output
from ..config import BaseConfig, check_bool, check_choice, fail
from ..encoders import (Annotations, Encoder, call_kernel, check_classes, check_keypoints,
                        kernel_array)
from ..kernels._jit import jit
from ..kernels.encode import (S_COLLISIONS, S_DEGENERATE, S_ENCODED, ST_DEGENERATE, ST_ENCODED,
                              clip32, start_objects)
from ..kernels.canvas import FAM_UMICH, patch_for, peak_at, put_msra_sigma, put_umich
from ..kernels.gaussian import object_radius
from ..spec import F32, I64, U8, Heads, HeadSpec, SparseLayout, Targets, TargetSpec
from .base import TaskUnit, register

if TYPE_CHECKING:  # pragma: no cover
    from ..augment import AugmentParams
    from ..coco import CocoDataset, ImageAnnotations

__all__ = ["ExdetConfig", "ExdetEncoder", "encode_exdet", "EXTREME_POINTS"]

#: The order of the extreme points, in ``extreme_points`` and in the target names.
EXTREME_POINTS = ("t", "l", "b", "r")
#: The heatmaps, in the order of their map index in a draw list.
EXDET_MAPS = ("hm_t", "hm_l", "hm_b", "hm_r", "hm_c")
#: A horizontal flip swaps the left and right points.
FLIP_PAIRS = ((1, 3),)

_DOCS = {
    "hm_t": "heatmap of top-most points, per class (one channel with agnostic_ex)",
    "hm_l": "heatmap of left-most points, per class (one channel with agnostic_ex)",
    "hm_b": "heatmap of bottom-most points, per class (one channel with agnostic_ex)",
    "hm_r": "heatmap of right-most points, per class (one channel with agnostic_ex)",
    "hm_c": "heatmap of the centres of the extreme points' boxes, per class",
    "reg_mask": "1 where slot k holds an object whose offsets are supervised",
}
for _p, _what in zip(EXTREME_POINTS, ("top", "left", "bottom", "right")):
    _DOCS[f"reg_{_p}"] = f"sub-pixel offset of the {_what}-most point: point - floor(point)"
    _DOCS[f"ind_{_p}"] = f"flat index y * W + x of the {_what}-most point's integer position"


@dataclass(frozen=True)
class ExdetConfig(BaseConfig):
    """Everything that shapes upstream's ``exdet`` targets.

    Parameters
    ----------
    output_size : (width, height) of the output maps; upstream: square, input / 4.
    num_classes : C, channels of ``hm_c`` (and of the extreme heatmaps) (COCO: 80).
    max_objs : M, slots of the per-object targets (upstream: 128).
    reg_offset : produce ``reg_mask``, ``reg_t/l/b/r`` and ``ind_t/l/b/r``.
    agnostic_ex : one channel for each extreme heatmap instead of one per class.
    heatmap : ``"umich"`` (upstream's default) or ``"msra"`` (``--mse_loss``;
        the sigma is each object's radius).
    zero_sigma : with ``"msra"``, an object of radius 0: ``"peak"`` (default)
        1.0 at the point; ``"nan"`` upstream's 0/0, NaN at the point.
    radius : :class:`~centertargets.RadiusConfig` of the extreme points' box.
    overflow, with_cat : as :class:`~centertargets.CtdetConfig`.
    """

    agnostic_ex: bool = False
    zero_sigma: Literal["peak", "nan"] = "peak"

    task: ClassVar[str] = "exdet"
    _describe_fields: ClassVar[tuple[str, ...]] = ("agnostic_ex",)

    def __post_init__(self) -> None:
        self._validate_common()
        check_bool("ExdetConfig", "agnostic_ex", self.agnostic_ex)
        check_choice("ExdetConfig", "zero_sigma", self.zero_sigma, ("peak", "nan"))
        if self.heatmap in ("elliptic", "mmdet"):
            fail("ExdetConfig", "heatmap", self.heatmap,
                 "'umich' or 'msra' (upstream's exdet draws neither elliptic nor mmdetection's "
                 "Gaussians)")

    @property
    def extreme_channels(self) -> int:
        """Channels of each extreme-point heatmap: 1 with ``agnostic_ex``, else C."""
        return 1 if self.agnostic_ex else self.num_classes

    def spec(self) -> dict[str, TargetSpec]:
        """``hm_t/l/b/r (E,H,W) f32`` (E = 1 with ``agnostic_ex``, else C), ``hm_c (C,H,W)
        f32``; with ``reg_offset`` ``reg_mask (M,) u8``, ``reg_t/l/b/r (M,2) f32``,
        ``ind_t/l/b/r (M,) i64``."""
        W, H = self.output_size
        C, M, E = self.num_classes, self.max_objs, self.extreme_channels
        t = Targets()
        for p in EXTREME_POINTS:
            t.add(f"hm_{p}", (E, H, W), F32, _DOCS[f"hm_{p}"])
        t.add("hm_c", (C, H, W), F32, _DOCS["hm_c"])
        if self.with_cat:
            t.add("cat", (M,), I64)
        if self.reg_offset:
            t.add("reg_mask", (M,), U8, _DOCS["reg_mask"])
            for p in EXTREME_POINTS:
                t.add(f"reg_{p}", (M, 2), F32, _DOCS[f"reg_{p}"])
            for p in EXTREME_POINTS:
                t.add(f"ind_{p}", (M,), I64, _DOCS[f"ind_{p}"])
        return self.sparse_spec(t.out)

    def sparse_layout(self) -> SparseLayout:
        """The five heatmaps, one row each per object."""
        return SparseLayout(EXDET_MAPS, 5 * self.max_objs)

    def head_spec(self) -> dict[str, HeadSpec]:
        """``hm_t/l/b/r`` (E), ``hm_c`` (C) and, with ``reg_offset``, ``reg_t/l/b/r`` (2)."""
        h = Heads(self.output_size)
        # upstream's ExdetLoss applies the sigmoid under the MSE loss too: logits either way
        loss = "mse of the sigmoid" if self.heatmap == "msra" else "focal"
        for p, what in zip(EXTREME_POINTS, ("top", "left", "bottom", "right")):
            h.add(f"hm_{p}", self.extreme_channels, "heatmap", loss, (f"hm_{p}",),
                  f"{what}-most point heatmap, logits")
        h.add("hm_c", self.num_classes, "heatmap", loss, ("hm_c",),
              "extreme-box centre heatmap per class, logits")
        if self.reg_offset:
            for p, what in zip(EXTREME_POINTS, ("top", "left", "bottom", "right")):
                h.add(f"reg_{p}", 2, "regression", f"l1 at ind_{p}", (f"reg_{p}", "reg_mask"),
                      f"sub-pixel offset of the {what}-most point, read at ind_{p}")
        return h.out


@jit
def encode_exdet(points, classes,
                 msra, zero_sigma_nan, radius_formula, min_overlap, min_radius, table32,
                 hm_t, hm_l, hm_b, hm_r, hm_c, reg_t, reg_l, reg_b, reg_r,
                 ind_t, ind_l, ind_b, ind_r, reg_mask, write_reg, agnostic, max_objs,
                 draws, stats, status):
    """Upstream's ``EXDetDataset`` targets for one sample.

    Called through :func:`centertargets.encoders.call_kernel` with every argument named.

    Parameters
    ----------
    points : float32 (N, 4, 3), top, left, bottom, right: x, y in output pixels (not
        clipped), v (unused).
    classes : int64 (N,).
    msra : bool, draw MSRA Gaussians with sigma = radius (else umich patches).
    zero_sigma_nan : bool, a radius of 0 under ``msra`` gives upstream's NaN (else 1.0).
    radius_formula, min_overlap, min_radius : the radius of the points' box.
    table32 : the float32 umich patch table.
    hm_t, hm_l, hm_b, hm_r : float32 (E, H, W); hm_c : float32 (C, H, W): written.
    reg_t, reg_l, reg_b, reg_r : float32 (M, 2); ind_t, ... : int64 (M,); reg_mask :
        uint8 (M,): written when ``write_reg`` (else empty stand-ins).
    agnostic : bool, the extreme heatmaps have one channel.
    max_objs : M.
    draws : int32 (R, 8) or None: the five heatmaps recorded (maps 0-4: t, l, b, r, c)
        instead of drawn; the maps are then stand-ins of their shapes.
    stats : int64 (NSTATS,); status : int8 (N,): written.
    """
    C, H, W = hm_c.shape
    nobj = start_objects(points, classes, C, max_objs, stats, status)
    pts = np.empty((4, 2), np.float32)
    pint = np.empty((4, 2), np.int64)
    for k in range(nobj):
        for j in range(4):                                  # upstream clips to the map
            pts[j, 0] = clip32(points[k, j, 0], W - 1)
            pts[j, 1] = clip32(points[k, j, 1], H - 1)
        h = pts[2, 1] - pts[0, 1]
        w = pts[3, 0] - pts[1, 0]
        if not (h > 0 and w > 0):
            status[k] = ST_DEGENERATE
            stats[S_DEGENERATE] += 1
            continue
        cls = classes[k]
        hm_id = 0 if agnostic else cls
        radius = object_radius(h, w, radius_formula, min_overlap, min_radius)
        for j in range(4):
            pint[j, 0] = int(pts[j, 0])
            pint[j, 1] = int(pts[j, 1])
        cx = int((pts[3, 0] + pts[1, 0]) / np.float32(2.0))
        cy = int((pts[0, 1] + pts[2, 1]) / np.float32(2.0))
        if peak_at(hm_c, draws, stats, 4, cls, cx, cy):
            stats[S_COLLISIONS] += 1
        if msra:
            put_msra_sigma(hm_t, draws, stats, 0, hm_id, pint[0, 0], pint[0, 1], radius,
                           zero_sigma_nan)
            put_msra_sigma(hm_l, draws, stats, 1, hm_id, pint[1, 0], pint[1, 1], radius,
                           zero_sigma_nan)
            put_msra_sigma(hm_b, draws, stats, 2, hm_id, pint[2, 0], pint[2, 1], radius,
                           zero_sigma_nan)
            put_msra_sigma(hm_r, draws, stats, 3, hm_id, pint[3, 0], pint[3, 1], radius,
                           zero_sigma_nan)
            put_msra_sigma(hm_c, draws, stats, 4, cls, cx, cy, radius, zero_sigma_nan)
        else:
            p32 = patch_for(draws, radius, table32)
            put_umich(hm_t, draws, stats, 0, hm_id, pint[0, 0], pint[0, 1], radius, p32,
                      FAM_UMICH)
            put_umich(hm_l, draws, stats, 1, hm_id, pint[1, 0], pint[1, 1], radius, p32,
                      FAM_UMICH)
            put_umich(hm_b, draws, stats, 2, hm_id, pint[2, 0], pint[2, 1], radius, p32,
                      FAM_UMICH)
            put_umich(hm_r, draws, stats, 3, hm_id, pint[3, 0], pint[3, 1], radius, p32,
                      FAM_UMICH)
            put_umich(hm_c, draws, stats, 4, cls, cx, cy, radius, p32, FAM_UMICH)
        if write_reg:
            reg_t[k, 0] = pts[0, 0] - pint[0, 0]
            reg_t[k, 1] = pts[0, 1] - pint[0, 1]
            reg_l[k, 0] = pts[1, 0] - pint[1, 0]
            reg_l[k, 1] = pts[1, 1] - pint[1, 1]
            reg_b[k, 0] = pts[2, 0] - pint[2, 0]
            reg_b[k, 1] = pts[2, 1] - pint[2, 1]
            reg_r[k, 0] = pts[3, 0] - pint[3, 0]
            reg_r[k, 1] = pts[3, 1] - pint[3, 1]
            ind_t[k] = pint[0, 1] * W + pint[0, 0]
            ind_l[k] = pint[1, 1] * W + pint[1, 0]
            ind_b[k] = pint[2, 1] * W + pint[2, 0]
            ind_r[k] = pint[3, 1] * W + pint[3, 0]
            reg_mask[k] = 1
        status[k] = ST_ENCODED
        stats[S_ENCODED] += 1


class ExdetEncoder(Encoder):
    """Upstream's ``exdet`` targets from extreme points in output-map pixels.

    >>> enc = ExdetEncoder(ExdetConfig(output_size=(128, 128), num_classes=80))
    >>> t = enc.encode(points, classes)   # points (N, 4, 2): top, left, bottom, right x, y

    Returned keys: see :meth:`ExdetConfig.spec`.  Objects keep their order:
    object k < M owns slot k; objects whose points' box has no width or
    height once clipped to the map are left out (counted as degenerate).
    """

    config: ExdetConfig
    _config_type = ExdetConfig

    def encode(self, points: np.ndarray, classes: np.ndarray,
               out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Targets for one sample: ``points`` (N, 4, 2) float, ``classes`` (N,) int."""
        return self.encode_annotations(self.annotations(points, classes), out=out)[0]

    @staticmethod
    def annotations(points: Any, classes: Any) -> Annotations:
        """:class:`Annotations` of extreme points (N, 4, 2): the points as ``keypoints``
        (v = 2) and their box as ``boxes``."""
        p = np.asarray(points, np.float64)
        if p.size == 0:
            p = p.reshape(0, 4, 2)
        if p.ndim != 3 or p.shape[1:] != (4, 2):
            raise ValueError(f"points has shape {p.shape}: expected (N, 4, 2), the top, left, "
                             "bottom and right points' x, y")
        kps = np.concatenate([p, np.full(p.shape[:2] + (1,), 2.0)], axis=2).astype(np.float32)
        boxes = np.stack([p[:, 1, 0], p[:, 0, 1], p[:, 3, 0], p[:, 2, 1]], axis=1) \
            if len(p) else np.zeros((0, 4))
        return Annotations(boxes.astype(np.float32), classes, kps)

    def _checked(self, annotations: Annotations) -> Annotations:
        a = annotations
        if a.keypoints is None:
            raise ValueError("annotations have no keypoints: expected the extreme points as "
                             "(N, 4, 3) keypoints (ExdetEncoder.annotations builds them)")
        kps = check_keypoints(a.keypoints, len(a.keypoints), 4)
        n = len(kps)
        boxes = kernel_array(np.asarray(a.boxes, np.float32).reshape(n, 4), np.float32)
        return Annotations(boxes, check_classes(a.classes, n, self.config.num_classes), kps)

    def _run(self, a: Annotations, t: dict[str, np.ndarray], stats: np.ndarray,
             status: np.ndarray) -> None:
        cfg, off = self.config, self._off
        reg = {k: t.get(k, off["f2"]) for k in ("reg_t", "reg_l", "reg_b", "reg_r")}
        ind = {k: t.get(k, off["i1"]) for k in ("ind_t", "ind_l", "ind_b", "ind_r")}
        call_kernel(encode_exdet, points=a.keypoints, classes=a.classes,
                    msra=cfg.heatmap == "msra", zero_sigma_nan=cfg.zero_sigma == "nan",
                    radius_formula=self._heat["radius_formula"],
                    min_overlap=self._heat["min_overlap"], min_radius=self._heat["min_radius"],
                    table32=self._heat["table32"], **{m: self._map(t, m) for m in EXDET_MAPS},
                    **reg, **ind, reg_mask=t.get("reg_mask", off["u1"]),
                    write_reg="reg_mask" in t, agnostic=cfg.agnostic_ex,
                    max_objs=cfg.max_objs, draws=t.get("draws"), stats=stats, status=status)


class ExdetUnit(TaskUnit):
    name = "exdet"
    config_type = ExdetConfig
    encoder_type = ExdetEncoder
    loss = "centertargets.losses.exdet:ExdetLoss"
    decoder = "centertargets.losses.exdet:ExdetDecoder"
    decode_kinds = ("exct_decode", "agnex_ct_decode")
    specificity = 2
    center_dtype = "float64"            # upstream's EXDetDataset keeps c in float64

    FIELD = "extreme_points"
    FIELD_DOC = "4 points [[xt, yt], [xl, yl], [xb, yb], [xr, yr]] (top, left, bottom, right)"

    def fits(self, coco: "CocoDataset") -> bool:
        return coco.has_field(self.FIELD)

    def config_for_coco(self, coco: "CocoDataset", output_size: tuple[int, int],
                        max_objs: int | None = None) -> ExdetConfig:
        return ExdetConfig(output_size=output_size, num_classes=max(coco.num_classes, 1),
                           max_objs=max_objs or 128)

    def adapt(self, config: Any, coco: "CocoDataset") -> ExdetConfig:
        coco.dense_field(self.FIELD, (4, 2), self.FIELD_DOC)
        return super().adapt(config, coco)

    def prepared(self, image: "ImageAnnotations", params: "AugmentParams",
                 output_size: tuple[int, int], config: Any) -> Annotations:
        pts = image.fields[self.FIELD]
        kps = np.empty(pts.shape[:2] + (3,), np.float64)
        kps[..., :2] = pts
        kps[..., 2] = 2.0
        boxes, out = annotations_to_output(image.boxes_xywh, image.width, params, output_size,
                                           keypoints=kps, flip_idx=FLIP_PAIRS)
        return Annotations(boxes, np.array(image.classes, np.int64), out, params.rot != 0)

    def config_from_meta(self, meta: Mapping[str, Any], common: dict[str, Any]) -> ExdetConfig:
        opts = meta.get("options", {})
        return ExdetConfig(agnostic_ex=bool(opts.get("agnostic_ex", False)), zero_sigma="nan",
                           **common)

    def loss_fixture_meta(self, targets: Mapping[str, np.ndarray]) -> dict[str, Any]:
        B, C, H, W = targets["hm_c"].shape
        return {"output_w": W, "output_h": H, "num_classes": C,
                "max_objs": targets["ind_t"].shape[1] if "ind_t" in targets else 128}

    def decode_fixture(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                       ) -> tuple[Any, dict[str, np.ndarray]]:
        from centertargets.losses.exdet import ExdetDecoder

        B, C, H, W = arrays["hm_c"].shape
        cfg = ExdetConfig(output_size=(W, H), num_classes=C,
                          agnostic_ex=meta["kind"] == "agnex_ct_decode",
                          reg_offset="reg_t" in arrays)
        dec = ExdetDecoder(cfg, K=int(meta["K"]), apply_sigmoid=False,
                           scores_thresh=float(meta.get("scores_thresh", 0.1)),
                           center_thresh=float(meta.get("center_thresh", 0.1)),
                           aggr_weight=float(meta.get("aggr_weight", 0.0)))
        names = [f"hm_{p}" for p in EXTREME_POINTS] + ["hm_c"] + \
            [f"reg_{p}" for p in EXTREME_POINTS]
        return dec, {n: arrays.get(n) for n in names}


register(ExdetUnit())
