"""Thin ``nn.Module`` wrappers over :mod:`losses.functional` (CenterNet's class names).

The gathered regression losses take ``(output, mask, ind, target)`` like
CenterNet's: ``output`` the network map (B, D, H, W), ``ind`` (B, M),
``target`` (B, M, D), and the mask per object (B, M) or per coordinate (B, M, D).
"""

from __future__ import annotations

from torch import Tensor, nn

from . import functional as LF


class FocalLoss(nn.Module):
    """CenterNet's focal loss on probabilities (``pred`` already clamped-sigmoided)."""

    def __init__(self, alpha: float = 2.0, beta: float = 4.0, distributed: bool = False) -> None:
        super().__init__()
        self.alpha, self.beta, self.distributed = alpha, beta, distributed

    def forward(self, pred: Tensor, gt: Tensor) -> Tensor:
        return LF.focal_loss(pred, gt, self.alpha, self.beta, self.distributed)


class CenterNetFocalLossWithLogits(FocalLoss):
    """Fused ``FocalLoss()(clamped_sigmoid(logits), gt)``: same value, lighter."""

    def forward(self, logits: Tensor, gt: Tensor) -> Tensor:
        return LF.centernet_focal_loss_with_logits(logits, gt, self.alpha, self.beta,
                                                   self.distributed)


class FocalLossWithLogits(FocalLoss):
    """Log-sigmoid focal loss on logits, no clamp, finite for any logit."""

    def forward(self, logits: Tensor, gt: Tensor) -> Tensor:
        return LF.focal_loss_with_logits(logits, gt, self.alpha, self.beta,
                                         distributed=self.distributed)


class FastFocalLoss(FocalLoss):
    """Focal loss with positives read at ``(cat, ind)`` where ``mask`` is 1."""

    def forward(self, logits: Tensor, gt: Tensor, ind: Tensor, mask: Tensor,
                cat: Tensor | None = None) -> Tensor:
        return LF.fast_focal_loss_with_logits(logits, gt, ind, mask, cat, self.alpha, self.beta,
                                              self.distributed)


class _GatheredLoss(nn.Module):
    """Read ``output`` (B, D, H, W) at ``ind`` (B, M), then apply ``loss(pred, target, mask)``."""

    loss = staticmethod(LF.reg_l1_loss)

    def forward(self, output: Tensor, mask: Tensor, ind: Tensor, target: Tensor) -> Tensor:
        return type(self).loss(LF.transpose_and_gather(output, ind), target, mask)


class RegL1Loss(_GatheredLoss):
    """L1 at ``ind`` with a per-object mask; divided by 2 x objects (D = 2)."""

    loss = staticmethod(LF.reg_l1_loss)


class RegWeightedL1Loss(_GatheredLoss):
    """L1 at ``ind`` with a per-coordinate mask (``hps_mask``, ``cat_spec_mask``)."""

    loss = staticmethod(LF.reg_weighted_l1_loss)


class NormRegL1Loss(_GatheredLoss):
    """Relative L1 at ``ind`` (``--norm_wh``)."""

    loss = staticmethod(LF.norm_reg_l1_loss)


class RegLoss(_GatheredLoss):
    """Smooth-L1 at ``ind`` (``--reg_loss sl1``); divided by objects."""

    loss = staticmethod(LF.reg_smooth_l1_loss)


class DenseL1Loss(nn.Module):
    """Masked dense L1 of ``dense_wh`` / ``dense_hps``, divided by the mask's sum."""

    def forward(self, output: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        return LF.dense_l1_loss(output, target, mask)


class MSELoss(nn.Module):
    """Mean squared error for MSRA heatmaps."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return LF.mse_loss(pred, target)
