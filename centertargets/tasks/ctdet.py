"""The ``ctdet`` task: CenterNet's object detection (upstream's ``CTDetDataset``).

One object per COCO annotation: a Gaussian peak per class in ``hm`` at the
box centre, the box size (``wh``, or per class, or dense) and the sub-pixel
centre offset ``reg``.  Loss: :class:`losses.CtdetLoss`; decoder:
:class:`centertargets.decode.CtdetDecoder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

from ..augment import annotations_to_output
from ..config import BaseConfig, check_bool, fail
from ..encoders import (Annotations, EncodeReport, Encoder, bind_kernel, check_boxes,
                        check_classes)
from ..kernels._jit import jit
from ..kernels.encode import (S_ENCODED, S_DEGENERATE, S_COLLISIONS, ST_DEGENERATE, ST_ENCODED,
                              clipped_box, start_objects, window_radius)
from ..kernels.canvas import patch_for, peak_at, put_peak
from ..kernels.gaussian import draw_dense_reg, get_patch
from ..spec import F32, I64, U8, Heads, HeadSpec, SparseLayout, Targets, TargetSpec
from .base import TaskUnit, register

if TYPE_CHECKING:  # pragma: no cover
    from ..augment import AugmentParams
    from ..coco import CocoDataset, ImageAnnotations

__all__ = ["CtdetConfig", "CtdetEncoder", "encode_ctdet"]


@dataclass(frozen=True)
class CtdetConfig(BaseConfig):
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
        (fixed ``msra_sigma``, CenterNet's ``--mse_loss``), ``"elliptic"``
        (TTFNet: sigmas from ``elliptic_alpha`` times the box sides), or ``"mmdet"``
        (the umich Gaussian with mmdetection's float32 values; with
        ``radius=RadiusConfig.mmdet()`` mmdetection's CenterNet heatmaps; needs torch).
    msra_sigma : sigma of the MSRA Gaussian (CenterNet's ``hm_gauss``).
    radius : :class:`RadiusConfig`.
    overflow : ``"drop"`` objects beyond ``max_objs`` (CenterNet, but counted in
        the report) or ``"error"``.
    with_cat : also return ``cat`` (M,) int64, the class of each slot (not a
        CenterNet target; the "fast" focal loss reads positives with it).
    heatmaps : ``"dense"`` (default, CenterNet's targets) or ``"sparse"``: ``hm`` travels as
        ``draws`` (R, 8) int32, a draw list the training device renders bit for bit
        (:func:`centertargets.device.render_heatmaps`; every task's config has this field).
    """

    cat_spec_wh: bool = False
    dense_wh: bool = False

    def __post_init__(self) -> None:
        self._validate_common()
        check_bool("CtdetConfig", "cat_spec_wh", self.cat_spec_wh)
        check_bool("CtdetConfig", "dense_wh", self.dense_wh)
        if self.cat_spec_wh and self.dense_wh:
            fail("CtdetConfig", "dense_wh", True,
                  "False when cat_spec_wh=True (the two replace 'wh' in different ways)")
        if self.dense_wh and self.heatmap == "msra" and float(self.msra_sigma) != int(self.msra_sigma):
            fail("CtdetConfig", "msra_sigma", self.msra_sigma,
                  "an integer when dense_wh=True (it is the dense window radius)")

    task: ClassVar[str] = "ctdet"
    _describe_fields: ClassVar[tuple[str, ...]] = ()

    def spec(self) -> dict[str, TargetSpec]:
        """ctdet: ``hm (C,H,W) f32, reg_mask (M,) u8, ind (M,) i64`` and ``wh (M,2) f32``
        or ``cat_spec_wh/cat_spec_mask (M,2C) f32/u8`` or ``dense_wh/dense_wh_mask
        (2,H,W) f32``, plus ``reg (M,2) f32``."""
        W, H = self.output_size
        C, M = self.num_classes, self.max_objs
        t = Targets()
        t.add("hm", (C, H, W), F32)
        t.add("reg_mask", (M,), U8)
        t.add("ind", (M,), I64)
        if self.with_cat:
            t.add("cat", (M,), I64)
        if self.dense_wh:
            t.add("dense_wh", (2, H, W), F32)
            t.add("dense_wh_mask", (2, H, W), F32)
        elif self.cat_spec_wh:
            t.add("cat_spec_wh", (M, 2 * C), F32)
            t.add("cat_spec_mask", (M, 2 * C), U8)
        else:
            t.add("wh", (M, 2), F32)
        if self.reg_offset:
            t.add("reg", (M, 2), F32)
        return self.sparse_spec(t.out)

    def sparse_layout(self) -> SparseLayout:
        """``hm``, one row per object; dense with ``dense_wh`` (painted where ``hm`` wins)."""
        if self.dense_wh:
            return SparseLayout((), 0, "dense_wh=True paints dense_wh where hm wins, reading hm")
        return SparseLayout(("hm",), self.max_objs)

    def head_spec(self) -> dict[str, HeadSpec]:
        """ctdet: ``hm`` (C), ``wh`` (2, or 2C with ``cat_spec_wh``), ``reg`` (2) with
        ``reg_offset``; each (B, channels, H, W), CenterNet's ``opt.heads``."""
        h = Heads(self.output_size)
        h.heatmap("hm", self.num_classes, self.heatmap == "msra", "centre heatmap per class")
        if self.dense_wh:
            h.add("wh", 2, "regression", "dense l1", ("dense_wh", "dense_wh_mask"),
                  "box size at every pixel, weighted by the centre heatmap")
        elif self.cat_spec_wh:
            h.per_object("wh", ("cat_spec_wh", "cat_spec_mask"),
                         "box size per class (columns 2c, 2c+1)", 2 * self.num_classes)
        else:
            h.per_object("wh", ("wh", "reg_mask"), "box size")
        if self.reg_offset:
            h.per_object("reg", ("reg", "reg_mask"), "sub-pixel centre offset")
        return h.out


@jit
def encode_ctdet(boxes, classes,
                 msra_sigma, msra, radius_formula, min_overlap, min_radius, elliptic_alpha,
                 table, table32, patch_family,
                 hm, wh, reg, ind, reg_mask, cat_spec_wh, cat_spec_mask, dense_wh, dense_wh_mask,
                 write_wh, write_reg, write_cat_spec, draws,
                 stats, status):
    """CenterNet ``CTDetDataset`` targets for one sample.

    Called through a :func:`centertargets.encoders.bind_kernel`, every argument named.

    Parameters
    ----------
    boxes : float32 (N, 4), x1, y1, x2, y2 in output pixels.
    classes : int64 (N,), class indices in [0, C).
    msra_sigma : float, sigma of the MSRA Gaussian.
    msra : float32 2-D, the precomputed MSRA window for ``msra_sigma``, or None
        (not the MSRA heatmap).
    radius_formula : int, ``RADIUS_CENTERNET`` or ``RADIUS_CORRECTED``.
    min_overlap : float, the radius' IoU target.
    min_radius : int, lower bound on the radius.
    elliptic_alpha : float, TTFNet's alpha for the elliptic Gaussian, or None
        (not the elliptic heatmap).
    table, table32 : precomputed umich patches (float64 and float32).
    patch_family : int, the ``kernels.canvas.FAM_*`` of ``table32`` (rows of ``draws``).
    hm : float32 (C, H, W), written; with ``draws``, a stand-in of that shape.
    wh, reg : float32 (M, 2), written when ``write_wh`` / ``write_reg``.
    ind : int64 (M,); reg_mask : uint8 (M,), written.
    cat_spec_wh : float32 (M, 2C); cat_spec_mask : uint8 (M, 2C), when ``write_cat_spec``.
    dense_wh, dense_wh_mask : float32 (2, H, W), or None (no dense head).
    write_wh, write_reg, write_cat_spec : bool, which of those heads exist
        (an absent head is an empty array of the same dtype and ndim).
    draws : int32 (R, 8) or None: the draw list ``hm`` is recorded in (map 0) instead of
        drawn (sparse heatmaps, :mod:`centertargets.kernels.canvas`).
    stats : int64 (NSTATS,), counts, written; status : int8 (N,), per object, written.
    """
    C, H, W = hm.shape
    nobj = start_objects(boxes, classes, hm.shape[0], ind.shape[0], stats, status)
    value = np.zeros(2, dtype=np.float32)
    for k in range(nobj):
        w, h, ctx, cty = clipped_box(boxes, k, W, H)
        if not (h > 0 and w > 0):
            status[k] = ST_DEGENERATE
            stats[S_DEGENERATE] += 1
            continue
        cls = classes[k]
        radius = window_radius(h, w, msra, msra_sigma, radius_formula, min_overlap, min_radius)
        cx = int(ctx)
        cy = int(cty)
        if peak_at(hm, draws, stats, 0, cls, cx, cy):
            stats[S_COLLISIONS] += 1
        put_peak(hm, draws, stats, 0, cls, cx, cy, radius, msra, msra_sigma, elliptic_alpha, w,
                 h, patch_for(draws, radius, table32), patch_family)
        if write_wh:
            wh[k, 0] = w
            wh[k, 1] = h
        ind[k] = cy * W + cx
        if write_reg:
            reg[k, 0] = ctx - cx
            reg[k, 1] = cty - cy
        reg_mask[k] = 1
        if write_cat_spec:
            cat_spec_wh[k, 2 * cls] = w
            cat_spec_wh[k, 2 * cls + 1] = h
            cat_spec_mask[k, 2 * cls] = 1
            cat_spec_mask[k, 2 * cls + 1] = 1
        if dense_wh is not None:
            value[0] = w
            value[1] = h
            draw_dense_reg(dense_wh, hm, -1, cx, cy, value, radius, False,
                           get_patch(radius, table))
        status[k] = ST_ENCODED
        stats[S_ENCODED] += 1
    if dense_wh_mask is not None:
        for y in range(H):
            for x in range(W):
                m = hm[0, y, x]
                for c in range(1, C):
                    if hm[c, y, x] > m:
                        m = hm[c, y, x]
                dense_wh_mask[0, y, x] = m
                dense_wh_mask[1, y, x] = m


class CtdetEncoder(Encoder):
    """CenterNet object-detection targets from boxes in output-map pixels.

    >>> enc = CtdetEncoder(CtdetConfig(output_size=(128, 128), num_classes=80))
    >>> t = enc.encode(boxes, classes)   # boxes (N, 4) x1, y1, x2, y2; classes (N,)

    Returned keys (see :meth:`CtdetConfig.spec`): ``hm`` (C,H,W)
    f32, ``reg_mask`` (M,) u8, ``ind`` (M,) i64, ``wh`` (M,2) f32 (or
    ``cat_spec_wh``/``cat_spec_mask`` (M,2C), or ``dense_wh``/``dense_wh_mask``
    (2,H,W)), ``reg`` (M,2) f32.
    """

    config: CtdetConfig
    _config_type = CtdetConfig

    def encode(self, boxes: np.ndarray, classes: np.ndarray,
               out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Targets for one sample; see :meth:`encode_with_report`."""
        return self.encode_with_report(boxes, classes, out=out)[0]

    def encode_with_report(self, boxes: np.ndarray, classes: np.ndarray,
                           out: dict[str, np.ndarray] | None = None
                           ) -> tuple[dict[str, np.ndarray], EncodeReport]:
        """Targets for one sample, and an :class:`EncodeReport` of what was left out.

        Parameters
        ----------
        boxes : (N, 4) float, x1, y1, x2, y2 in output-map pixels.
        classes : (N,) int in ``[0, num_classes)``.
        out : optional dict of preallocated buffers (``spec`` shapes and
            dtypes); they are zeroed and filled, and returned.
        """
        return self.encode_annotations(Annotations(boxes, classes), out=out)

    def _checked(self, annotations: Annotations) -> Annotations:
        """Boxes and classes checked; keypoints are not a ctdet input and are ignored."""
        b = check_boxes(annotations.boxes)
        return Annotations(b, check_classes(annotations.classes, len(b), self.config.num_classes))

    def __init__(self, config: CtdetConfig) -> None:
        super().__init__(config)
        spec = self.spec
        self._kernel = bind_kernel(encode_ctdet, **self._heat, write_wh="wh" in spec,
                                   write_reg="reg" in spec, write_cat_spec="cat_spec_wh" in spec)

    def _run(self, a: Annotations, t: dict[str, np.ndarray], stats: np.ndarray,
             status: np.ndarray) -> None:
        off = self._off
        self._kernel(boxes=a.boxes, classes=a.classes, hm=self._map(t, "hm"),
                     wh=t.get("wh", off["f2"]), reg=t.get("reg", off["f2"]), ind=t["ind"],
                     reg_mask=t["reg_mask"], cat_spec_wh=t.get("cat_spec_wh", off["f2"]),
                     cat_spec_mask=t.get("cat_spec_mask", off["u2"]),
                     dense_wh=t.get("dense_wh"), dense_wh_mask=t.get("dense_wh_mask"),
                     draws=t.get("draws"), stats=stats, status=status)


class CtdetUnit(TaskUnit):
    name = "ctdet"
    config_type = CtdetConfig
    encoder_type = CtdetEncoder
    loss = "centertargets.losses.centernet:CtdetLoss"
    decoder = "centertargets.decode:CtdetDecoder"
    decode_kinds = ("ctdet_decode",)
    specificity = 0

    def config_for_coco(self, coco: "CocoDataset", output_size: tuple[int, int],
                        max_objs: int | None = None) -> CtdetConfig:
        return CtdetConfig(output_size=output_size, num_classes=max(coco.num_classes, 1),
                           max_objs=max_objs or 128)

    def prepared(self, image: "ImageAnnotations", params: "AugmentParams",
                 output_size: tuple[int, int], config: Any) -> Annotations:
        boxes, _ = annotations_to_output(image.boxes_xywh, image.width, params, output_size)
        return Annotations(boxes, np.array(image.classes, np.int64))

    def config_from_meta(self, meta: Mapping[str, Any], common: dict[str, Any]) -> CtdetConfig:
        opts = meta.get("options", {})
        return CtdetConfig(cat_spec_wh=bool(opts.get("cat_spec_wh", False)),
                           dense_wh=bool(opts.get("dense_wh", False)), **common)

    def decode_fixture(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                       ) -> tuple[Any, dict[str, np.ndarray]]:
        from ..decode import CtdetDecoder

        B, C, H, W = arrays["heat"].shape
        cfg = CtdetConfig(output_size=(W, H), num_classes=C, reg_offset="reg" in arrays,
                          cat_spec_wh=bool(meta.get("cat_spec_wh", False)))
        heads = {"hm": arrays["heat"], "wh": arrays["wh"], "reg": arrays.get("reg")}
        return CtdetDecoder(cfg, K=int(meta["K"]), apply_sigmoid=False), heads


register(CtdetUnit())
