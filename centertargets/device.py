"""Colour augmentation and normalisation of a uint8 batch on the training device (torch).

With ``CenterNetDataset(..., input_dtype="uint8")`` the workers send the
warped image as CHW uint8, a quarter of the float32 input's bytes, and
:func:`normalize_batch` finishes the network input where the model runs,
with the same float32 arithmetic as the CPU path (the colour draws travel
in ``meta["color"]``).  Importing this module imports torch.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from .augment import COCO_EIG_VAL, COCO_EIG_VEC, COCO_MEAN_BGR, COCO_STD_BGR
from .kernels.image import GRAY_B, GRAY_G, GRAY_R

__all__ = ["normalize_batch"]

_CONTRAST, _SATURATION = 1, 2


def normalize_batch(inputs: torch.Tensor, meta: Mapping[str, Any],
                    mean: np.ndarray = COCO_MEAN_BGR, std: np.ndarray = COCO_STD_BGR,
                    eig_val: np.ndarray = COCO_EIG_VAL, eig_vec: np.ndarray = COCO_EIG_VEC
                    ) -> torch.Tensor:
    """The float32 network input (B, 3, H, W) of a uint8 batch, on ``inputs``' device.

    ``inputs``: (B, 3, H, W) uint8 BGR, the ``input`` of a batch from
    ``CenterNetDataset(..., input_dtype="uint8")`` (move it to the device
    first: ``batch["input"].cuda(non_blocking=True)``); ``meta``: that batch's
    ``meta`` (its ``color`` entry).  Per sample: ``x / 255``, the colour steps
    in the sample's order, the PCA lighting (added in float64), ``(x - mean)
    / std``: the CPU path's arithmetic, equal to it within 1e-6.
    """
    if not isinstance(inputs, torch.Tensor) or inputs.dtype != torch.uint8 or inputs.dim() != 4 \
            or inputs.shape[1] != 3:
        got = (tuple(inputs.shape), inputs.dtype) if isinstance(inputs, torch.Tensor) else \
            type(inputs).__name__
        raise ValueError(f"inputs is {got}: expected a uint8 tensor (B, 3, H, W), the input of "
                         "a batch from CenterNetDataset(..., input_dtype='uint8')")
    B = inputs.shape[0]
    dev = inputs.device
    color = {k: torch.as_tensor(np.asarray(v)) for k, v in meta["color"].items()}
    if color["order"].shape != (B, 3):
        raise ValueError(f"meta['color']['order'] has shape {tuple(color['order'].shape)}: "
                         f"expected ({B}, 3), one row per sample of inputs")
    x = inputs.to(torch.float32) / torch.tensor(255.0, dtype=torch.float32, device=dev)
    on = color["on"].to(torch.bool).tolist()
    if any(on):
        b, g, r = x[:, 0], x[:, 1], x[:, 2]
        gray = (b * float(GRAY_B) + g * float(GRAY_G) + r * float(GRAY_R)).unsqueeze(1)
        sums = inputs.to(torch.int64).sum(dim=(2, 3)).to(torch.float64)          # (B, 3) exact
        gray_mean = ((sums[:, 0] * float(GRAY_B) + sums[:, 1] * float(GRAY_G)
                      + sums[:, 2] * float(GRAY_R)) / (255.0 * x.shape[2] * x.shape[3]))
        gray_mean = gray_mean.to(torch.float32).cpu()
        factors = color["factors"].to(torch.float64)
        one_minus = (1.0 - factors).to(torch.float32)
        a = torch.ones(B, 3, dtype=torch.float32)
        add = torch.zeros(B, 3, dtype=torch.float32)
        sat = torch.zeros(B, 3, dtype=torch.float32)
        for i in range(B):
            if not on[i]:
                continue
            for k, step in enumerate(color["order"][i].tolist()):
                a[i, k] = factors[i, step].to(torch.float32)
                if step == _CONTRAST:
                    add[i, k] = gray_mean[i] * one_minus[i, step]
                elif step == _SATURATION:
                    sat[i, k] = one_minus[i, step]
        a, add, sat = (t.to(dev).reshape(B, 3, 1, 1, 1) for t in (a, add, sat))
        y = x.clone()
        for k in range(3):
            y = y * a[:, k] + (add[:, k] + gray * sat[:, k])
        shift = torch.as_tensor(np.asarray(eig_val, np.float32), dtype=torch.float64) \
            * color["lighting"].to(torch.float64)                                    # (B, 3)
        shift = shift @ torch.as_tensor(np.asarray(eig_vec, np.float32), dtype=torch.float64).T
        shift = torch.where(color["on"].to(torch.bool)[:, None], shift, 0.0)
        lit = (y.to(torch.float64) + shift.to(dev)[:, :, None, None]).to(torch.float32)
        keep = torch.tensor(on, device=dev)[:, None, None, None]
        x = torch.where(keep, lit, x)
    m = torch.as_tensor(np.asarray(mean, np.float32), device=dev)[None, :, None, None]
    s = torch.as_tensor(np.asarray(std, np.float32), device=dev)[None, :, None, None]
    return (x - m) / s
