"""CenterNet's loss formulas in float64 numpy, written from their definitions for the tests.

Nothing here imports the package's losses: these are the independent
evaluations the torch losses are checked against.  Arrays: outputs (B, D, H, W),
gathered values (B, M, D), masks per object (B, M) or per coordinate (B, M, D).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

F64 = np.float64


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))      # no overflow for large |x|


def focal(x: np.ndarray, gt: np.ndarray, kind: str = "centernet", ind: np.ndarray | None = None,
          mask: np.ndarray | None = None, cat: np.ndarray | None = None) -> float:
    """The penalty-reduced focal loss of logits ``x`` against ``gt`` (B, C, H, W).

    ``kind``: ``"centernet"`` (p = clamp(sigmoid(x), 1e-4, 1 - 1e-4)),
    ``"logits"`` (exact log-sigmoid of x clamped to +-50) or ``"fast"``
    (negatives as centernet; positives read at class ``cat``, pixel ``ind``
    where ``mask``, counted by the mask).
    """
    x = np.asarray(x)
    gt = np.asarray(gt)
    pos = neg = 0.0
    num = 0
    for xb, gb in zip(x, gt):                 # image by image: small temporaries
        xb, gb = xb.astype(F64), gb.astype(F64)
        if kind == "logits":
            xb = np.clip(xb, -50.0, 50.0)
            log_p, log_q = -np.logaddexp(0.0, -xb), -np.logaddexp(0.0, xb)
            p, q = np.exp(log_p), np.exp(log_q)
        else:
            p = np.clip(_sigmoid(xb), 1e-4, 1 - 1e-4)
            q = 1.0 - p
            log_p, log_q = np.log(p), np.log(q)
        neg += np.sum(np.where(gb < 1, log_q * p ** 2 * (1 - gb) ** 4, 0.0))
        if kind != "fast":
            pos += np.sum(np.where(gb == 1, log_p * q ** 2, 0.0))
            num += int((gb == 1).sum())
    if kind == "fast":
        B, C, H, W = x.shape
        flat = np.asarray(ind, np.int64) + (0 if cat is None else np.asarray(cat, np.int64) * H * W)
        xp = np.take_along_axis(x.reshape(B, -1), flat, 1).astype(F64)
        pp = np.clip(_sigmoid(xp), 1e-4, 1 - 1e-4)
        m = np.asarray(mask).astype(bool)
        pos = np.sum(np.log(pp[m]) * (1 - pp[m]) ** 2)
        num = int(m.sum())
    return float(-(pos + neg) / num) if num else float(-neg)


def gather(out: np.ndarray, ind: np.ndarray) -> np.ndarray:
    """``out`` (B, D, H, W) read at flat pixels ``ind`` (B, M) -> (B, M, D)."""
    B, D = out.shape[:2]
    flat = np.asarray(out, F64).reshape(B, D, -1)
    return np.stack([flat[b][:, ind[b]].T for b in range(B)])


def _expand(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, F64)
    return np.broadcast_to(m[..., None], like.shape) if m.ndim == 2 else m


def l1(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """RegL1Loss (per-object mask) or RegWeightedL1Loss (per-coordinate mask)."""
    m = _expand(mask, pred)
    return float(np.sum(np.abs(pred - target) * m) / (m.sum() + 1e-4))


def norm_l1(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """NormRegL1Loss: ``|pred / (target + 1e-4) - 1|`` over the mask."""
    m = _expand(mask, pred)
    return float(np.sum(np.abs(pred / (np.asarray(target, F64) + 1e-4) - 1) * m) / (m.sum() + 1e-4))


def smooth_l1(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """RegLoss: smooth-L1 (beta 1) over the per-object mask, divided by the object count."""
    m = _expand(mask, pred)
    d = np.abs(pred * m - np.asarray(target, F64) * m)
    return float(np.sum(np.where(d < 1, 0.5 * d * d, d - 0.5)) / (np.sum(mask) + 1e-4))


def dense_l1(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    m = np.asarray(mask, F64)
    return float(np.sum(np.abs(pred * m - target * m)) / (m.sum() + 1e-4))


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean((np.asarray(pred, F64) - np.asarray(target, F64)) ** 2))


def ctdet_loss(out: Mapping[str, np.ndarray], t: Mapping[str, np.ndarray], *, msra: bool = False,
               focal_kind: str = "centernet", reg_loss: str = "l1", norm_wh: bool = False,
               weights: tuple[float, float, float] = (1.0, 0.1, 1.0)) -> dict[str, float]:
    """CenterNet's ``CtdetLoss`` stats (one stack), with the size target the batch carries."""
    reg = smooth_l1 if reg_loss == "sl1" else l1
    if msra:
        hm = mse(out["hm"], t["hm"])
    else:
        hm = focal(out["hm"], t["hm"], focal_kind, t["ind"], t["reg_mask"], t.get("cat"))
    if "dense_wh" in t:
        wh = dense_l1(out["wh"], t["dense_wh"], t["dense_wh_mask"])
    elif "cat_spec_wh" in t:
        crit = norm_l1 if norm_wh else l1
        wh = crit(gather(out["wh"], t["ind"]), t["cat_spec_wh"], t["cat_spec_mask"])
    else:
        crit = norm_l1 if norm_wh else reg
        wh = crit(gather(out["wh"], t["ind"]), t["wh"], t["reg_mask"])
    off = reg(gather(out["reg"], t["ind"]), t["reg"], t["reg_mask"]) if "reg" in t else 0.0
    w_hm, w_wh, w_off = weights
    return {"loss": w_hm * hm + w_wh * wh + w_off * off, "hm_loss": hm, "wh_loss": wh,
            "off_loss": off}


def multi_pose_loss(out: Mapping[str, np.ndarray], t: Mapping[str, np.ndarray], *,
                    msra: bool = False, focal_kind: str = "centernet", reg_loss: str = "l1"
                    ) -> dict[str, float]:
    """CenterNet's ``MultiPoseLoss`` stats (one stack, default weights)."""
    reg = smooth_l1 if reg_loss == "sl1" else l1
    hm = focal(out["hm"], t["hm"], focal_kind, t["ind"], t["reg_mask"], t.get("cat"))
    if "dense_hps" in t:
        hp = dense_l1(out["hps"], t["dense_hps"], t["dense_hps_mask"])
    else:
        hp = l1(gather(out["hps"], t["ind"]), t["hps"], t["hps_mask"])
    wh = reg(gather(out["wh"], t["ind"]), t["wh"], t["reg_mask"])
    off = reg(gather(out["reg"], t["ind"]), t["reg"], t["reg_mask"]) if "reg" in t else 0.0
    hp_off = reg(gather(out["hp_offset"], t["hp_ind"]), t["hp_offset"], t["hp_mask"]) \
        if "hp_offset" in t else 0.0
    hm_hp = 0.0
    if "hm_hp" in t:
        if msra:
            hm_hp = mse(out["hm_hp"], t["hm_hp"])
        else:
            J = t["hm_hp"].shape[1]
            joint = np.broadcast_to(np.arange(t["hp_ind"].shape[1]) % J, t["hp_ind"].shape) \
                if "hp_ind" in t else None
            hm_hp = focal(out["hm_hp"], t["hm_hp"], focal_kind, t.get("hp_ind"), t.get("hp_mask"),
                          joint)
    loss = hm + 0.1 * wh + off + hp + hm_hp + hp_off
    return {"loss": loss, "hm_loss": hm, "hp_loss": hp, "hm_hp_loss": hm_hp,
            "hp_offset_loss": hp_off, "wh_loss": wh, "off_loss": off}
