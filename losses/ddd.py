"""The ``ddd`` task's torch side: upstream's ``DddLoss``, ``ddd_decode`` and its 3D post-processing.

Loss (:class:`DddLoss`), each term as upstream computes it, every reduction in
float64:

* ``hm_loss``: CenterNet's focal loss (or, with ``heatmap="msra"``, the MSE of
  the clamped sigmoid);
* ``dep_loss``: the ``dep`` head through ``1 / (sigmoid + 1e-6) - 1`` (a depth in
  metres) against ``dep`` at ``ind``, masked by ``reg_mask``; ``dim_loss``
  likewise for ``dim``; ``wh_loss`` and ``off_loss`` for ``wh`` and ``reg``, masked
  by ``rot_mask``.  Upstream's ``L1Loss`` averages the masked differences over
  every element (``LossOptions.l1_mean="elements"``); ``"masked"`` averages over
  the supervised ones;
* ``rot_loss`` (``BinRotLoss``): for each of the two angle bins, the
  cross-entropy of its two logits (times ``rot_mask``) against ``rotbin``,
  averaged over every slot, plus the smooth-L1 of its sin and cos against
  those of ``rotres`` over the slots whose bin holds the angle.

``loss = hm_weight * hm + dep_weight * dep + dim_weight * dim + rot_weight *
rot + wh_weight * wh + off_weight * off`` (1, 1, 1, 1, 0.1, 1).

Decoder (:class:`DddDecoder`, :func:`ddd_decode`): (B, K, 18) rows ``x, y,
score, rot (8), depth, h, w, l, w2d, h2d, class`` in output-map pixels;
:func:`ddd_post_process` turns them into 3D boxes in camera coordinates.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from centertargets.decode import Decoder, nms, to_image, topk, transpose_and_gather
from centertargets.tasks.ddd import DddConfig

from . import functional as LF
from .centernet import _detached, _CenterNetLoss, _zero

__all__ = ["DddLoss", "DddDecoder", "ddd_decode", "ddd_post_process", "alpha_from_bins",
           "depth_from_logits"]


def depth_from_logits(x: Tensor) -> Tensor:
    """Upstream's depth head activation: ``1 / (sigmoid(x) + 1e-6) - 1`` (metres)."""
    return 1. / (x.sigmoid() + 1e-6) - 1.


def _l1_mean(pred: Tensor, target: Tensor, mask: Tensor, how: str) -> Tensor:
    """upstream's L1Loss: |pred * m - target * m| averaged over every element, or over the
    supervised ones (``how="masked"``)."""
    m = mask.unsqueeze(2).expand_as(pred).to(pred.dtype)
    d = (pred * m - target.to(pred.dtype) * m).abs()
    n = float(m.sum(dtype=torch.float64)) if how == "masked" else float(d.numel())
    return (LF.sum64(d) / max(n, 1.0)).to(torch.float32)


def _smooth_l1_mean(x: Tensor, y: Tensor) -> Tensor:
    d = (x - y).abs()
    return LF.sum64(torch.where(d < 1, 0.5 * d * d, d - 0.5)) / max(d.numel(), 1)


def bin_rot_loss(output: Tensor, mask: Tensor, ind: Tensor, rotbin: Tensor,
                 rotres: Tensor) -> Tensor:
    """Upstream's ``BinRotLoss``: ``output`` (B, 8, H, W) read at ``ind`` (B, M); ``mask``
    (B, M) (``rot_mask``); ``rotbin`` (B, M, 2) int; ``rotres`` (B, M, 2)."""
    big = torch.finfo(torch.float32).max
    # +-inf logits become the largest floats: softmax of (inf, inf) would be NaN
    pred = LF.transpose_and_gather(output, ind).reshape(-1, 8).float().clamp(-big, big)
    bins = rotbin.reshape(-1, 2)
    res = rotres.reshape(-1, 2).float()
    m = mask.reshape(-1, 1).float()
    loss = None
    for b, cols in ((0, slice(0, 2)), (1, slice(4, 6))):
        # upstream multiplies by the mask; where() gives the same numbers without 0 * inf
        logits = torch.where(m > 0, pred[:, cols] * m, torch.zeros_like(pred[:, cols]))
        ce = -torch.log_softmax(logits, dim=1).gather(1, bins[:, b:b + 1].long())
        term = LF.sum64(ce) / max(ce.shape[0], 1)
        loss = term if loss is None else loss + term
    assert loss is not None
    for b, (s_col, c_col) in ((0, (2, 3)), (1, (6, 7))):
        rows = bins[:, b].nonzero()[:, 0]
        if rows.numel():
            loss = loss + _smooth_l1_mean(pred[rows, s_col], torch.sin(res[rows, b])) + \
                _smooth_l1_mean(pred[rows, c_col], torch.cos(res[rows, b]))
    return loss.to(torch.float32)


class DddLoss(_CenterNetLoss):
    """Upstream's ``DddLoss`` from the encoder's :class:`~centertargets.tasks.ddd.DddConfig`.

    ``forward(outputs, batch) -> (loss, stats)``; outputs hold the heads of
    ``config.head_spec()`` as raw values (``hm`` and ``dep`` logits).  Stats:
    ``loss``, ``hm_loss``, ``dep_loss``, ``dim_loss``, ``rot_loss``, ``wh_loss``,
    ``off_loss``.
    """

    _config_type = DddConfig
    _fast_focal = False
    config: DddConfig

    def forward(self, outputs: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]],
                batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg, o = self.config, self.options
        batch = self.rendered(batch)                 # sparse heatmaps drawn first
        stacks = self._stacks(outputs)
        needed = ["hm", "dep", "dim", "ind", "rotbin", "rotres", "reg_mask", "rot_mask"]
        if cfg.reg_bbox:
            needed.append("wh")
        if cfg.reg_offset:
            needed.append("reg")
        B = self.check_batch(batch, needed)
        ind = batch["ind"]
        terms: dict[str, Tensor] = {}

        def add(name: str, value: Tensor) -> None:
            value = value / len(stacks)
            terms[name] = value if name not in terms else terms[name] + value

        for out in stacks:
            logits = self.check_output(out, "hm", B)
            if cfg.heatmap == "msra":
                add("hm_loss", LF.mse_loss(LF.clamped_sigmoid(logits), batch["hm"]))
            else:
                add("hm_loss", self._focal("hm", logits, batch["hm"]))
            if o.dep_weight > 0:
                dep = depth_from_logits(self.check_output(out, "dep", B).float())
                add("dep_loss", _l1_mean(LF.transpose_and_gather(dep, ind), batch["dep"],
                                         batch["reg_mask"], o.l1_mean))
            if o.dim_weight > 0:
                dim = self.check_output(out, "dim", B).float()
                add("dim_loss", _l1_mean(LF.transpose_and_gather(dim, ind), batch["dim"],
                                         batch["reg_mask"], o.l1_mean))
            if o.rot_weight > 0:
                add("rot_loss", bin_rot_loss(self.check_output(out, "rot", B),
                                             batch["rot_mask"], ind, batch["rotbin"],
                                             batch["rotres"]))
            for name, head in (("wh_loss", "wh"), ("off_loss", "reg")):
                weight = o.wh_weight if head == "wh" else o.off_weight
                if head in self.heads and weight > 0:
                    pred = self.check_output(out, head, B).float()
                    add(name, _l1_mean(LF.transpose_and_gather(pred, ind), batch[head],
                                       batch["rot_mask"], o.l1_mean))
        zero = _zero(terms["hm_loss"])
        stats = {k: terms.get(k, zero) for k in ("hm_loss", "dep_loss", "dim_loss", "rot_loss",
                                                 "wh_loss", "off_loss")}
        loss = (o.hm_weight * stats["hm_loss"] + o.dep_weight * stats["dep_loss"]
                + o.dim_weight * stats["dim_loss"] + o.rot_weight * stats["rot_loss"]
                + o.wh_weight * stats["wh_loss"] + o.off_weight * stats["off_loss"])
        return loss, _detached({"loss": loss, **stats})


def ddd_decode(heat: Tensor, rot: Tensor, depth: Tensor, dim: Tensor, wh: Tensor | None = None,
               reg: Tensor | None = None, K: int = 40) -> Tensor:
    """Upstream's ``ddd_decode``: (B, K, 18) (16 without ``wh``) rows ``x, y, score, rot (8),
    depth, h, w, l, [w2d, h2d,] class`` in output-map pixels.

    ``heat`` (B, C, H, W) probabilities, ``depth`` in metres (both activated),
    ``rot`` (B, 8, H, W), ``dim`` (B, 3, H, W), ``wh``/``reg`` (B, 2, H, W) or None.
    """
    B = heat.shape[0]
    heat = nms(heat)
    scores, inds, clses, ys, xs = topk(heat, K)
    if reg is not None:
        r = transpose_and_gather(reg, inds).view(B, K, 2)
        xs = xs.view(B, K, 1) + r[:, :, 0:1]
        ys = ys.view(B, K, 1) + r[:, :, 1:2]
    else:
        xs = xs.view(B, K, 1) + 0.5
        ys = ys.view(B, K, 1) + 0.5
    cols = [xs, ys, scores.view(B, K, 1), transpose_and_gather(rot, inds).view(B, K, 8),
            transpose_and_gather(depth, inds).view(B, K, 1),
            transpose_and_gather(dim, inds).view(B, K, 3)]
    if wh is not None:
        cols.append(transpose_and_gather(wh, inds).view(B, K, 2))
    cols.append(clses.view(B, K, 1).float())
    return torch.cat(cols, dim=2)


class DddDecoder(Decoder):
    """Decode ddd head outputs with the config's heads: ``dec(outputs) -> (B, K, 18)``.

    With ``apply_sigmoid=True`` (the default) the outputs are raw: ``hm`` gets a
    sigmoid and ``dep`` upstream's ``1 / (sigmoid + 1e-6) - 1``; with ``False``
    they are already activated (probabilities, metres).
    """

    def __call__(self, outputs: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]]
                 ) -> Tensor:
        h = self.heads_of(outputs)
        dep = depth_from_logits(h["dep"]) if self.apply_sigmoid else h["dep"]
        return ddd_decode(h["hm"], h["rot"], dep, h["dim"], h.get("wh"), h.get("reg"), K=self.K)


def alpha_from_bins(rot: np.ndarray) -> np.ndarray:
    """Upstream's ``get_alpha``: the angle of the more confident bin, (..., 8) -> (...)."""
    rot = np.asarray(rot, np.float64)
    first = rot[..., 1] > rot[..., 5]
    alpha1 = np.arctan2(rot[..., 2], rot[..., 3]) + (-0.5 * np.pi)
    alpha2 = np.arctan2(rot[..., 6], rot[..., 7]) + (0.5 * np.pi)
    return np.where(first, alpha1, alpha2)


def ddd_post_process(dets: Any, center: Any, scale: Any, output_size: Sequence[int],
                     calib: Any) -> np.ndarray:
    """3D boxes of one image's decoded rows, as upstream's ``ddd_post_process``.

    ``dets`` (K, 18) from :func:`ddd_decode` (one image); ``center``/``scale`` the
    sample's ``c``/``s`` and ``calib`` its (3, 4) camera matrix (the item's
    ``meta``).  Returns (K, 14) float32 rows ``alpha, x1, y1, x2, y2, h, w, l, X,
    Y, Z, rotation_y, score, class``: the 2D box in image pixels, the 3D size,
    the bottom centre in camera coordinates (metres; Y down) and the yaw.
    """
    d = np.asarray(dets.detach().cpu().numpy() if hasattr(dets, "detach") else dets, np.float64)
    P = np.asarray(calib, np.float64).reshape(3, 4)
    ctr = to_image(d[:, 0:2], center, scale, output_size)
    alpha = alpha_from_bins(d[:, 3:11])
    depth = d[:, 11]
    dims = d[:, 12:15]
    # the 2D size scales with the map (upstream maps it like a point, which is the same for
    # its validation transform: c the image's centre, s its size)
    zoom = float(np.ravel(np.asarray(scale, np.float64))[0]) / float(output_size[0])
    wh = d[:, 15:17] * zoom if d.shape[1] > 16 else np.zeros((len(d), 2))
    z = depth - P[2, 3]
    x = (ctr[:, 0] * depth - P[0, 3] - P[0, 2] * z) / P[0, 0]
    y = (ctr[:, 1] * depth - P[1, 3] - P[1, 2] * z) / P[1, 1] + dims[:, 0] / 2
    rot_y = alpha + np.arctan2(ctr[:, 0] - P[0, 2], P[0, 0])
    rot_y = np.where(rot_y > np.pi, rot_y - 2 * np.pi, rot_y)
    rot_y = np.where(rot_y < -np.pi, rot_y + 2 * np.pi, rot_y)
    box = np.stack([ctr[:, 0] - wh[:, 0] / 2, ctr[:, 1] - wh[:, 1] / 2,
                    ctr[:, 0] + wh[:, 0] / 2, ctr[:, 1] + wh[:, 1] / 2], 1)
    return np.concatenate([alpha[:, None], box, dims, np.stack([x, y, z], 1), rot_y[:, None],
                           d[:, 2:3], d[:, -1:]], 1).astype(np.float32)
