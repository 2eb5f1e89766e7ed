"""CenterTrack's ``GenericLoss`` and ``generic_decode``, from a :class:`TrackingConfig`.

Which loss supervises which target (upstream's, stat names as upstream's):

* ``hm`` (and ``hm_hp``): the fast focal loss. Negatives over every pixel,
  ``log(1-p) p^2 (1-gt)^4`` (it vanishes where ``gt`` is 1: peaks and ignore
  regions); positives only at the object slots (``ind``, class ``cat``, where
  ``mask`` is 1; ``hp_ind``/``joint``/``hm_hp_mask`` for joints), divided by
  the number of positives (the negative sum alone when there is none).
* ``reg``, ``wh``, ``tracking``, ``ltrb``, ``ltrb_amodal``, ``hps``, ``dep``,
  ``dim``, ``amodel_offset``, ``velocity`` and ``hp_offset``: L1 of the head
  read at ``ind`` (``hp_ind``), weighted by the head's own ``<head>_mask``
  per coordinate, divided by the number of supervised coordinates + 1e-4.
  ``dep`` goes through ``1 / (sigmoid + 1e-6) - 1`` first.
* ``rot``: upstream's ``BinRotLoss`` (two bin cross-entropies averaged over
  every row, unmasked ones included, plus the sin/cos smooth-L1).
* ``nuscenes_att``: BCE with logits times its mask, / (mask sum + 1e-4).

``tot`` is ``sum(weights[head] * loss[head])``, upstream's default weights:
``wh``, ``ltrb`` and ``ltrb_amodal`` 0.1, every other head 1.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from centertargets.decode import Decoder, nms, topk
from centertargets.device import dense_targets
from centertargets._warn import warn
from centertargets.spec import check_head
from centertargets.tasks.tracking import TrackingConfig

from . import functional as LF
from .ddd import bin_rot_loss, depth_from_logits

__all__ = ["GenericLoss", "TrackingDecoder", "generic_decode", "DEFAULT_WEIGHTS",
           "weighted_bce_with_logits"]

#: CenterTrack's default loss weights (``opts``): every head 1 but these.
DEFAULT_WEIGHTS = {"wh": 0.1, "ltrb": 0.1, "ltrb_amodal": 0.1}

#: Regression heads read at ``ind`` with their per-coordinate ``<head>_mask``, upstream's order.
REGRESSION_HEADS = ("reg", "wh", "tracking", "ltrb", "ltrb_amodal", "hps", "dep", "dim",
                    "amodel_offset", "velocity")


def weighted_bce_with_logits(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``sum(mask * BCE(pred, target)) / (sum(mask) + 1e-4)``, never NaN for +-inf logits
    (each target side is its own softplus, so 0 * inf never happens)."""
    x = pred.float()
    t = target.float()
    pos = torch.where(t > 0, t * F.softplus(-x), torch.zeros_like(x))
    neg = torch.where(t < 1, (1 - t) * F.softplus(x), torch.zeros_like(x))
    m = mask.to(torch.bool)
    total = LF.sum64(torch.where(m, (pos + neg) * mask.float(), torch.zeros_like(x)))
    return (total / (LF.sum64(mask.float()) + 1e-4)).to(torch.float32)


class GenericLoss(nn.Module):
    """CenterTrack's ``GenericLoss``: ``forward(outputs, batch) -> (tot, stats)``.

    ``outputs``: a dict of the heads of ``config.head_spec()`` (raw values:
    heatmap and depth logits), or a list of them (one per stack, averaged).
    ``batch``: the collated targets of :class:`~centertargets.tracking.TrackingDataset`.
    ``weights``: head -> weight (default :data:`DEFAULT_WEIGHTS`, every other head 1).
    Stats: one per head and ``tot``, computed in float64 sums and returned as float32.
    """

    def __init__(self, config: TrackingConfig, weights: Mapping[str, float] | None = None
                 ) -> None:
        if not isinstance(config, TrackingConfig):
            raise TypeError(f"config is {type(config).__name__}: expected a TrackingConfig")
        if weights is not None and not isinstance(weights, Mapping):
            raise TypeError(f"weights is {type(weights).__name__}: expected a dict of head -> "
                            "weight (CenterTrack's opt.weights), e.g. {'wh': 0.1}")
        super().__init__()
        self.config = config
        self.heads = config.head_spec()
        w = {h: float(DEFAULT_WEIGHTS.get(h, 1.0)) for h in self.heads}
        for k, v in (weights or {}).items():
            if k not in self.heads:
                raise ValueError(f"weights[{k!r}]: expected one of the heads {list(self.heads)}")
            w[k] = float(v)
        self.weights = w
        self._spec = config.dense_spec()
        self._warned_stuck = False

    def _check_batch(self, batch: Mapping[str, Tensor]) -> int:
        B = None
        for name in self._spec:
            if name == "pre_hm":
                continue
            t = batch.get(name)
            if not isinstance(t, Tensor) or tuple(t.shape[1:]) != self._spec[name].shape or \
                    (B is not None and t.shape[0] != B):
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"batch[{name!r}] is {got}: expected (B, "
                                 f"{', '.join(map(str, self._spec[name].shape))}) from "
                                 f"{self.config.describe()}")
            B = t.shape[0]
        if not B:
            raise ValueError("batch holds 0 samples: expected at least one (B >= 1)")
        return int(B)

    def forward(self, outputs: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]],
                batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        stacks = [outputs] if isinstance(outputs, Mapping) else list(outputs)
        if not stacks:
            raise ValueError("outputs is empty: expected a dict of heads or one per stack")
        batch = dense_targets(batch, self.config)      # a heatmaps="sparse" batch: rendered
        B = self._check_batch(batch)
        ref = batch["hm"]
        losses = {h: torch.zeros((), dtype=torch.float32, device=ref.device)
                  for h in self.heads}
        S = len(stacks)
        for out in stacks:
            o = {name: check_head(out, head, B, self.config.describe())
                 for name, head in self.heads.items()}
            if not self._warned_stuck and LF.positives_at_floor(o["hm"], batch["ind"],
                                                                batch["mask"]):
                self._warned_stuck = True
                warn(LF.STUCK_MESSAGE, RuntimeWarning)
            losses["hm"] = losses["hm"] + LF.fast_focal_loss_with_logits(
                o["hm"], batch["hm"], batch["ind"], batch["mask"], batch["cat"]) / S
            for name in REGRESSION_HEADS:
                if name not in o:
                    continue
                head = depth_from_logits(o[name].float()) if name == "dep" else o[name]
                pred = LF.transpose_and_gather(head, batch["ind"])
                losses[name] = losses[name] + LF.reg_weighted_l1_loss(
                    pred, batch[name], batch[name + "_mask"]) / S
            if "hm_hp" in o:
                losses["hm_hp"] = losses["hm_hp"] + LF.fast_focal_loss_with_logits(
                    o["hm_hp"], batch["hm_hp"], batch["hp_ind"], batch["hm_hp_mask"],
                    batch["joint"]) / S
                pred = LF.transpose_and_gather(o["hp_offset"], batch["hp_ind"])
                losses["hp_offset"] = losses["hp_offset"] + LF.reg_weighted_l1_loss(
                    pred, batch["hp_offset"], batch["hp_offset_mask"]) / S
            if "rot" in o:
                losses["rot"] = losses["rot"] + bin_rot_loss(
                    o["rot"], batch["rot_mask"], batch["ind"], batch["rotbin"],
                    batch["rotres"]) / S
            if "nuscenes_att" in o:
                pred = LF.transpose_and_gather(o["nuscenes_att"], batch["ind"])
                losses["nuscenes_att"] = losses["nuscenes_att"] + weighted_bce_with_logits(
                    pred, batch["nuscenes_att"], batch["nuscenes_att_mask"]) / S
        tot = sum(self.weights[h] * losses[h] for h in self.heads)
        assert isinstance(tot, Tensor)
        stats = {**{h: v.detach() for h, v in losses.items()}, "tot": tot.detach()}
        return tot, stats


def generic_decode(heads: Mapping[str, Tensor], K: int = 100) -> dict[str, Tensor]:
    """CenterTrack's ``generic_decode`` of probability heatmaps: the top ``K`` peaks (3x3
    max-pool NMS) of ``hm`` (B, C, H, W) and every other head read there.

    Returns (output-map pixels) ``scores``, ``clses`` (B, K), ``cts`` (B, K, 2) the peak
    pixels, ``xs``/``ys`` (B, K) the centres with ``reg``, ``bboxes`` (B, K, 4) from ``wh``
    (``ltrb``/``ltrb_amodal`` replace it as upstream), and each of ``tracking``, ``dep``,
    ``rot``, ``dim``, ``amodel_offset``, ``nuscenes_att``, ``velocity``, ``hps`` present,
    (B, K, channels); ``hps`` as joint positions (x, y pairs).
    """
    heat = heads["hm"]
    B, C, H, W = heat.shape
    scores, inds, clses, ys0, xs0 = topk(nms(heat), K)
    ret: dict[str, Tensor] = {"scores": scores, "clses": clses.float(),
                              "cts": torch.stack([xs0, ys0], dim=2)}
    if "reg" in heads:
        reg = LF.transpose_and_gather(heads["reg"], inds)
        xs, ys = xs0 + reg[..., 0], ys0 + reg[..., 1]
    else:
        xs, ys = xs0 + 0.5, ys0 + 0.5
    ret["xs"], ret["ys"] = xs, ys
    if "wh" in heads:
        wh = LF.transpose_and_gather(heads["wh"], inds).clamp(min=0)
        ret["bboxes"] = torch.stack([xs - wh[..., 0] / 2, ys - wh[..., 1] / 2,
                                     xs + wh[..., 0] / 2, ys + wh[..., 1] / 2], dim=2)
    for name in ("ltrb", "ltrb_amodal"):
        if name in heads:
            v = LF.transpose_and_gather(heads[name], inds)
            ret["bboxes"] = torch.stack([xs0 + v[..., 0], ys0 + v[..., 1], xs0 + v[..., 2],
                                         ys0 + v[..., 3]], dim=2)
    for name in ("tracking", "dep", "rot", "dim", "amodel_offset", "nuscenes_att", "velocity"):
        if name in heads:
            ret[name] = LF.transpose_and_gather(heads[name], inds)
    if "hps" in heads:
        kps = LF.transpose_and_gather(heads["hps"], inds).clone()
        kps[..., 0::2] += xs0.unsqueeze(2)
        kps[..., 1::2] += ys0.unsqueeze(2)
        ret["hps"] = kps
    return ret


class TrackingDecoder(Decoder):
    """Decodes a tracking model's outputs (a dict of the config's heads, or one per stack:
    the last) with :func:`generic_decode`, after a sigmoid on ``hm``/``hm_hp`` and the depth
    activation on ``dep``."""

    config: TrackingConfig

    def __call__(self, outputs: Any) -> dict[str, Tensor]:
        heads = self.heads_of(outputs)
        if "dep" in heads:
            heads["dep"] = depth_from_logits(heads["dep"])
        return generic_decode(heads, self.K)
