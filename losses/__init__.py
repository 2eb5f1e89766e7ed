"""Torch side of centertargets: CenterNet's losses, built from the encoders' configs.

Functional first (:mod:`losses.functional`), thin modules second
(:mod:`losses.modules`), and the task losses :class:`CtdetLoss` /
:class:`MultiPoseLoss` that take the same config as the encoder.
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError("losses needs torch, which is not installed: pip install "
                      "'centertargets[torch]' (or pip install torch==2.13.0 for the CPU "
                      "wheel first)") from exc

from . import functional
from .centernet import CtdetLoss, LossOptions, MultiPoseLoss, make_loss
from .ddd import DddDecoder, DddLoss, ddd_decode, ddd_post_process
from .exdet import ExdetDecoder, ExdetLoss, agnex_ct_decode, exct_decode
from .heads import CenterNetHeads, build_heads
from .tracking import GenericLoss, TrackingDecoder, generic_decode
from .modules import (CenterNetFocalLossWithLogits, DenseL1Loss, FastFocalLoss, FocalLoss,
                      FocalLossWithLogits, MSELoss, NormRegL1Loss, RegL1Loss, RegLoss,
                      RegWeightedL1Loss)

__all__ = [
    "functional", "CtdetLoss", "MultiPoseLoss", "ExdetLoss", "ExdetDecoder", "exct_decode",
    "agnex_ct_decode", "DddLoss", "DddDecoder", "ddd_decode", "ddd_post_process",
    "build_heads", "CenterNetHeads", "GenericLoss", "TrackingDecoder", "generic_decode", "LossOptions", "make_loss", "FocalLoss",
    "CenterNetFocalLossWithLogits", "FocalLossWithLogits", "FastFocalLoss", "RegL1Loss",
    "RegWeightedL1Loss", "NormRegL1Loss", "RegLoss", "DenseL1Loss", "MSELoss",
]
