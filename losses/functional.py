"""Functional CenterNet losses (torch).  Shapes: B batch, C channels, H x W map, M slots.

Which loss supervises which target, and why the masks differ:

* ``hm`` / ``hm_hp`` heatmaps: the penalty-reduced focal loss.  A pixel with
  target exactly 1 is a positive and costs ``-log(p) (1-p)^2``; every other
  pixel is a negative costing ``-log(1-p) p^2 (1-gt)^4``.  The ``(1-p)^2`` /
  ``p^2`` factors are what "easy" and "hard" mean: a positive already
  predicted near 1, or a negative near 0, is easy and its loss is scaled
  down towards 0; a confident mistake is hard and keeps almost its full
  log-loss.  ``(1-gt)^4`` forgives negatives close to a centre (inside the
  Gaussian), where a near-miss is not really wrong.  The sum is divided by
  the number of positives (objects), or taken alone when there are none.
* ``wh``, ``reg`` (per object), ``hp_offset`` (per joint): :func:`reg_l1_loss`,
  the network map is read at ``ind`` and compared where the per-slot mask
  (``reg_mask``, ``hp_mask``) is 1; the sum is divided by the number of
  masked *coordinates*, i.e. 2 x objects.
* ``hps`` (joint vectors): :func:`reg_weighted_l1_loss` with ``hps_mask``,
  which is per *coordinate* (M, 2J) because each person has some joints
  labelled and inside the map and others not; a per-object mask could not
  say which of the 2J numbers to supervise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: CenterNet's clamp of the sigmoid, ``[1e-4, 1 - 1e-4]``.
P_MIN = 1e-4
P_MAX = 1.0 - 1e-4
#: ``logit(1 - 1e-4) = -logit(1e-4)``: beyond it CenterNet's clamp is active.
X_LIVE = 9.210240366975849

#: Elements per chunk of the float64 reductions: 2^20 float32 values, whose float64
#: copies (8 MB) stay in cache, so accumulating in float64 costs little.
CHUNK = 1 << 20

__all__ = [
    "clamped_sigmoid", "transpose_and_gather", "focal_loss", "centernet_focal_loss_with_logits",
    "focal_loss_with_logits", "fast_focal_loss_with_logits", "reg_l1_loss",
    "reg_weighted_l1_loss", "norm_reg_l1_loss", "reg_smooth_l1_loss", "dense_l1_loss",
    "mse_loss", "reduce_num_pos", "sum64", "looks_like_probabilities",
]


# --- exact sums ----------------------------------------------------------------------------------
#
# Why: a float32 reduction (``torch.dot``, ``Tensor.sum``) adds its terms in an order that
# depends on the CPU's vector width and on the thread count.  Over the millions of terms of a
# training-size heatmap (16 x 80 x 128 x 128 = 21M) the float32 total moves by up to 1e-3
# relative between machines.  Every loss here therefore computes its terms element-wise in
# float32 (or the input's float64) and adds them up in float64, chunk by chunk: the result is
# within a few float32 roundings of the float64 formula on any CPU and thread count, and the
# float64 copies never exceed one chunk.

def _chunks(t: Tensor) -> list[Tensor]:
    flat = t.reshape(-1)
    return [flat[i:i + CHUNK] for i in range(0, flat.numel(), CHUNK)] or [flat]


def _chunked_sum64(t: Tensor) -> Tensor:
    """``t.sum()`` accumulated in float64, one chunk converted at a time (no autograd)."""
    return torch.stack([c.sum(dtype=torch.float64) for c in _chunks(t)]).sum()


class _Sum64(torch.autograd.Function):
    """``t.sum()`` accumulated in float64, chunk by chunk; the gradient is ``t``'s dtype."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # type: ignore[override]
        ctx.shape, ctx.dtype = t.shape, t.dtype
        return _chunked_sum64(t)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad.to(ctx.dtype).expand(ctx.shape)


def sum64(t: Tensor) -> Tensor:
    """Sum of all elements as a float64 0-d tensor, the same on every CPU and thread count.

    Differentiable (the gradient has ``t``'s dtype); the float64 copy it
    makes is one chunk of :data:`CHUNK` elements at a time.
    """
    return _Sum64.apply(t)


def looks_like_probabilities(t: Tensor) -> bool:
    """True when every value of ``t`` lies in [0, 1]: a heatmap already passed through a sigmoid.

    The losses take logits.  A cheap strided sample is checked first, so the
    full pass only happens when the sample already looks like probabilities.
    """
    flat = t.detach().reshape(-1)
    if flat.numel() == 0:
        return False
    step = max(1, flat.numel() // 4096)
    for part in (flat[::step], flat):
        lo, hi = torch.aminmax(part)
        if not (lo >= 0 and hi <= 1):
            return False
    return True


def clamped_sigmoid(x: Tensor) -> Tensor:
    """CenterNet's ``_sigmoid``: ``clamp(sigmoid(x), 1e-4, 1 - 1e-4)`` (not in place)."""
    return torch.clamp(torch.sigmoid(x), min=P_MIN, max=P_MAX)


#: hm_loss per positive when every object's centre sits at the clamp floor p = 1e-4:
#: ``-log(1e-4) (1 - 1e-4)^2``, the value upstream users report their training stuck at.
STUCK_HM_LOSS = 9.2085

#: What that state usually means (one warning per loss object).
STUCK_MESSAGE = (
    "hm_loss: every object's centre has p at the clamp floor 1e-4 (hm_loss about 9.2085 per "
    "object plus the negatives): the classic stuck state of CenterNet trainings. It usually "
    "means the targets are wrong: boxes stored as [x1, y1, x2, y2] where COCO has [x, y, w, "
    "h], classes off by one, or images and annotations that do not match. Run `centertargets "
    "audit` on the file and look at `centertargets render` pictures; if the targets are "
    "right, check the heatmap head's bias (HeadSpec.init_bias, -2.19) and the learning rate.")


def positives_at_floor(logits: Tensor, ind: Tensor, mask: Tensor) -> bool:
    """Whether every masked object's centre (``ind``, any channel) has a logit at or below
    the clamp floor's (p <= 1e-4): the state behind a stuck ``hm_loss`` of 9.2085."""
    m = mask.reshape(mask.shape[0], -1) > 0
    if not bool(m.any()):
        return False
    with torch.no_grad():
        at = transpose_and_gather(logits.detach(), ind.reshape(ind.shape[0], -1))  # (B, M, C)
        top = at.max(dim=2).values
        return bool((top[m] <= math.log(P_MIN / (1 - P_MIN))).all())


def transpose_and_gather(feat: Tensor, ind: Tensor) -> Tensor:
    """Read a map at flat indices: ``feat`` (B, C, H, W), ``ind`` (B, M) int -> (B, M, C).

    Same values as CenterNet's ``_transpose_and_gather_feat`` without
    permuting and copying the whole map.
    """
    if feat.dim() != 4 or ind.dim() != 2 or feat.shape[0] != ind.shape[0]:
        raise ValueError(f"feat {tuple(feat.shape)} and ind {tuple(ind.shape)}: expected "
                         "(B, C, H, W) and (B, M) with the same B")
    B, C = feat.shape[:2]
    HW = feat.shape[2] * feat.shape[3]
    if ind.numel() and (int(ind.min()) < 0 or int(ind.max()) >= HW):
        bad = ind[(ind < 0) | (ind >= HW)][0].item()
        raise ValueError(f"ind holds {bad}: expected flat pixel indices in [0, {HW}) of the "
                         f"{feat.shape[3]}x{feat.shape[2]} map (a corrupt or mismatched batch?)")
    idx = ind.long().unsqueeze(1).expand(B, C, ind.shape[1])
    return feat.reshape(B, C, -1).gather(2, idx).transpose(1, 2)


def reduce_num_pos(num_pos: Tensor, distributed: bool) -> Tensor:
    """The denominator of the focal loss: the number of positives, or 1 when there are none.

    With ``distributed=True`` and an initialised ``torch.distributed`` group,
    the count is summed over ranks and divided by the world size, so that
    the gradients DDP averages over ranks equal the gradient of the global
    sum over the global number of positives (a rank without positives of its
    own still divides by the global figure).  Without any positive anywhere
    the denominator is 1: the negative sum alone, as in CenterNet.
    """
    if distributed and torch.distributed.is_available() and torch.distributed.is_initialized():
        total = num_pos.detach().clone()
        torch.distributed.all_reduce(total)
        per_rank = total / torch.distributed.get_world_size()
        return torch.where(total > 0, per_rank, torch.ones_like(per_rank))
    return num_pos.clamp(min=1.0)


def focal_loss(pred: Tensor, gt: Tensor, alpha: float = 2.0, beta: float = 4.0,
               distributed: bool = False) -> Tensor:
    """CenterNet's penalty-reduced focal loss on probabilities ``pred`` (B, C, H, W).

    ``-(sum_pos log(p)(1-p)^a + sum_neg log(1-p) p^a (1-gt)^b) / num_pos``,
    positives where ``gt == 1``, negatives where ``gt < 1``; with no positive,
    the negative sum alone.  ``pred`` must lie in (0, 1) (CenterNet clamps it
    to ``[1e-4, 1 - 1e-4]``).  Computed in float32 at least.
    """
    _same_shape("pred", pred, "gt", gt)
    pred = _at_least_f32(pred)
    gt = gt.to(pred.dtype)
    pos = gt.eq(1)
    neg = gt.lt(1)
    pos_loss = sum64(torch.where(pos, torch.log(pred) * torch.pow(1 - pred, alpha), 0.0))
    neg_loss = sum64(torch.where(neg, torch.log(1 - pred) * torch.pow(pred, alpha)
                                 * torch.pow(1 - gt, beta), 0.0))
    num_pos = reduce_num_pos(_count(pos), distributed)
    return (-(pos_loss + neg_loss) / num_pos).to(pred.dtype)


class _CenterNetFocal(torch.autograd.Function):
    """``(sum of focal terms, num_pos)`` (float64) of CenterNet's loss on logits, gradient in one go.

    Forward computes the value and CenterNet's gradient together with about
    fifteen in-place tensor passes (no autograd graph, no float masks, no
    ``pow``) and keeps only the gradient map; backward is one multiply.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, gt: Tensor, alpha: float, beta: float,  # type: ignore[override]
                with_pos: bool) -> tuple[Tensor, Tensor]:
        x = _at_least_f32(logits.detach())
        g = gt.detach().to(x.dtype)
        total, num_pos, grad = _focal_value_and_grad(x, g, alpha, beta, with_pos)
        ctx.save_for_backward(grad)
        ctx.in_dtype = logits.dtype
        ctx.mark_non_differentiable(num_pos)
        return total, num_pos

    @staticmethod
    def backward(ctx, d_total: Tensor, _d_num: Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors          # -d(term)/dx, per element
        return (grad * -d_total).to(ctx.in_dtype), None, None, None, None


def _ipow_(t: Tensor, e: float) -> Tensor:
    """``t ** e`` in place, by multiplication for the usual integer exponents."""
    if e == 1.0:
        return t
    if e == 2.0:
        return t.mul_(t)
    if e == 4.0:
        return t.mul_(t).mul_(t)
    return t.pow_(e)


def _focal_value_and_grad(x: Tensor, g: Tensor, alpha: float, beta: float, with_pos: bool
                          ) -> tuple[Tensor, Tensor, Tensor]:
    """Sum of CenterNet's focal terms and positive count (float64), and ``-d(sum)/dx`` (any device).

    Negatives: every element with ``gt < 1``, weighted ``(1 - gt)^beta``; the
    weight is 0 at ``gt == 1`` and clamped to 0 above, so no negative mask is
    needed.  Positives (``gt == 1``, a few hundred) are handled on the gathered
    elements only.  ``sigmoid(clamp(x, +-9.2102))`` equals CenterNet's
    ``clamp(sigmoid(x), 1e-4, 1 - 1e-4)`` to float rounding, and the gradient
    is 0 where the clamp is active, as in CenterNet.
    """
    xc = x.clamp(-X_LIVE, X_LIVE)
    p = torch.sigmoid(xc)
    q = 1.0 - p
    lq = torch.log(q)
    w = _ipow_((1.0 - g).clamp_(min=0.0), beta)
    wpa = w.mul_(_ipow_(p * p, alpha / 2.0) if alpha % 2 == 0 else p.pow(alpha))  # w * p^a
    # -d/dx [log q * p^a * w] = w p^a (p - a q log q), with dp/dx = p q
    dlog = torch.addcmul(p, q, lq, value=-alpha)
    total = _chunked_sum64(lq.mul_(wpa))                    # sum of the negative terms
    grad = wpa.mul_(dlog)
    grad.masked_fill_(xc != x, 0.0)
    if with_pos:
        pos = g.eq(1).reshape(-1).nonzero().squeeze(1)
        num_pos = torch.tensor(float(pos.numel()), dtype=torch.float64, device=x.device)
        pp = p.reshape(-1)[pos]
        qp = 1.0 - pp
        lp = torch.log(pp)
        qa = qp.pow(alpha)
        total = total + (lp * qa).sum(dtype=torch.float64)
        dpos = qa * qp - alpha * pp * qa * lp
        live = x.reshape(-1)[pos].abs() <= X_LIVE
        grad.reshape(-1)[pos] = torch.where(live, -dpos, 0.0)
    else:
        num_pos = torch.zeros((), dtype=torch.float64, device=x.device)
    return total, num_pos, grad


def centernet_focal_loss_with_logits(logits: Tensor, gt: Tensor, alpha: float = 2.0,
                                     beta: float = 4.0, distributed: bool = False) -> Tensor:
    """Exactly ``focal_loss(clamped_sigmoid(logits), gt)``, fused and lighter.

    The value and CenterNet's gradient (zero where the clamp is active) are
    computed together in place; only the gradient map is kept for backward,
    against about ten full-size tensors in CenterNet's autograd graph.  Half
    precision inputs are computed in float32.  ``logits``, ``gt``: (B, C, H, W)
    with ``gt <= 1`` (elements above 1 are ignored, as CenterNet does).
    """
    _same_shape("logits", logits, "gt", gt)
    total, num_pos = _CenterNetFocal.apply(logits, gt, alpha, beta, True)
    num_pos = reduce_num_pos(num_pos, distributed)
    return (-total / num_pos).to(_compute_dtype(logits))


def focal_loss_with_logits(logits: Tensor, gt: Tensor, alpha: float = 2.0, beta: float = 4.0,
                           max_logit: float = 50.0, distributed: bool = False) -> Tensor:
    """The focal loss on logits via log-sigmoid: no probability clamp, finite for any logit.

    ``log p = logsigmoid(x)``, ``log(1-p) = logsigmoid(-x)``.  Where
    CenterNet's clamp is inactive (``|x| < 9.21``) the value equals
    :func:`focal_loss` of the clamped sigmoid; beyond, gradients keep
    flowing instead of stopping at the clamp.  Logits are clamped to
    ``+-max_logit`` (50: ``sigmoid`` is 1 - 2e-22 there) so that ``+-inf``
    gives a large finite loss, never inf or NaN.  Computed in float32 for
    half precision inputs.
    """
    _same_shape("logits", logits, "gt", gt)
    x = _at_least_f32(logits).clamp(-max_logit, max_logit)
    gt = gt.to(x.dtype)
    pos = gt.eq(1)
    neg = gt.lt(1)
    log_p = F.logsigmoid(x)
    log_q = F.logsigmoid(-x)
    p = torch.sigmoid(x)
    q = torch.sigmoid(-x)
    pos_loss = sum64(torch.where(pos, log_p * q.pow(alpha), 0.0))
    neg_loss = sum64(torch.where(neg, log_q * p.pow(alpha) * (1 - gt).pow(beta), 0.0))
    num_pos = reduce_num_pos(_count(pos), distributed)
    return (-(pos_loss + neg_loss) / num_pos).to(x.dtype)


def fast_focal_loss_with_logits(logits: Tensor, gt: Tensor, ind: Tensor, mask: Tensor,
                                cat: Tensor | None = None, alpha: float = 2.0, beta: float = 4.0,
                                distributed: bool = False) -> Tensor:
    """Focal loss whose positives come from the object slots instead of ``gt == 1``.

    The negative term is CenterNet's over the whole map (it vanishes at
    ``gt == 1`` by itself); the positive term reads the logits at each
    object's centre: class ``cat`` (B, M) (or 0 when None), flat index ``ind``
    (B, M), where ``mask`` (B, M) is 1.  The count is ``mask.sum()``.  Same
    value as :func:`centernet_focal_loss_with_logits` whenever every peak of
    ``gt`` belongs to exactly one masked object (no centre collisions, no
    CenterNet "no keypoint" persons); no boolean maps are built.
    """
    _same_shape("logits", logits, "gt", gt)
    neg_sum, _ = _CenterNetFocal.apply(logits, gt, alpha, beta, False)
    B, C = logits.shape[:2]
    ind = ind.long()
    flat = ind if cat is None else cat.long() * (logits.shape[2] * logits.shape[3]) + ind
    x = _at_least_f32(logits).reshape(B, -1).gather(1, flat)
    p = clamped_sigmoid(x)
    m = mask.to(torch.bool)
    pos_sum = sum64(torch.where(m, torch.log(p) * (1 - p).pow(alpha), 0.0))
    num_pos = reduce_num_pos(_count(m), distributed)
    return (-(pos_sum + neg_sum) / num_pos).to(x.dtype)


def reg_l1_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """CenterNet's ``RegL1Loss`` after gathering: per-OBJECT mask.

    ``pred``/``target`` (B, M, D), ``mask`` (B, M) 0/1.  Sum of ``|pred - target|``
    over masked slots divided by ``D * objects + 1e-4`` (so by 2x the number
    of objects for ``wh`` and ``reg``).  Unmasked slots never contribute,
    whatever the network outputs there.
    """
    _check_reg("pred", pred, "target", target)
    m = _object_mask(mask, pred)
    return _finish(_masked_l1(pred, target, m) / (_count(m) + 1e-4), pred)


def reg_weighted_l1_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """CenterNet's ``RegWeightedL1Loss`` after gathering: per-COORDINATE mask.

    ``pred``/``target``/``mask`` all (B, M, D): each coordinate has its own
    mask bit (``hps_mask``: a joint outside the map or unlabelled is not
    supervised, its person's other joints are).  Divided by the number of
    masked coordinates + 1e-4.
    """
    _check_reg("pred", pred, "target", target)
    _same_shape("pred", pred, "mask", mask)
    m = mask.to(torch.bool)
    return _finish(_masked_l1(pred, target, m) / (_count(m) + 1e-4), pred)


def norm_reg_l1_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """CenterNet's ``NormRegL1Loss`` (``--norm_wh``): L1 of ``pred / (target + 1e-4)`` against 1.

    ``pred``/``target`` (B, M, D); ``mask`` per object (B, M) (``reg_mask``
    with ``wh``) or per coordinate (B, M, D) (``cat_spec_mask`` with
    ``cat_spec_wh``).  A relative error, divided by the masked coordinates + 1e-4.
    """
    _check_reg("pred", pred, "target", target)
    m = _object_mask(mask, pred) if mask.dim() == 2 else mask.to(torch.bool)
    _same_shape("pred", pred, "mask", m)
    x = _at_least_f32(pred)
    ratio = x / (target.to(x.dtype) + 1e-4)
    return _finish(_masked_l1(ratio, torch.ones_like(ratio), m) / (_count(m) + 1e-4), pred)


def reg_smooth_l1_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """CenterNet's ``RegLoss`` (``--reg_loss sl1``): smooth-L1, divided by OBJECTS + 1e-4.

    ``pred``/``target`` (B, M, D), ``mask`` (B, M).  Note the different
    normalisation from :func:`reg_l1_loss`: the number of masked objects, not
    of masked coordinates.
    """
    _check_reg("pred", pred, "target", target)
    num = _count(mask.to(torch.bool))
    m = _object_mask(mask, pred)
    x = _at_least_f32(pred)
    diff = F.smooth_l1_loss(torch.where(m, x, 0.0), torch.where(m, target.to(x.dtype), 0.0),
                            reduction="none")
    return _finish(sum64(diff) / (num + 1e-4), pred)


def dense_l1_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """The dense masked L1 of ``dense_wh`` / ``dense_hp``: maps (B, D, H, W), weights ``mask``.

    ``sum |pred * mask - target * mask| / (sum(mask) + 1e-4)``; the mask is
    the (soft) centre heatmap, so pixels near centres weigh most.
    """
    _same_shape("pred", pred, "target", target)
    _same_shape("pred", pred, "mask", mask)
    x = _at_least_f32(pred)
    mask = mask.to(x.dtype)
    diff = torch.where(mask != 0, x * mask - target.to(x.dtype) * mask, 0.0)
    return _finish(sum64(diff.abs()) / (sum64(mask) + 1e-4), pred)


def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over every element, used for MSRA heatmaps (``--mse_loss``)."""
    _same_shape("pred", pred, "target", target)
    x = _at_least_f32(pred)
    return _finish(sum64((x - target.to(x.dtype)).square()) / max(x.numel(), 1), pred)


# --- helpers -----------------------------------------------------------------------------------

def _compute_dtype(t: Tensor) -> torch.dtype:
    """float32 for half precision and integer inputs, the input's dtype otherwise."""
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) or \
        not t.is_floating_point() else t.dtype


def _at_least_f32(t: Tensor) -> Tensor:
    return t.to(_compute_dtype(t))


def _finish(value64: Tensor, like: Tensor) -> Tensor:
    """A float64 loss value in the dtype the loss is computed in (float32 at least)."""
    return value64.to(_compute_dtype(like))


def _count(m: Tensor) -> Tensor:
    """Number of True elements of a boolean mask, float64."""
    return m.sum().to(torch.float64)


def _object_mask(mask: Tensor, pred: Tensor) -> Tensor:
    """A per-object mask (B, M) broadcast to ``pred``'s (B, M, D), boolean."""
    if tuple(mask.shape) != tuple(pred.shape[:2]):
        raise ValueError(f"mask has shape {tuple(mask.shape)}: expected {tuple(pred.shape[:2])}"
                         f" (one bit per object of pred {tuple(pred.shape)})")
    return mask.to(torch.bool).unsqueeze(2).expand_as(pred)


def _masked_l1(pred: Tensor, target: Tensor, m: Tensor) -> Tensor:
    """Sum of ``|pred - target|`` where ``m``, float64."""
    x = _at_least_f32(pred)
    return sum64(torch.where(m, x - target.to(x.dtype), 0.0).abs())


def _same_shape(na: str, a: Tensor, nb: str, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{na} has shape {tuple(a.shape)} but {nb} has {tuple(b.shape)}: "
                         "expected equal shapes")


def _check_reg(na: str, a: Tensor, nb: str, b: Tensor) -> None:
    _same_shape(na, a, nb, b)
    if a.dim() != 3:
        raise ValueError(f"{na} has shape {tuple(a.shape)}: expected (B, M, D) gathered values")
