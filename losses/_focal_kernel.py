"""One-pass CPU kernel for CenterNet's focal loss on logits: value and gradient together.

CenterNet evaluates ``p = clamp(sigmoid(x), 1e-4, 1 - 1e-4)`` and then about
fifteen element-wise tensor operations, which autograd mirrors on the way
back.  This kernel walks the map once, accumulating the positive and
negative sums in float64 and writing ``d(-term)/dx`` per element, so the
backward pass is a single multiply.
"""

from __future__ import annotations

import math

import numpy as np

from centertargets.kernels._jit import jit

P_MIN = 1e-4
P_MAX = 1.0 - 1e-4


@jit
def focal_value_and_grad(x: np.ndarray, gt: np.ndarray, grad: np.ndarray, with_pos: bool,
                         alpha: float, beta: float) -> tuple[float, float, float]:
    """Sums of CenterNet's focal terms over flat arrays, and the unnormalised gradient.

    ``x`` logits and ``gt`` targets (same length, float32 or float64);
    ``grad`` receives ``-d(term)/dx`` (zero where the clamp is active, as in
    CenterNet).  ``with_pos=False`` treats every element as a negative
    weighted by ``(1 - gt)^beta`` (zero at ``gt == 1``), for losses that take
    their positives elsewhere.  Returns ``(pos_sum, neg_sum, num_pos)``.
    """
    pos_sum = 0.0
    neg_sum = 0.0
    num_pos = 0.0
    for i in range(x.shape[0]):
        xi = float(x[i])
        g = float(gt[i])
        p = 1.0 / (1.0 + math.exp(-xi))
        live = True
        if p < P_MIN:
            p = P_MIN
            live = False
        elif p > P_MAX:
            p = P_MAX
            live = False
        q = 1.0 - p
        d = 0.0
        if with_pos and g == 1.0:
            lp = math.log(p)
            pos_sum += lp * q ** alpha
            num_pos += 1.0
            if live:
                # d/dx [log p * q^a] with dp/dx = p q
                d = q ** (alpha + 1.0) - alpha * p * q ** alpha * lp
        elif g < 1.0:
            w = (1.0 - g) ** beta
            lq = math.log(q)
            neg_sum += lq * p ** alpha * w
            if live:
                # d/dx [log q * p^a * w]
                d = w * (alpha * p ** alpha * q * lq - p ** (alpha + 1.0))
        grad[i] = -d
    return pos_sum, neg_sum, num_pos
