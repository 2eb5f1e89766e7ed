"""Torch side of centertargets: CenterNet's losses, built from the encoders' configs.

Installed as :mod:`centertargets.losses` (from the repository's top-level ``losses/``
folder): ``from centertargets.losses import MultiPoseLoss``.  Functional first
(:mod:`centertargets.losses.functional`), thin modules second
(:mod:`centertargets.losses.modules`), the heads (:func:`build_heads`), and each task's
loss and decoder, taking the same config as its encoder.
"""

import sys as _sys

if __name__ != "centertargets.losses":
    # Imported as plain ``losses`` (the repository root on sys.path): an alias of
    # centertargets.losses, so that both names give the same classes (isinstance holds).
    import importlib as _importlib

    _importlib.import_module("centertargets.losses")
    for _name, _module in list(_sys.modules.items()):
        if _name == "centertargets.losses" or _name.startswith("centertargets.losses."):
            _sys.modules[__name__ + _name[len("centertargets.losses"):]] = _module
else:
    try:
        import torch  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
        raise ImportError("centertargets.losses needs torch, which is not installed: pip install "
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
        "build_heads", "CenterNetHeads", "GenericLoss", "TrackingDecoder", "generic_decode",
        "LossOptions", "make_loss", "FocalLoss",
        "CenterNetFocalLossWithLogits", "FocalLossWithLogits", "FastFocalLoss", "RegL1Loss",
        "RegWeightedL1Loss", "NormRegL1Loss", "RegLoss", "DenseL1Loss", "MSELoss",
    ]
