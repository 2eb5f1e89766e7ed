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

from centertargets.config import CtdetConfig, MultiPoseConfig

from . import functional as LF


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
    reg_loss : ``"l1"`` (RegL1Loss) or ``"sl1"`` (smooth-L1 RegLoss) for wh/reg.
    norm_wh : relative L1 for ``wh`` (ctdet only).
    focal : ``"centernet"`` (exactly CenterNet's clamped-sigmoid focal loss,
        fused), ``"logits"`` (log-sigmoid, no clamp), or ``"fast"`` (positives
        from ``ind``/``reg_mask``; equal on targets without centre collisions).
    distributed : normalise by the positive count summed over DDP ranks.
    """

    hm_weight: float = 1.0
    wh_weight: float = 0.1
    off_weight: float = 1.0
    hp_weight: float = 1.0
    hm_hp_weight: float = 1.0
    reg_loss: Literal["l1", "sl1"] = "l1"
    norm_wh: bool = False
    focal: Literal["centernet", "logits", "fast"] = "centernet"
    distributed: bool = False

    def __post_init__(self) -> None:
        for name in ("hm_weight", "wh_weight", "off_weight", "hp_weight", "hm_hp_weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0:
                raise ValueError(f"LossOptions.{name}={v!r}: expected a finite number >= 0")
        if self.reg_loss not in ("l1", "sl1"):
            raise ValueError(f"LossOptions.reg_loss={self.reg_loss!r}: expected 'l1' or 'sl1'")
        if self.focal not in ("centernet", "logits", "fast"):
            raise ValueError(f"LossOptions.focal={self.focal!r}: expected 'centernet', "
                             "'logits' or 'fast'")


Outputs = Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]]


class _CenterNetLoss(nn.Module):
    config: CtdetConfig | MultiPoseConfig
    _config_type: type = object

    def __init__(self, config: CtdetConfig | MultiPoseConfig,
                 options: LossOptions | None = None) -> None:
        if not isinstance(config, self._config_type):
            raise TypeError(f"config is {type(config).__name__}: expected a "
                            f"{self._config_type.__name__}")
        super().__init__()
        self.config = config
        self.options = options or LossOptions()
        self._spec = config.spec()
        if self.options.focal == "fast" and config.num_classes > 1 and not config.with_cat:
            raise ValueError("LossOptions.focal='fast' with num_classes="
                             f"{config.num_classes}: expected the config to have "
                             "with_cat=True (the fast loss reads each object's class from 'cat')")

    # -- checks ---------------------------------------------------------------------------------
    def check_batch(self, batch: Mapping[str, Tensor], needed: Sequence[str]) -> int:
        """Check ``batch`` holds every needed target with the config's shape; returns B."""
        cfg = self.config
        B = None
        for name in needed:
            if name not in batch:
                raise ValueError(f"batch has no {name!r}: expected it from {_describe(cfg)} "
                                 f"(batch keys: {sorted(batch)})")
            t = batch[name]
            want = self._spec[name].shape
            if not isinstance(t, Tensor) or tuple(t.shape[1:]) != want or \
                    (B is not None and t.shape[0] != B):
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"batch[{name!r}] has shape {got}: expected (B, "
                                 f"{', '.join(map(str, want))}) from {_describe(cfg)}")
            B = t.shape[0]
        return int(B or 0)

    def check_output(self, output: Mapping[str, Tensor], name: str, channels: int, B: int) -> Tensor:
        """The head ``name`` of ``output``, checked to be (B, channels, H, W)."""
        W, H = self.config.output_size
        if name not in output:
            raise ValueError(f"outputs has no head {name!r}: expected it from "
                             f"{_describe(self.config)} (heads: {sorted(output)})")
        t = output[name]
        if tuple(t.shape) != (B, channels, H, W):
            raise ValueError(f"outputs[{name!r}] has shape {tuple(t.shape)}: expected "
                             f"{(B, channels, H, W)} from {_describe(self.config)}")
        return t

    # -- pieces ---------------------------------------------------------------------------------
    def _focal(self, logits: Tensor, gt: Tensor, ind: Tensor | None = None,
               mask: Tensor | None = None, cat: Tensor | None = None) -> Tensor:
        o = self.options
        if o.focal == "logits":
            return LF.focal_loss_with_logits(logits, gt, distributed=o.distributed)
        if o.focal == "fast" and ind is not None and mask is not None:
            return LF.fast_focal_loss_with_logits(logits, gt, ind, mask, cat,
                                                  distributed=o.distributed)
        return LF.centernet_focal_loss_with_logits(logits, gt, distributed=o.distributed)

    def _centre_offset(self, out: Mapping[str, Tensor], batch: Mapping[str, Tensor],
                       B: int) -> Tensor:
        """``off_loss`` of one stack: the ``reg`` head at ``ind`` vs ``reg``, per-object mask."""
        reg = self.check_output(out, "reg", 2, B)
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
        stacks = list(outputs)
        if not stacks:
            raise ValueError("outputs is an empty sequence: expected a dict of heads or "
                             "one dict per stack")
        return stacks


def _describe(cfg: CtdetConfig | MultiPoseConfig) -> str:
    extra = f", num_joints={cfg.num_joints}" if isinstance(cfg, MultiPoseConfig) else ""
    return (f"{type(cfg).__name__}(output_size={cfg.output_size}, num_classes={cfg.num_classes}, "
            f"max_objs={cfg.max_objs}{extra})")


def _zero(ref: Tensor) -> Tensor:
    return torch.zeros((), dtype=torch.float32, device=ref.device)


class CtdetLoss(_CenterNetLoss):
    """CenterNet's ``CtdetLoss``: ``hm_w * hm + wh_w * wh + off_w * off``.

    ``forward(outputs, batch) -> (loss, stats)`` with ``outputs`` a dict of head
    logits (``hm`` (B,C,H,W), ``wh`` (B,2 or 2C,H,W), ``reg`` (B,2,H,W)) or a
    list of such dicts (one per stack, averaged), ``batch`` the collated
    targets; ``stats`` has CenterNet's names ``loss, hm_loss, wh_loss,
    off_loss`` (0-d tensors).
    """

    config: CtdetConfig
    _config_type = CtdetConfig

    def forward(self, outputs: Outputs, batch: Mapping[str, Tensor]
                ) -> tuple[Tensor, dict[str, Tensor]]:
        cfg, o = self.config, self.options
        use_wh = o.wh_weight > 0
        use_off = cfg.reg_offset and o.off_weight > 0
        needed = ["hm", "ind", "reg_mask"] + (["cat"] if cfg.with_cat else [])
        if use_wh:
            needed += ["dense_wh", "dense_wh_mask"] if cfg.dense_wh else \
                ["cat_spec_wh", "cat_spec_mask"] if cfg.cat_spec_wh else ["wh"]
        if use_off:
            needed.append("reg")
        B = self.check_batch(batch, needed)
        stacks = self._stacks(outputs)
        n = len(stacks)
        hm_t = batch["hm"]
        hm_loss = wh_loss = off_loss = _zero(hm_t)
        C = cfg.num_classes
        for out in stacks:
            hm = self.check_output(out, "hm", C, B)
            if cfg.heatmap == "msra":
                hm_loss = hm_loss + LF.mse_loss(hm, hm_t) / n
            else:
                hm_loss = hm_loss + self._focal(hm, hm_t, batch["ind"], batch["reg_mask"],
                                                batch.get("cat")) / n
            if use_wh:
                wh = self.check_output(out, "wh", 2 * C if cfg.cat_spec_wh else 2, B)
                if cfg.dense_wh:
                    wh_loss = wh_loss + LF.dense_l1_loss(wh, batch["dense_wh"],
                                                         batch["dense_wh_mask"]) / n
                elif o.norm_wh:
                    wh_loss = wh_loss + LF.norm_reg_l1_loss(
                        LF.transpose_and_gather(wh, batch["ind"]), batch["wh"],
                        batch["reg_mask"]) / n
                elif cfg.cat_spec_wh:
                    wh_loss = wh_loss + LF.reg_weighted_l1_loss(
                        LF.transpose_and_gather(wh, batch["ind"]), batch["cat_spec_wh"],
                        batch["cat_spec_mask"]) / n
                else:
                    wh_loss = wh_loss + self._reg(wh, batch["reg_mask"], batch["ind"],
                                                  batch["wh"]) / n
            if use_off:
                off_loss = off_loss + self._centre_offset(out, batch, B) / n
        loss = o.hm_weight * hm_loss + o.wh_weight * wh_loss + o.off_weight * off_loss
        return loss, {"loss": loss, "hm_loss": hm_loss, "wh_loss": wh_loss, "off_loss": off_loss}


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
    ``forward(outputs, batch) -> (loss, stats)``.
    """

    config: MultiPoseConfig
    _config_type = MultiPoseConfig

    def forward(self, outputs: Outputs, batch: Mapping[str, Tensor]
                ) -> tuple[Tensor, dict[str, Tensor]]:
        cfg, o = self.config, self.options
        J = cfg.num_joints
        use_wh = o.wh_weight > 0
        use_off = cfg.reg_offset and o.off_weight > 0
        use_hp_off = cfg.reg_hp_offset and o.off_weight > 0
        use_hm_hp = cfg.hm_hp and o.hm_hp_weight > 0
        needed = ["hm", "ind", "reg_mask"] + (["cat"] if cfg.with_cat else [])
        needed += ["dense_hps", "dense_hps_mask"] if cfg.dense_hp else ["hps", "hps_mask"]
        if use_wh:
            needed.append("wh")
        if use_off:
            needed.append("reg")
        if use_hp_off:
            needed += ["hp_offset", "hp_ind", "hp_mask"]
        if use_hm_hp:
            needed.append("hm_hp")
        B = self.check_batch(batch, needed)
        stacks = self._stacks(outputs)
        n = len(stacks)
        z = _zero(batch["hm"])
        hm_loss = wh_loss = off_loss = hp_loss = hm_hp_loss = hp_offset_loss = z
        for out in stacks:
            hm = self.check_output(out, "hm", cfg.num_classes, B)
            hm_loss = hm_loss + self._focal(hm, batch["hm"], batch["ind"], batch["reg_mask"],
                                            batch.get("cat")) / n
            hps = self.check_output(out, "hps", 2 * J, B)
            if cfg.dense_hp:
                hp_loss = hp_loss + LF.dense_l1_loss(hps, batch["dense_hps"],
                                                     batch["dense_hps_mask"]) / n
            else:
                hp_loss = hp_loss + LF.reg_weighted_l1_loss(
                    LF.transpose_and_gather(hps, batch["ind"]), batch["hps"],
                    batch["hps_mask"]) / n
            if use_wh:
                wh = self.check_output(out, "wh", 2, B)
                wh_loss = wh_loss + self._reg(wh, batch["reg_mask"], batch["ind"],
                                              batch["wh"]) / n
            if use_off:
                off_loss = off_loss + self._centre_offset(out, batch, B) / n
            if use_hp_off:
                hpo = self.check_output(out, "hp_offset", 2, B)
                hp_offset_loss = hp_offset_loss + self._reg(hpo, batch["hp_mask"],
                                                            batch["hp_ind"],
                                                            batch["hp_offset"]) / n
            if use_hm_hp:
                hm_hp = self.check_output(out, "hm_hp", J, B)
                if cfg.heatmap == "msra":
                    hm_hp_loss = hm_hp_loss + LF.mse_loss(hm_hp, batch["hm_hp"]) / n
                else:
                    hm_hp_loss = hm_hp_loss + self._focal(hm_hp, batch["hm_hp"]) / n
        loss = (o.hm_weight * hm_loss + o.wh_weight * wh_loss + o.off_weight * off_loss
                + o.hp_weight * hp_loss + o.hm_hp_weight * hm_hp_loss
                + o.off_weight * hp_offset_loss)
        return loss, {"loss": loss, "hm_loss": hm_loss, "hp_loss": hp_loss,
                      "hm_hp_loss": hm_hp_loss, "hp_offset_loss": hp_offset_loss,
                      "wh_loss": wh_loss, "off_loss": off_loss}


def make_loss(config: CtdetConfig | MultiPoseConfig,
              options: LossOptions | None = None) -> CtdetLoss | MultiPoseLoss:
    """The loss module for ``config``'s task."""
    if isinstance(config, MultiPoseConfig):
        return MultiPoseLoss(config, options)
    return CtdetLoss(config, options)
