"""The ``exdet`` task's torch side: upstream's ``ExdetLoss`` and its two decoders.

Loss (:class:`ExdetLoss`): each of the five heatmaps ``hm_t/l/b/r/c`` under
CenterNet's focal loss (or, with the config's ``heatmap="msra"``, the mean
squared error of the clamped sigmoid against the map, as upstream's
``--mse_loss`` does: upstream applies the sigmoid in both cases), summed into
``hm_loss``; each point's offset ``reg_t/l/b/r`` under ``RegL1Loss`` at its
``ind_*`` and ``reg_mask``, summed into ``off_loss``.  ``loss = hm_weight *
hm_loss + off_weight * off_loss``.  Every reduction is in float64 (as the other
losses).

Decoders: :func:`exct_decode` (per-class extreme heatmaps) and
:func:`agnex_ct_decode` (one extreme channel, ``agnostic_ex``), CenterNet's
grouping of every combination of the K strongest top, left, bottom and right
points by the centre heatmap at their box's centre.  The grouping holds
``K^4`` candidates per image: K=40 (upstream's default) is 2.56 M per image,
about 0.2 GB of float32 temporaries; :class:`ExdetDecoder` refuses K > 64.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from centertargets.decode import Decoder, gather_feat, nms, topk, transpose_and_gather
from centertargets.tasks.exdet import EXTREME_POINTS, ExdetConfig

from . import functional as LF
from .centernet import _detached, _CenterNetLoss, _zero

__all__ = ["ExdetLoss", "ExdetDecoder", "exct_decode", "agnex_ct_decode"]

#: Largest K of the exdet decoders: K^4 candidates per image.
MAX_K = 64


class ExdetLoss(_CenterNetLoss):
    """Upstream's ``ExdetLoss`` from the encoder's :class:`~centertargets.ExdetConfig`.

    ``forward(outputs, batch) -> (loss, stats)``; outputs hold the heads of
    ``config.head_spec()`` as logits (one dict, or one per stack), ``batch`` the
    collated targets.  Stats: ``loss``, ``hm_loss``, ``off_loss``.
    """

    _config_type = ExdetConfig
    _fast_focal = False
    config: ExdetConfig

    def forward(self, outputs: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]],
                batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg, o = self.config, self.options
        batch = self.rendered(batch)                 # sparse heatmaps drawn first
        stacks = self._stacks(outputs)
        parts = [*EXTREME_POINTS, "c"]
        offsets = cfg.reg_offset and o.off_weight > 0
        needed = [f"hm_{p}" for p in parts]
        if offsets:
            needed += ["reg_mask"] + [f"{k}_{p}" for p in EXTREME_POINTS for k in ("reg", "ind")]
        B = self.check_batch(batch, needed)
        hm_loss = off_loss = None
        for out in stacks:
            for p in parts:
                name = f"hm_{p}"
                logits = self.check_output(out, name, B)
                if cfg.heatmap == "msra":
                    term = LF.mse_loss(LF.clamped_sigmoid(logits), batch[name])
                else:
                    term = self._focal(name, logits, batch[name])
                term = term / len(stacks)
                hm_loss = term if hm_loss is None else hm_loss + term
                if p != "c" and offsets:
                    reg = self.check_output(out, f"reg_{p}", B)
                    term = self._reg(reg, batch["reg_mask"], batch[f"ind_{p}"],
                                     batch[f"reg_{p}"]) / len(stacks)
                    off_loss = term if off_loss is None else off_loss + term
        assert hm_loss is not None
        off = off_loss if off_loss is not None else _zero(hm_loss)
        loss = o.hm_weight * hm_loss + o.off_weight * off
        return loss, _detached({"loss": loss, "hm_loss": hm_loss, "off_loss": off})


def _extreme_grid(ys: Tensor, xs: Tensor, axis: int, K: int) -> tuple[Tensor, Tensor]:
    """(B, K) coordinates of one extreme point spread over axis ``axis`` of (B, K, K, K, K)."""
    shape = [ys.shape[0], 1, 1, 1, 1]
    shape[1 + axis] = K
    full = (ys.shape[0], K, K, K, K)
    return ys.view(*shape).expand(*full), xs.view(*shape).expand(*full)


def _group(heats: list[Tensor], ct_scores_of, regrs: list[Tensor | None], K: int,
           scores_thresh: float, center_thresh: float, num_dets: int, class_check: bool
           ) -> Tensor:
    """The grouping both decoders share: every (t, l, b, r) combination of the K peaks."""
    B = heats[0].shape[0]
    peaks = [topk(h, K) for h in heats]                     # (score, ind, cls, y, x) each
    grid = [_extreme_grid(p[3], p[4], a, K) for a, p in enumerate(peaks)]
    (t_ys, t_xs), (l_ys, l_xs), (b_ys, b_xs), (r_ys, r_xs) = grid
    box_ct_xs = ((l_xs + r_xs + 0.5) / 2).long()
    box_ct_ys = ((t_ys + b_ys + 0.5) / 2).long()
    clses_grid = [p[2].int().view(*([B] + [K if i == a else 1 for i in range(4)])).expand(
        B, K, K, K, K) for a, p in enumerate(peaks)]
    ct_scores, clses = ct_scores_of(box_ct_ys, box_ct_xs, clses_grid[0])
    sc = [p[0].view(*([B] + [K if i == a else 1 for i in range(4)])).expand(B, K, K, K, K)
          for a, p in enumerate(peaks)]
    t_sc, l_sc, b_sc, r_sc = sc
    ct_scores = ct_scores.view(B, K, K, K, K)
    scores = (t_sc + l_sc + b_sc + r_sc + 2 * ct_scores) / 6
    top_inds = ((t_ys > l_ys) + (t_ys > b_ys) + (t_ys > r_ys)) > 0
    left_inds = ((l_xs > t_xs) + (l_xs > b_xs) + (l_xs > r_xs)) > 0
    bottom_inds = ((b_ys < t_ys) + (b_ys < l_ys) + (b_ys < r_ys)) > 0
    right_inds = ((r_xs < t_xs) + (r_xs < l_xs) + (r_xs < b_xs)) > 0
    sc_inds = ((t_sc < scores_thresh) + (l_sc < scores_thresh) + (b_sc < scores_thresh)
               + (r_sc < scores_thresh) + (ct_scores < center_thresh)) > 0
    scores = scores - sc_inds.float()
    if class_check:
        t_c, l_c, b_c, r_c = clses_grid
        cls_inds = ((t_c != l_c) + (t_c != b_c) + (t_c != r_c)) > 0
        scores = scores - cls_inds.float()
    scores = scores - top_inds.float()
    scores = scores - left_inds.float()
    scores = scores - bottom_inds.float()
    scores = scores - right_inds.float()
    scores, inds = torch.topk(scores.view(B, -1), num_dets)
    scores = scores.unsqueeze(2)
    pts = [list(g) for g in grid]                            # [ys, xs] per point
    if all(r is not None for r in regrs):
        for a, (p, r) in enumerate(zip(peaks, regrs)):
            shape = [B] + [K if i == a else 1 for i in range(4)] + [2]
            off = transpose_and_gather(r, p[1]).view(*shape)
            pts[a][1] = pts[a][1] + off[..., 0]
            pts[a][0] = pts[a][0] + off[..., 1]
    else:
        for a in range(4):
            pts[a][1] = pts[a][1] + 0.5
            pts[a][0] = pts[a][0] + 0.5
    (t_ys, t_xs), (l_ys, l_xs), (b_ys, b_xs), (r_ys, r_xs) = pts
    bboxes = gather_feat(torch.stack((l_xs, t_ys, r_xs, b_ys), dim=5).view(B, -1, 4), inds)
    clses = gather_feat(clses.contiguous().view(B, -1, 1), inds).float()
    cols = [gather_feat(v.contiguous().view(B, -1, 1), inds).float()
            for v in (t_xs, t_ys, l_xs, l_ys, b_xs, b_ys, r_xs, r_ys)]
    return torch.cat([bboxes, scores, *cols, clses], dim=2)


def _prepare(heats: list[Tensor]) -> list[Tensor]:
    out = []
    for h in heats:
        h = nms(h)
        h[h > 1] = 1
        out.append(h)
    return out


def exct_decode(t_heat: Tensor, l_heat: Tensor, b_heat: Tensor, r_heat: Tensor,
                ct_heat: Tensor, t_regr: Tensor | None = None, l_regr: Tensor | None = None,
                b_regr: Tensor | None = None, r_regr: Tensor | None = None, K: int = 40,
                scores_thresh: float = 0.1, center_thresh: float = 0.1,
                num_dets: int = 1000) -> Tensor:
    """Upstream's ``exct_decode`` (per-class extreme heatmaps): (B, num_dets, 14) rows of
    ``x1, y1, x2, y2, score, xt, yt, xl, yl, xb, yb, xr, yr, class``.

    Heatmaps (B, C, H, W) are probabilities; offsets (B, 2, H, W) or None.  A
    combination scores the mean of its four points' and twice its centre's
    scores, minus 1 for each rule it breaks (a score under its threshold,
    points of different classes, a top point below another point, ...).
    Upstream's ``aggr_weight`` (default 0, off) is not supported.
    """
    B, C, H, W = ct_heat.shape
    heats = _prepare([t_heat, l_heat, b_heat, r_heat])

    def centre(ys: Tensor, xs: Tensor, t_cls: Tensor) -> tuple[Tensor, Tensor]:
        ind = (t_cls.long() * (H * W) + ys * W + xs).view(B, -1)
        return gather_feat(ct_heat.reshape(B, -1, 1), ind), t_cls

    return _group(heats, centre, [t_regr, l_regr, b_regr, r_regr], K, scores_thresh,
                  center_thresh, num_dets, class_check=True)


def agnex_ct_decode(t_heat: Tensor, l_heat: Tensor, b_heat: Tensor, r_heat: Tensor,
                    ct_heat: Tensor, t_regr: Tensor | None = None, l_regr: Tensor | None = None,
                    b_regr: Tensor | None = None, r_regr: Tensor | None = None, K: int = 40,
                    scores_thresh: float = 0.1, center_thresh: float = 0.1,
                    num_dets: int = 1000) -> Tensor:
    """Upstream's ``agnex_ct_decode`` (one extreme channel): as :func:`exct_decode`, the class
    taken from the strongest class of ``ct_heat`` at the box's centre."""
    B, C, H, W = ct_heat.shape
    heats = _prepare([t_heat, l_heat, b_heat, r_heat])
    ct_agn, ct_cls = torch.max(ct_heat, dim=1, keepdim=True)

    def centre(ys: Tensor, xs: Tensor, t_cls: Tensor) -> tuple[Tensor, Tensor]:
        ind = (ys * W + xs).view(B, -1)
        return (gather_feat(ct_agn.view(B, -1, 1), ind),
                gather_feat(ct_cls.view(B, -1, 1), ind))

    return _group(heats, centre, [t_regr, l_regr, b_regr, r_regr], K, scores_thresh,
                  center_thresh, num_dets, class_check=False)


class ExdetDecoder(Decoder):
    """Decode exdet head outputs with the config's heads: ``dec(outputs) -> (B, num_dets, 14)``.

    :func:`agnex_ct_decode` with ``agnostic_ex``, else :func:`exct_decode`;
    ``K`` peaks per extreme point (at most 64: K^4 candidates per image).
    """

    def __init__(self, config: ExdetConfig, K: int = 40, apply_sigmoid: bool = True,
                 scores_thresh: float = 0.1, center_thresh: float = 0.1,
                 aggr_weight: float = 0.0, num_dets: int = 1000) -> None:
        super().__init__(config, K, apply_sigmoid)
        if self.K > MAX_K:
            raise ValueError(f"K={K}: expected at most {MAX_K} for exdet (the decoder groups "
                             f"K^4 = {K ** 4} candidates per image)")
        if aggr_weight:
            raise ValueError(f"aggr_weight={aggr_weight}: expected 0 (upstream's heatmap "
                             "aggregation is not supported)")
        self.scores_thresh, self.center_thresh = float(scores_thresh), float(center_thresh)
        self.num_dets = min(int(num_dets), self.K ** 4)

    def __call__(self, outputs: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]]
                 ) -> Tensor:
        h = self.heads_of(outputs)
        fn = agnex_ct_decode if self.config.agnostic_ex else exct_decode
        return fn(*(h[f"hm_{p}"] for p in EXTREME_POINTS), h["hm_c"],
                  *(h.get(f"reg_{p}") for p in EXTREME_POINTS), K=self.K,
                  scores_thresh=self.scores_thresh, center_thresh=self.center_thresh,
                  num_dets=self.num_dets)

