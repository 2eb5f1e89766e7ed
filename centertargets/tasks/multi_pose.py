"""The ``multi_pose`` task: CenterNet's multi-person pose (upstream's ``MultiPoseDataset``).

One person per COCO annotation: a centre peak in ``hm``, the box size ``wh``,
the joint vectors from the centre ``hps`` (masked per coordinate by
``hps_mask``), one heatmap per joint type ``hm_hp`` and the joints' sub-pixel
offsets ``hp_offset`` (slot ``k * J + j``).  A flip swaps the left/right
joints of ``flip_idx``.  Loss: :class:`losses.MultiPoseLoss`; decoder:
:class:`centertargets.decode.MultiPoseDecoder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

import numpy as np

from ..augment import annotations_to_output
from ..coco import COCO_FLIP_IDX
from ..config import BaseConfig, check_bool, check_choice, check_int, fail
from ..encoders import (Annotations, EncodeReport, Encoder, call_kernel, check_boxes,
                        check_classes, check_keypoints)
from ..kernels._jit import jit
from ..kernels.encode import (S_COLLISIONS, S_DEGENERATE,
                              S_ENCODED, S_KPS_ENCODED, S_KPS_LABELLED, S_KPS_OUTSIDE,
                              S_NO_KEYPOINTS, ST_DEGENERATE, ST_ENCODED, ST_NO_KEYPOINTS,
                              clipped_box, draw_point, start_objects, window_radius)
from ..kernels.canvas import patch_for, peak_at, put_peak, put_point, set_all, set_pixel
from ..kernels.gaussian import draw_dense_reg, get_patch
from ..spec import F32, I64, U8, Heads, HeadSpec, SparseLayout, Targets, TargetSpec
from .base import TaskUnit, register

if TYPE_CHECKING:  # pragma: no cover
    from ..augment import AugmentParams
    from ..coco import CocoDataset, ImageAnnotations

__all__ = ["MultiPoseConfig", "MultiPoseEncoder", "encode_multi_pose"]

# MultiPoseConfig.no_keypoints as the kernel's codes
NOKPS_CENTERNET = 0
NOKPS_IGNORE = 1


@dataclass(frozen=True)
class MultiPoseConfig(BaseConfig):
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
        object.__setattr__(self, "num_joints", check_int(owner, "num_joints", self.num_joints,
                                                          1, 4096))
        for name in ("hm_hp", "reg_hp_offset", "dense_hp"):
            check_bool(owner, name, getattr(self, name))
        check_choice(owner, "no_keypoints", self.no_keypoints, ("centernet", "ignore"))
        check_choice(owner, "rotation", self.rotation, ("centernet", "corners"))
        check_choice(owner, "occluded_joints", self.occluded_joints,
                      ("centernet", "ignore_in_hm_hp"))
        if self.flip_idx is not None:
            self._check_flip_idx()
        if self.dense_hp and self.heatmap == "msra" and float(self.msra_sigma) != int(self.msra_sigma):
            fail(owner, "msra_sigma", self.msra_sigma,
                  "an integer when dense_hp=True (it is the dense window radius)")

    def _check_flip_idx(self) -> None:
        owner = "MultiPoseConfig"
        try:
            pairs = tuple((int(a), int(b)) for a, b in self.flip_idx)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            fail(owner, "flip_idx", self.flip_idx, "a sequence of (left, right) joint pairs")
        seen: set[int] = set()
        for a, b in pairs:
            if not (0 <= a < self.num_joints and 0 <= b < self.num_joints) or a == b \
                    or a in seen or b in seen:
                fail(owner, "flip_idx", self.flip_idx,
                      f"disjoint pairs of distinct joint indices in [0, {self.num_joints})")
            seen.update((a, b))
        object.__setattr__(self, "flip_idx", pairs)

    task: ClassVar[str] = "multi_pose"
    _describe_fields: ClassVar[tuple[str, ...]] = ("num_joints",)

    def spec(self) -> dict[str, TargetSpec]:
        """multi_pose: ``hm, reg_mask, ind, wh`` and ``hps (M,2J) f32 / hps_mask (M,2J)
        u8`` or ``dense_hps/dense_hps_mask (2J,H,W) f32``, plus ``reg``, ``hm_hp (J,H,W)
        f32``, ``hp_offset (M*J,2) f32, hp_ind (M*J,) i64, hp_mask (M*J,) i64``."""
        W, H = self.output_size
        C, M, J = self.num_classes, self.max_objs, self.num_joints
        t = Targets()
        t.add("hm", (C, H, W), F32)
        t.add("reg_mask", (M,), U8)
        t.add("ind", (M,), I64)
        if self.with_cat:
            t.add("cat", (M,), I64)
        t.add("wh", (M, 2), F32)
        if self.dense_hp:
            t.add("dense_hps", (2 * J, H, W), F32)
            t.add("dense_hps_mask", (2 * J, H, W), F32)
        else:
            t.add("hps", (M, 2 * J), F32)
            t.add("hps_mask", (M, 2 * J), U8)
        if self.reg_offset:
            t.add("reg", (M, 2), F32)
        if self.hm_hp:
            t.add("hm_hp", (J, H, W), F32)
        if self.reg_hp_offset:
            t.add("hp_offset", (M * J, 2), F32)
            t.add("hp_ind", (M * J,), I64)
            t.add("hp_mask", (M * J,), I64)
        return self.sparse_spec(t.out)

    def sparse_layout(self) -> SparseLayout:
        """``hm`` and ``hm_hp``; per person at most its centre, J joints and a centre set to
        0.9999 (``no_keypoints="ignore"``), plus the rotation quirk's blank.  Dense with
        ``dense_hp`` (drawn where ``hm`` wins, so it reads the map)."""
        if self.dense_hp:
            return SparseLayout((), 0, "dense_hp=True paints dense_hps where hm wins, reading hm")
        maps = ("hm", "hm_hp") if self.hm_hp else ("hm",)
        return SparseLayout(maps, self.max_objs * (self.num_joints + 2) + 1)

    def head_spec(self) -> dict[str, HeadSpec]:
        """multi_pose: ``hm`` (C), ``wh`` (2), ``hps`` (2J), ``reg`` (2) with
        ``reg_offset``, ``hm_hp`` (J) with ``hm_hp``, ``hp_offset`` (2) with
        ``reg_hp_offset``; each (B, channels, H, W), CenterNet's ``opt.heads``."""
        J = self.num_joints
        h = Heads(self.output_size)
        h.heatmap("hm", self.num_classes, False, "person-centre heatmap")  # focal even with MSRA
        h.per_object("wh", ("wh", "reg_mask"), "box size")
        if self.dense_hp:
            h.add("hps", 2 * J, "regression", "dense l1", ("dense_hps", "dense_hps_mask"),
                  "joint vectors from the centre at every pixel, weighted by the centre heatmap")
        else:
            h.per_object("hps", ("hps", "hps_mask"), "joint vectors (dx, dy) from the integer "
                         "centre", 2 * J)
        if self.reg_offset:
            h.per_object("reg", ("reg", "reg_mask"), "sub-pixel centre offset")
        if self.hm_hp:
            h.heatmap("hm_hp", J, self.heatmap == "msra", "joint heatmaps")
        if self.reg_hp_offset:
            h.add("hp_offset", 2, "regression", "l1 at hp_ind", ("hp_offset", "hp_mask"),
                  "sub-pixel joint offset read at hp_ind")
        return h.out


@jit
def encode_multi_pose(boxes, classes, kps,
                      msra_sigma, msra, radius_formula, min_overlap, min_radius,
                      elliptic_alpha, no_keypoints, ignore_occluded_in_hm_hp, rotated_quirk,
                      table, table32, patch_family,
                      hm, wh, reg, ind, reg_mask, hps, hps_mask, hm_hp, hp_offset, hp_ind,
                      hp_mask, dense_hps, dense_hps_mask,
                      write_reg, write_hps, write_hm_hp, write_hp_offset, draws,
                      stats, status):
    """CenterNet ``MultiPoseDataset`` targets for one sample.

    Called through :func:`centertargets.encoders.call_kernel` with every argument named.

    Parameters
    ----------
    boxes : float32 (N, 4) in output pixels; classes : int64 (N,).
    kps : float32 (N, J, 3), x, y in output pixels and v the COCO visibility.
    msra_sigma, msra, radius_formula, min_overlap, min_radius,
    elliptic_alpha, table, table32 : as :func:`encode_ctdet`.
    no_keypoints : int, ``NOKPS_CENTERNET`` or ``NOKPS_IGNORE``.
    ignore_occluded_in_hm_hp : bool, leave v = 1 joints out of ``hm_hp``.
    rotated_quirk : bool, see below.
    hm : float32 (C, H, W); wh, reg : float32 (M, 2); ind : int64 (M,);
    reg_mask : uint8 (M,); hps : float32 (M, 2J); hps_mask : uint8 (M, 2J);
    hm_hp : float32 (J, H, W); hp_offset : float32 (M*J, 2); hp_ind, hp_mask :
    int64 (M*J,); dense_hps, dense_hps_mask : float32 (2J, H, W) or None: outputs.
    write_reg, write_hps, write_hm_hp, write_hp_offset : bool, which of those
        heads exist (an absent head is an empty array).
    stats : int64 (NSTATS,); status : int8 (N,): written.

    ``rotated_quirk``: the sample was rotated and CenterNet's behaviour is
    wanted, so degenerate boxes are still encoded, and at the end ``hm`` is
    set to 0.9999 everywhere and ``reg_mask``/``hps_mask`` are zeroed.
    """
    J = kps.shape[1]
    C, H, W = hm.shape
    nobj = start_objects(boxes, classes, hm.shape[0], ind.shape[0], stats, status)
    value = np.zeros(2, dtype=np.float32)
    for k in range(nobj):
        w, h, ctx, cty = clipped_box(boxes, k, W, H)
        if not ((h > 0 and w > 0) or rotated_quirk):
            status[k] = ST_DEGENERATE
            stats[S_DEGENERATE] += 1
            continue
        cls = classes[k]
        radius = window_radius(h, w, msra, msra_sigma, radius_formula, min_overlap, min_radius)
        cx = int(ctx)
        cy = int(cty)
        wh[k, 0] = w
        wh[k, 1] = h
        ind[k] = cy * W + cx
        if write_reg:
            reg[k, 0] = ctx - cx
            reg[k, 1] = cty - cy
        reg_mask[k] = 1
        status[k] = ST_ENCODED
        stats[S_ENCODED] += 1

        p32 = patch_for(draws, radius, table32)
        already_peak = peak_at(hm, draws, stats, 0, cls, cx, cy)
        if already_peak:
            stats[S_COLLISIONS] += 1
        vsum = np.float32(0.0)
        for j in range(J):
            vsum += kps[k, j, 2]
        no_kps = vsum == 0
        if no_kps:
            stats[S_NO_KEYPOINTS] += 1
            status[k] = ST_NO_KEYPOINTS
            reg_mask[k] = 0
            if no_keypoints == NOKPS_CENTERNET and draws is None:
                # the person's own peak (1.0) lands here next, so in a draw list this is left
                # out: it could never change the rendered map
                hm[cls, cy, cx] = np.float32(0.9999)

        for j in range(J):
            v = kps[k, j, 2]
            if not v > 0:
                continue
            stats[S_KPS_LABELLED] += 1
            px = kps[k, j, 0]
            py = kps[k, j, 1]
            if not (px >= 0 and px < W and py >= 0 and py < H):
                stats[S_KPS_OUTSIDE] += 1
                continue
            stats[S_KPS_ENCODED] += 1
            if write_hps:
                hps[k, 2 * j] = px - cx
                hps[k, 2 * j + 1] = py - cy
                hps_mask[k, 2 * j] = 1
                hps_mask[k, 2 * j + 1] = 1
            pix = int(px)
            piy = int(py)
            if write_hp_offset:
                hp_offset[k * J + j, 0] = px - pix
                hp_offset[k * J + j, 1] = py - piy
                hp_ind[k * J + j] = piy * W + pix
                hp_mask[k * J + j] = 1
            if dense_hps is not None and dense_hps_mask is not None:
                # before the centre Gaussian of this person, as upstream
                value[0] = px - cx
                value[1] = py - cy
                draw_dense_reg(dense_hps[2 * j:2 * j + 2], hm, cls, cx, cy, value, radius, True,
                               get_patch(radius, table))
                draw_point(dense_hps_mask[2 * j], cx, cy, radius, msra, msra_sigma, p32)
            if write_hm_hp and not (ignore_occluded_in_hm_hp and v == 1):
                put_point(hm_hp, draws, stats, 1, j, pix, piy, radius, msra, msra_sigma, p32,
                          patch_family)

        put_peak(hm, draws, stats, 0, cls, cx, cy, radius, msra, msra_sigma, elliptic_alpha, w,
                 h, p32, patch_family)
        if no_kps and no_keypoints == NOKPS_IGNORE and not already_peak:
            set_pixel(hm, draws, stats, 0, cls, cx, cy, 0.9999)

    if dense_hps_mask is not None:
        # element by element: an array-to-array slice copy makes numba compile its
        # shape-mismatch error message, seconds of string formatting code
        for j in range(J):
            for y in range(H):
                for x in range(W):
                    dense_hps_mask[2 * j + 1, y, x] = dense_hps_mask[2 * j, y, x]
    if rotated_quirk:
        set_all(hm, draws, stats, 0, 0.9999)
        reg_mask[:] = 0
        if write_hps:
            hps_mask[:, :] = 0


class MultiPoseEncoder(Encoder):
    """CenterNet multi-person pose targets from boxes and keypoints in output-map pixels.

    >>> enc = MultiPoseEncoder(MultiPoseConfig(output_size=(128, 128), num_joints=17))
    >>> t = enc.encode(boxes, keypoints)   # boxes (N, 4); keypoints (N, J, 3) x, y, v

    Returned keys: ``hm`` (C,H,W), ``reg_mask`` (M,), ``ind`` (M,), ``wh``
    (M,2), ``hps``/``hps_mask`` (M,2J) (or ``dense_hps``/``dense_hps_mask``
    (2J,H,W)), ``reg`` (M,2), ``hm_hp`` (J,H,W), ``hp_offset`` (M*J,2),
    ``hp_ind``/``hp_mask`` (M*J,).
    """

    config: MultiPoseConfig
    _config_type = MultiPoseConfig

    def encode(self, boxes: np.ndarray, keypoints: np.ndarray, classes: np.ndarray | None = None,
               *, rotated: bool = False,
               out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Targets for one sample; see :meth:`encode_with_report`."""
        return self.encode_with_report(boxes, keypoints, classes, rotated=rotated, out=out)[0]

    def encode_with_report(self, boxes: np.ndarray, keypoints: np.ndarray,
                           classes: np.ndarray | None = None, *, rotated: bool = False,
                           out: dict[str, np.ndarray] | None = None
                           ) -> tuple[dict[str, np.ndarray], EncodeReport]:
        """Targets for one sample, and an :class:`EncodeReport` of what was left out.

        Parameters
        ----------
        boxes : (N, 4) float, x1, y1, x2, y2 in output-map pixels.
        keypoints : (N, J, 3) float, x, y in output-map pixels and COCO
            visibility v (0 not labelled, 1 occluded, 2 visible).
        classes : (N,) int, or None when ``num_classes == 1``.
        rotated : the sample was rotated.  With ``rotation="centernet"`` this
            reproduces upstream: degenerate boxes are still encoded, ``hm`` is
            0.9999 everywhere and ``reg_mask``/``hps_mask`` are zeroed.
            Ignored with ``rotation="corners"``.
        out : optional dict of preallocated buffers, zeroed and filled.
        """
        return self.encode_annotations(Annotations(boxes, classes, keypoints, bool(rotated)),
                                       out=out)

    def _checked(self, annotations: Annotations) -> Annotations:
        """Boxes, keypoints and classes checked; no keypoints means all unlabelled."""
        a, cfg = annotations, self.config
        b = check_boxes(a.boxes)
        kps = a.keypoints if a.keypoints is not None else \
            np.zeros((len(b), cfg.num_joints, 3), np.float32)
        return Annotations(b, check_classes(a.classes, len(b), cfg.num_classes),
                           check_keypoints(kps, len(b), cfg.num_joints), bool(a.rotated))

    def _run(self, a: Annotations, t: dict[str, np.ndarray], stats: np.ndarray,
             status: np.ndarray) -> None:
        cfg = self.config
        off = self._off
        call_kernel(encode_multi_pose, boxes=a.boxes, classes=a.classes, kps=a.keypoints,
              **self._heat,
              no_keypoints=NOKPS_IGNORE if cfg.no_keypoints == "ignore" else NOKPS_CENTERNET,
              ignore_occluded_in_hm_hp=cfg.occluded_joints == "ignore_in_hm_hp",
              rotated_quirk=bool(a.rotated) and cfg.rotation == "centernet",
              hm=self._map(t, "hm"), wh=t["wh"], reg=t.get("reg", off["f2"]), ind=t["ind"],
              reg_mask=t["reg_mask"], hps=t.get("hps", off["f2"]),
              hps_mask=t.get("hps_mask", off["u2"]), hm_hp=t["hm_hp"] if "hm_hp" in t else
              self._sparse_maps.get("hm_hp", off["f3"]),
              hp_offset=t.get("hp_offset", off["f2"]), hp_ind=t.get("hp_ind", off["i1"]),
              hp_mask=t.get("hp_mask", off["i1"]), dense_hps=t.get("dense_hps"),
              dense_hps_mask=t.get("dense_hps_mask"),
              write_reg="reg" in t, write_hps="hps" in t, write_hm_hp=cfg.hm_hp,
              write_hp_offset="hp_offset" in t, draws=t.get("draws"), stats=stats,
              status=status)


class MultiPoseUnit(TaskUnit):
    name = "multi_pose"
    config_type = MultiPoseConfig
    encoder_type = MultiPoseEncoder
    loss = "centertargets.losses.centernet:MultiPoseLoss"
    decoder = "centertargets.decode:MultiPoseDecoder"
    decode_kinds = ("multi_pose_decode",)
    specificity = 1
    train_filter = True

    def fits(self, coco: "CocoDataset") -> bool:
        return bool(coco.num_joints)

    def config_for_coco(self, coco: "CocoDataset", output_size: tuple[int, int],
                        max_objs: int | None = None) -> MultiPoseConfig:
        if not coco.num_joints:
            raise ValueError("--task multi_pose: the file has no keypoints (expected a "
                             "'keypoints' list in its person category or annotations)")
        return MultiPoseConfig(output_size=output_size, num_joints=coco.num_joints,
                               num_classes=max(coco.num_classes, 1), max_objs=max_objs or 32)

    def adapt(self, config: Any, coco: "CocoDataset") -> MultiPoseConfig:
        if coco.num_joints != config.num_joints:
            raise ValueError(f"the COCO file has {coco.num_joints} keypoints per person: "
                             f"expected config.num_joints={config.num_joints}")
        if config.flip_idx is None:
            config = config.replace(flip_idx=coco.flip_idx)
        return super().adapt(config, coco)

    def prepared(self, image: "ImageAnnotations", params: "AugmentParams",
                 output_size: tuple[int, int], config: Any) -> Annotations:
        boxes, kps = annotations_to_output(
            image.boxes_xywh, image.width, params, output_size, keypoints=image.keypoints,
            flip_idx=config.flip_idx or (), rotation=config.rotation)
        return Annotations(boxes, np.array(image.classes, np.int64), kps, params.rot != 0)

    def audit_rows(self, totals: Mapping[str, int]) -> list[tuple[str, int, str]]:
        return [("  persons without keypoints", totals.get("no_keypoints", 0), "objects"),
                ("labelled keypoints", totals.get("keypoints_labelled", 0), ""),
                ("  outside the output map", totals.get("keypoints_outside", 0), "keypoints")]

    def config_from_meta(self, meta: Mapping[str, Any], common: dict[str, Any]
                         ) -> MultiPoseConfig:
        opts = meta.get("options", {})
        return MultiPoseConfig(
            num_joints=int(meta["num_joints"]), hm_hp=bool(opts.get("hm_hp", True)),
            reg_hp_offset=bool(opts.get("reg_hp_offset", True)),
            dense_hp=bool(opts.get("dense_hp", False)),
            flip_idx=tuple(tuple(p) for p in meta.get("flip_idx", ())), **common)

    def loss_fixture_meta(self, targets: Mapping[str, np.ndarray]) -> dict[str, Any]:
        J = (targets["hps"].shape[2] if "hps" in targets else
             targets["dense_hps"].shape[1]) // 2
        return dict(super().loss_fixture_meta(targets), num_joints=J,
                    flip_idx=[] if J != 17 else [list(p) for p in COCO_FLIP_IDX])

    def fixture_classes(self, meta: Mapping[str, Any]) -> tuple[list[dict[str, Any]],
                                                               list[int] | None]:
        names = [f"joint_{j}" for j in range(int(meta["num_joints"]))]
        return [{"id": 1, "name": "person", "keypoints": names}], None

    def decode_fixture(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                       ) -> tuple[Any, dict[str, np.ndarray]]:
        from ..decode import MultiPoseDecoder

        B, C, H, W = arrays["heat"].shape
        cfg = MultiPoseConfig(output_size=(W, H), num_classes=C, reg_offset="reg" in arrays,
                              num_joints=arrays["kps"].shape[1] // 2, flip_idx=(),
                              hm_hp=bool(meta.get("hm_hp", False)),
                              reg_hp_offset=bool(meta.get("hp_offset", False)))
        heads = {"hm": arrays["heat"], "wh": arrays["wh"], "reg": arrays.get("reg"),
                 "hps": arrays["kps"], "hm_hp": arrays.get("hm_hp"),
                 "hp_offset": arrays.get("hp_offset")}
        return MultiPoseDecoder(cfg, K=int(meta["K"]), apply_sigmoid=False), heads


register(MultiPoseUnit())
