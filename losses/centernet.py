"""``CtdetLoss`` and ``MultiPoseLoss`` built from the encoder's config.

The same :class:`~centertargets.CtdetConfig` / :class:`~centertargets.MultiPoseConfig`
that built the targets builds the loss, which checks every batch against the
config's ``spec()``: a target missing or of the wrong shape fails with a
message naming it, so an encoder and a loss from different configs cannot be
combined silently.  Heads the config turns off are neither required nor
computed (their stat is 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor, nn

from centertargets._warn import warn
from centertargets.spec import check_head
from centertargets.tasks import CtdetConfig, MultiPoseConfig, unit_of

from . import functional as LF


FocalKind = Literal["centernet", "logits", "fast"]
_FOCAL_KINDS = ("centernet", "logits", "fast")


@dataclass(frozen=True)
class LossOptions:
    """Loss weights and choices; defaults are CenterNet's.

    Attributes
    ----------
    hm_weight : centre heatmap focal loss (1).
    wh_weight : box size L1 (0.1: sizes are in pixels, tens of them, while
        the other terms are of order 1; 0 skips the term).
    off_weight : centre offset ``reg`` and joint offset ``hp_offset`` L1 (1).
    hp_weight : joint vector ``hps`` L1 (1).
    hm_hp_weight : joint heatmap focal loss (1).
    dep_weight, dim_weight, rot_weight : ddd's depth, dimension and orientation
        losses (1 each).
    l1_mean : ddd's ``L1Loss``: ``"elements"`` (upstream: the masked differences
        averaged over every element, supervised or not, so the value shrinks
        with ``max_objs``) or ``"masked"`` (averaged over the supervised ones).
    reg_loss : ``"l1"`` (RegL1Loss) or ``"sl1"`` (smooth-L1 RegLoss) for
        ``wh``, ``reg`` and ``hp_offset``.
    norm_wh : relative L1 ``|pred / (wh + 1e-4) - 1|`` for ``wh`` (ctdet only,
        with ``wh`` or ``cat_spec_wh``; upstream's ``--norm_wh`` does nothing
        without ``--cat_spec_wh`` and crashes with it).
    focal : the focal loss of ``hm``: ``"centernet"`` (exactly CenterNet's
        clamped-sigmoid focal loss, fused), ``"logits"`` (log-sigmoid, no
        clamp), or ``"fast"`` (positives read at ``ind``/``reg_mask``/``cat``
        instead of searched for in the map; equal when no two objects share
        a centre pixel).
    focal_hm_hp : the focal loss of ``hm_hp``; ``None`` (default) means the
        same as ``focal``.  ``"fast"`` reads the joint positives at
        ``hp_ind``/``hp_mask`` (joint j of slot ``k * J + j``); it needs
        ``reg_hp_offset=True`` and ``occluded_joints="centernet"``, and equals
        the standard loss when no two joints of one type share a pixel.
    distributed : normalise the focal losses by the positive count summed
        over DDP ranks.

    Every loss value is summed in float64 (the terms are float32), so the
    number logged is the same on every CPU and thread count.
    """

    hm_weight: float = 1.0
    wh_weight: float = 0.1
    off_weight: float = 1.0
    hp_weight: float = 1.0
    hm_hp_weight: float = 1.0
    dep_weight: float = 1.0
    dim_weight: float = 1.0
    rot_weight: float = 1.0
    reg_loss: Literal["l1", "sl1"] = "l1"
    l1_mean: Literal["elements", "masked"] = "elements"
    norm_wh: bool = False
    focal: FocalKind = "centernet"
    focal_hm_hp: FocalKind | None = None
    distributed: bool = False

    def __post_init__(self) -> None:
        for name in ("hm_weight", "wh_weight", "off_weight", "hp_weight", "hm_hp_weight",
                     "dep_weight", "dim_weight", "rot_weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0:
                raise ValueError(f"LossOptions.{name}={v!r}: expected a finite number >= 0")
        if self.l1_mean not in ("elements", "masked"):
            raise ValueError(f"LossOptions.l1_mean={self.l1_mean!r}: expected 'elements' or "
                             "'masked'")
        if self.reg_loss not in ("l1", "sl1"):
            raise ValueError(f"LossOptions.reg_loss={self.reg_loss!r}: expected 'l1' or 'sl1'")
        if self.focal not in _FOCAL_KINDS:
            raise ValueError(f"LossOptions.focal={self.focal!r}: expected 'centernet', "
                             "'logits' or 'fast'")
        if self.focal_hm_hp is not None and self.focal_hm_hp not in _FOCAL_KINDS:
            raise ValueError(f"LossOptions.focal_hm_hp={self.focal_hm_hp!r}: expected None "
                             "(same as focal), 'centernet', 'logits' or 'fast'")
        for name in ("norm_wh", "distributed"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"LossOptions.{name}={getattr(self, name)!r}: expected True "
                                 "or False")

    @property
    def hm_hp_focal(self) -> FocalKind:
        """The focal variant actually used for ``hm_hp``."""
        return self.focal_hm_hp if self.focal_hm_hp is not None else self.focal


Outputs = Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]]


class _CenterNetLoss(nn.Module):
    config: CtdetConfig | MultiPoseConfig
    _config_type: type = object
    #: Whether ``LossOptions.focal="fast"`` applies (exdet and ddd: no).
    _fast_focal: bool = True

    def __init__(self, config: CtdetConfig | MultiPoseConfig,
                 options: LossOptions | None = None) -> None:
        if not isinstance(config, self._config_type):
            raise TypeError(f"config is {type(config).__name__}: expected a "
                            f"{self._config_type.__name__}")
        if options is not None and not isinstance(options, LossOptions):
            raise TypeError(f"options is {type(options).__name__}: expected LossOptions")
        if not self._fast_focal and options is not None and options.focal == "fast":
            raise ValueError(f"LossOptions.focal='fast' with {type(config).__name__}: expected "
                             "'centernet' or 'logits' (the fast loss reads the positives at "
                             "'ind', and this task's heatmaps have peaks it does not index)")
        super().__init__()
        self.config = config
        self.options = options or LossOptions()
        self._spec = config.dense_spec()
        self.heads = config.head_spec()
        self._warned_probabilities = False
        self._warned_stuck = False
        if self.options.focal == "fast" and config.num_classes > 1 and not config.with_cat:
            raise ValueError("LossOptions.focal='fast' with num_classes="
                             f"{config.num_classes}: expected the config to have "
                             "with_cat=True (the fast loss reads each object's class from 'cat')")

    # -- checks ---------------------------------------------------------------------------------
    def rendered(self, batch: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
        """``batch`` with sparse heatmaps (``draws``, from ``heatmaps="sparse"``) rendered on
        their device (:func:`centertargets.device.dense_targets`); a dense batch as it is."""
        from centertargets.device import dense_targets

        return dense_targets(batch, self.config)

    def check_batch(self, batch: Mapping[str, Tensor], needed: Sequence[str]) -> int:
        """Check ``batch`` holds every needed target with the config's shape; returns B."""
        cfg = self.config
        if not isinstance(batch, Mapping):
            raise TypeError(f"batch is {type(batch).__name__}: expected a dict of target "
                            "tensors (a collated DataLoader batch)")
        B = None
        for name in needed:
            if name not in batch:
                raise ValueError(f"batch has no {name!r}: expected it from {cfg.describe()} "
                                 f"(batch keys: {sorted(batch)})")
            t = batch[name]
            want = self._spec[name].shape
            if isinstance(t, Tensor) and tuple(t.shape[1:]) == want and B is not None and \
                    t.shape[0] != B:
                sizes = {n: tuple(batch[n].shape)[0] for n in needed
                         if isinstance(batch.get(n), Tensor) and batch[n].dim() > 0}
                raise ValueError(f"batch sizes differ: {sizes}: expected one batch size for "
                                 "every target")
            if not isinstance(t, Tensor) or tuple(t.shape[1:]) != want:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"batch[{name!r}] has shape {got}: expected "
                                 f"({'B' if B is None else B}, {', '.join(map(str, want))}) "
                                 f"from {cfg.describe()}")
            B = t.shape[0]
        if B == 0:
            raise ValueError("batch holds 0 samples: expected at least one (B >= 1)")
        return int(B or 0)

    def check_output(self, output: Mapping[str, Tensor], name: str, B: int) -> Tensor:
        """The head ``name`` of ``output``, checked against the config's :class:`HeadSpec`."""
        return check_head(output, self.heads[name], B, self.config.describe())

    # -- pieces ---------------------------------------------------------------------------------
    def _focal(self, name: str, logits: Tensor, gt: Tensor, ind: Tensor | None = None,
               mask: Tensor | None = None, cat: Tensor | None = None) -> Tensor:
        """The focal loss of heatmap head ``name`` with the variant the options choose for it."""
        o = self.options
        kind = o.hm_hp_focal if name == "hm_hp" else o.focal
        self._warn_if_probabilities(name, logits)
        if name == "hm" and ind is not None and mask is not None:
            self._warn_if_stuck(logits, ind, mask)
        if kind == "logits":
            return LF.focal_loss_with_logits(logits, gt, distributed=o.distributed)
        if kind == "fast":
            assert ind is not None and mask is not None
            return LF.fast_focal_loss_with_logits(logits, gt, ind, mask, cat,
                                                  distributed=o.distributed)
        return LF.centernet_focal_loss_with_logits(logits, gt, distributed=o.distributed)

    def _warn_if_stuck(self, logits: Tensor, ind: Tensor, mask: Tensor) -> None:
        if not self._warned_stuck and LF.positives_at_floor(logits, ind, mask):
            self._warned_stuck = True
            warn(LF.STUCK_MESSAGE, RuntimeWarning)

    def _warn_if_probabilities(self, name: str, logits: Tensor) -> None:
        if not self._warned_probabilities and LF.looks_like_probabilities(logits):
            self._warned_probabilities = True
            warn(f"outputs[{name!r}] lies entirely in [0, 1]: the losses take logits, "
                          "so a sigmoid applied in the model is applied twice. Return the raw "
                          "head output (this warning is shown once per loss).")

    def _centre_offset(self, out: Mapping[str, Tensor], batch: Mapping[str, Tensor],
                       B: int) -> Tensor:
        """``off_loss`` of one stack: the ``reg`` head at ``ind`` vs ``reg``, per-object mask."""
        reg = self.check_output(out, "reg", B)
        return self._reg(reg, batch["reg_mask"], batch["ind"], batch["reg"])

    def _reg(self, output: Tensor, mask: Tensor, ind: Tensor, target: Tensor) -> Tensor:
        pred = LF.transpose_and_gather(output, ind)
        if self.options.reg_loss == "sl1":
            return LF.reg_smooth_l1_loss(pred, target, mask)
        return LF.reg_l1_loss(pred, target, mask)

    @staticmethod
    def _stacks(outputs: Outputs) -> list[Mapping[str, Tensor]]:
        if isinstance(outputs, Mapping):
            return [outputs]
        if isinstance(outputs, (str, bytes)) or not isinstance(outputs, Sequence):
            raise TypeError(f"outputs is {type(outputs).__name__}: expected a dict of head "
                            "tensors or a list of such dicts (one per stack)")
        stacks = list(outputs)
        if not stacks:
            raise ValueError("outputs is an empty sequence: expected a dict of heads or "
                             "one dict per stack")
        for i, st in enumerate(stacks):
            if not isinstance(st, Mapping):
                raise TypeError(f"outputs[{i}] is {type(st).__name__}: expected a dict of "
                                "head tensors")
        return stacks


def _detached(stats: dict[str, Tensor]) -> dict[str, Tensor]:
    """The stats to log: values without the graph (the loss itself is returned apart)."""
    return {k: v.detach() for k, v in stats.items()}


def _zero(ref: Tensor) -> Tensor:
    return torch.zeros((), dtype=torch.float32, device=ref.device)


class CtdetLoss(_CenterNetLoss):
    """CenterNet's ``CtdetLoss``: ``hm_w * hm + wh_w * wh + off_w * off``.

    ``forward(outputs, batch) -> (loss, stats)`` with ``outputs`` a dict of the
    heads in ``config.head_spec()`` (``hm`` (B, C, H, W) logits, ``wh`` (B, 2 or
    2C, H, W), ``reg`` (B, 2, H, W)) or a list of such dicts (one per stack,
    averaged), ``batch`` the collated targets (sparse heatmaps, ``draws``, are rendered
    first); ``stats`` has CenterNet's names ``loss, hm_loss, wh_loss, off_loss`` (0-d float32
    tensors).
    """

    config: CtdetConfig
    _config_type = CtdetConfig

    def __init__(self, config: CtdetConfig, options: LossOptions | None = None) -> None:
        super().__init__(config, options)
        if self.options.norm_wh and config.dense_wh:
            raise ValueError("LossOptions.norm_wh=True with CtdetConfig(dense_wh=True): expected "
                             "norm_wh=False (the relative size loss reads wh or cat_spec_wh at "
                             "ind; dense_wh is supervised by the dense L1)")

    def forward(self, outputs: Outputs, batch: Mapping[str, Tensor]
                ) -> tuple[Tensor, dict[str, Tensor]]:
        cfg, o = self.config, self.options
        batch = self.rendered(batch)
        use_wh = o.wh_weight > 0
        use_off = cfg.reg_offset and o.off_weight > 0
        needed = ["hm", "ind", "reg_mask"] + (["cat"] if cfg.with_cat else [])
        if use_wh:
            needed += list(self.heads["wh"].targets)
        if use_off:
            needed.append("reg")
        B = self.check_batch(batch, needed)
        stacks = self._stacks(outputs)
        n = len(stacks)
        hm_t = batch["hm"]
        hm_loss = wh_loss = off_loss = _zero(hm_t)
        for out in stacks:
            hm = self.check_output(out, "hm", B)
            if self.heads["hm"].loss == "mse":
                hm_loss = hm_loss + LF.mse_loss(hm, hm_t) / n
            else:
                hm_loss = hm_loss + self._focal("hm", hm, hm_t, batch["ind"], batch["reg_mask"],
                                                batch.get("cat")) / n
            if use_wh:
                wh_loss = wh_loss + self._wh(self.check_output(out, "wh", B), batch) / n
            if use_off:
                off_loss = off_loss + self._centre_offset(out, batch, B) / n
        loss = o.hm_weight * hm_loss + o.wh_weight * wh_loss + o.off_weight * off_loss
        return loss, _detached({"loss": loss, "hm_loss": hm_loss, "wh_loss": wh_loss,
                                "off_loss": off_loss})

    def _wh(self, wh: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """``wh_loss`` of one stack, by the config's size target and the options."""
        cfg = self.config
        if cfg.dense_wh:
            return LF.dense_l1_loss(wh, batch["dense_wh"], batch["dense_wh_mask"])
        if cfg.cat_spec_wh:
            pred = LF.transpose_and_gather(wh, batch["ind"])
            if self.options.norm_wh:
                return LF.norm_reg_l1_loss(pred, batch["cat_spec_wh"], batch["cat_spec_mask"])
            return LF.reg_weighted_l1_loss(pred, batch["cat_spec_wh"], batch["cat_spec_mask"])
        if self.options.norm_wh:
            return LF.norm_reg_l1_loss(LF.transpose_and_gather(wh, batch["ind"]), batch["wh"],
                                       batch["reg_mask"])
        return self._reg(wh, batch["reg_mask"], batch["ind"], batch["wh"])


class MultiPoseLoss(_CenterNetLoss):
    """CenterNet's ``MultiPoseLoss``: six terms, each reading its own targets.

    =================  =============================  ==========================  =========
    stat               output head vs target          mask (why)                  weight
    =================  =============================  ==========================  =========
    ``hm_loss``        ``hm`` vs ``hm`` (focal)       none: every pixel counts    hm (1)
    ``wh_loss``        ``wh`` at ``ind`` vs ``wh``    ``reg_mask`` per person     wh (0.1)
    ``off_loss``       ``reg`` at ``ind`` vs ``reg``  ``reg_mask`` per person     off (1)
    ``hp_loss``        ``hps`` at ``ind`` vs ``hps``  ``hps_mask`` per coordinate hp (1)
    ``hm_hp_loss``     ``hm_hp`` vs ``hm_hp`` (focal) none                        hm_hp (1)
    ``hp_offset_loss`` ``hp_offset`` at ``hp_ind``    ``hp_mask`` per joint       off (1)
    =================  =============================  ==========================  =========

    With ``heatmap="msra"`` (CenterNet's ``--mse_loss``) ``hm_hp`` uses MSE on the
    raw output (no sigmoid) while ``hm`` keeps the focal loss, as upstream; with
    ``dense_hp`` the joint term is the dense masked L1 of ``dense_hps``.
    ``forward(outputs, batch) -> (loss, stats)``; the heads are ``config.head_spec()``;
    sparse heatmaps in ``batch`` (``draws``) are rendered first.
    """

    config: MultiPoseConfig
    _config_type = MultiPoseConfig

    def __init__(self, config: MultiPoseConfig, options: LossOptions | None = None) -> None:
        super().__init__(config, options)
        o = self.options
        if o.norm_wh:
            raise ValueError("LossOptions.norm_wh=True with a MultiPoseConfig: expected False "
                             "(CenterNet's MultiPoseLoss has no relative size loss)")
        hm_hp_fast = config.hm_hp and config.heatmap != "msra" and o.hm_hp_focal == "fast"
        if hm_hp_fast and not config.reg_hp_offset:
            raise ValueError("LossOptions.focal='fast' for hm_hp with reg_hp_offset=False: the "
                             "fast loss reads joint positives at hp_ind/hp_mask, which this "
                             "config does not produce; expected focal_hm_hp='centernet' or "
                             "reg_hp_offset=True")
        if hm_hp_fast and config.occluded_joints != "centernet":
            raise ValueError("LossOptions.focal='fast' for hm_hp with occluded_joints="
                             f"{config.occluded_joints!r}: hp_mask marks occluded joints that "
                             "hm_hp leaves out, so the positives would be wrong; expected "
                             "focal_hm_hp='centernet' (or 'logits')")

    def forward(self, outputs: Outputs, batch: Mapping[str, Tensor]
                ) -> tuple[Tensor, dict[str, Tensor]]:
        cfg, o = self.config, self.options
        batch = self.rendered(batch)
        use_wh = o.wh_weight > 0
        use_off = cfg.reg_offset and o.off_weight > 0
        use_hp_off = cfg.reg_hp_offset and o.off_weight > 0
        use_hm_hp = cfg.hm_hp and o.hm_hp_weight > 0
        hm_hp_fast = use_hm_hp and self.heads["hm_hp"].loss == "focal" and o.hm_hp_focal == "fast"
        needed = ["hm", "ind", "reg_mask"] + (["cat"] if cfg.with_cat else [])
        needed += list(self.heads["hps"].targets)
        if use_wh:
            needed.append("wh")
        if use_off:
            needed.append("reg")
        if use_hp_off or hm_hp_fast:
            needed += ["hp_offset", "hp_ind", "hp_mask"]
        if use_hm_hp:
            needed.append("hm_hp")
        B = self.check_batch(batch, needed)
        stacks = self._stacks(outputs)
        n = len(stacks)
        z = _zero(batch["hm"])
        hm_loss = wh_loss = off_loss = hp_loss = hm_hp_loss = hp_offset_loss = z
        for out in stacks:
            hm = self.check_output(out, "hm", B)
            hm_loss = hm_loss + self._focal("hm", hm, batch["hm"], batch["ind"],
                                            batch["reg_mask"], batch.get("cat")) / n
            hps = self.check_output(out, "hps", B)
            if cfg.dense_hp:
                hp_loss = hp_loss + LF.dense_l1_loss(hps, batch["dense_hps"],
                                                     batch["dense_hps_mask"]) / n
            else:
                hp_loss = hp_loss + LF.reg_weighted_l1_loss(
                    LF.transpose_and_gather(hps, batch["ind"]), batch["hps"],
                    batch["hps_mask"]) / n
            if use_wh:
                wh = self.check_output(out, "wh", B)
                wh_loss = wh_loss + self._reg(wh, batch["reg_mask"], batch["ind"],
                                              batch["wh"]) / n
            if use_off:
                off_loss = off_loss + self._centre_offset(out, batch, B) / n
            if use_hp_off:
                hpo = self.check_output(out, "hp_offset", B)
                hp_offset_loss = hp_offset_loss + self._reg(hpo, batch["hp_mask"],
                                                            batch["hp_ind"],
                                                            batch["hp_offset"]) / n
            if use_hm_hp:
                hm_hp_loss = hm_hp_loss + self._joint_heatmaps(out, batch, B, hm_hp_fast) / n
        loss = (o.hm_weight * hm_loss + o.wh_weight * wh_loss + o.off_weight * off_loss
                + o.hp_weight * hp_loss + o.hm_hp_weight * hm_hp_loss
                + o.off_weight * hp_offset_loss)
        return loss, _detached({"loss": loss, "hm_loss": hm_loss, "hp_loss": hp_loss,
                                "hm_hp_loss": hm_hp_loss, "hp_offset_loss": hp_offset_loss,
                                "wh_loss": wh_loss, "off_loss": off_loss})

    def _joint_heatmaps(self, out: Mapping[str, Tensor], batch: Mapping[str, Tensor], B: int,
                        fast: bool) -> Tensor:
        """``hm_hp_loss`` of one stack: MSE (MSRA heatmaps) or the chosen focal variant."""
        hm_hp = self.check_output(out, "hm_hp", B)
        if self.heads["hm_hp"].loss == "mse":
            return LF.mse_loss(hm_hp, batch["hm_hp"])
        if not fast:
            return self._focal("hm_hp", hm_hp, batch["hm_hp"])
        hp_ind = batch["hp_ind"]
        J = self.config.num_joints
        joint = torch.arange(hp_ind.shape[1], device=hp_ind.device).remainder(J)  # slot k*J + j
        return self._focal("hm_hp", hm_hp, batch["hm_hp"], hp_ind, batch["hp_mask"],
                           joint.expand_as(hp_ind))


def make_loss(config: CtdetConfig | MultiPoseConfig,
              options: LossOptions | None = None) -> CtdetLoss | MultiPoseLoss:
    """The loss module of ``config``'s task (its unit names it)."""
    return unit_of(config).loss_class()(config, options)
