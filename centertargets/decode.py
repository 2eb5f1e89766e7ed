"""Decoders: network outputs -> detections (torch, imported lazily).

CenterNet's post-processing: 3x3 max-pool NMS keeps local maxima of the
heatmap, the top K peaks over all classes become detections, each reading
its size, offset and (pose) joint vectors at its pixel.  Coordinates come
out in OUTPUT-map pixels; :func:`to_image` maps them back through the
inverse affine transform.  Dimensions: B batch, C classes, J joints, K peaks.

``import centertargets`` does not import torch; importing this module does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from .tasks import CtdetConfig, MultiPoseConfig


def _torch():
    import torch

    return torch


def nms(heat: "Tensor", kernel: int = 3) -> "Tensor":
    """Zero every pixel that is not the maximum of its ``kernel x kernel`` window; (B, C, H, W)."""
    torch = _torch()
    pad = (kernel - 1) // 2
    hmax = torch.nn.functional.max_pool2d(heat, (kernel, kernel), stride=1, padding=pad)
    return heat * (hmax == heat).to(heat.dtype)


def gather_feat(feat: "Tensor", ind: "Tensor") -> "Tensor":
    """``feat`` (B, N, D) rows at ``ind`` (B, K) -> (B, K, D)."""
    return feat.gather(1, ind.unsqueeze(2).expand(ind.shape[0], ind.shape[1], feat.shape[2]))


def transpose_and_gather(feat: "Tensor", ind: "Tensor") -> "Tensor":
    """Map ``feat`` (B, D, H, W) read at flat pixel indices ``ind`` (B, K) -> (B, K, D)."""
    B, D = feat.shape[:2]
    return feat.reshape(B, D, -1).gather(2, ind.unsqueeze(1).expand(B, D, ind.shape[1])) \
        .transpose(1, 2)


def topk_channel(scores: "Tensor", K: int) -> tuple["Tensor", "Tensor", "Tensor", "Tensor"]:
    """Top K per channel: ``(scores, flat index, y, x)``, each (B, C, K)."""
    torch = _torch()
    B, C, H, W = scores.shape
    s, inds = torch.topk(scores.reshape(B, C, -1), K)
    inds = inds % (H * W)
    return s, inds, (inds // W).float(), (inds % W).float()


def topk(scores: "Tensor", K: int) -> tuple["Tensor", "Tensor", "Tensor", "Tensor", "Tensor"]:
    """CenterNet's two-stage top K: per class, then over classes.

    Returns ``(scores, flat index, class, y, x)``, each (B, K).
    """
    torch = _torch()
    B, C, H, W = scores.shape
    if K < 1:
        raise ValueError(f"K={K}: expected at least 1 peak")
    if K > H * W:
        raise ValueError(f"K={K}: expected at most H*W={H * W} peaks per class")
    s, inds, ys, xs = topk_channel(scores, K)
    score, ind = torch.topk(s.reshape(B, -1), K)
    clses = ind // K
    inds = gather_feat(inds.reshape(B, -1, 1), ind).reshape(B, K)
    ys = gather_feat(ys.reshape(B, -1, 1), ind).reshape(B, K)
    xs = gather_feat(xs.reshape(B, -1, 1), ind).reshape(B, K)
    return score, inds, clses, ys, xs


def ctdet_decode(heat: "Tensor", wh: "Tensor", reg: "Tensor | None" = None,
                 cat_spec_wh: bool = False, K: int = 100) -> "Tensor":
    """CenterNet's ``ctdet_decode``.

    ``heat`` (B, C, H, W) probabilities (sigmoid already applied), ``wh``
    (B, 2 or 2C, H, W), ``reg`` (B, 2, H, W) or None (centres at pixel + 0.5).
    Returns (B, K, 6): ``x1, y1, x2, y2, score, class`` in output pixels.
    """
    torch = _torch()
    B, C, H, W = heat.shape
    heat = nms(heat)
    scores, inds, clses, ys, xs = topk(heat, K)
    if reg is not None:
        r = transpose_and_gather(reg, inds)
        xs = xs.unsqueeze(2) + r[..., 0:1]
        ys = ys.unsqueeze(2) + r[..., 1:2]
    else:
        xs = xs.unsqueeze(2) + 0.5
        ys = ys.unsqueeze(2) + 0.5
    size = transpose_and_gather(wh, inds)
    if cat_spec_wh:
        size = size.reshape(B, K, C, 2).gather(
            2, clses.reshape(B, K, 1, 1).expand(B, K, 1, 2).long()).reshape(B, K, 2)
    half_w, half_h = size[..., 0:1] / 2, size[..., 1:2] / 2
    boxes = torch.cat([xs - half_w, ys - half_h, xs + half_w, ys + half_h], dim=2)
    return torch.cat([boxes, scores.unsqueeze(2), clses.unsqueeze(2).float()], dim=2)


def multi_pose_decode(heat: "Tensor", wh: "Tensor", kps: "Tensor", reg: "Tensor | None" = None,
                      hm_hp: "Tensor | None" = None, hp_offset: "Tensor | None" = None,
                      K: int = 100, hm_hp_thresh: float = 0.1) -> "Tensor":
    """CenterNet's ``multi_pose_decode``.

    ``heat`` (B, C, H, W) and ``hm_hp`` (B, J, H, W) probabilities; ``kps``
    (B, 2J, H, W) joint vectors from the integer centre; ``wh``, ``reg``,
    ``hp_offset`` (B, 2, H, W).  Each regressed joint snaps to the nearest
    ``hm_hp`` peak (score > ``hm_hp_thresh``) if that peak lies inside the box
    and within 0.3 x the box's longer side; otherwise the regression stays.
    Returns (B, K, 4 + 1 + 2J + 1): box, score, joints ``x0, y0, x1, ...``, class.

    Cost of the joint assignment: O(B J K^2) time, O(B J K) memory plus a
    block of about 32 MB (see ``_snap_to_joint_peaks``); K is at most H x W.
    """
    torch = _torch()
    B, C, H, W = heat.shape
    J = kps.shape[1] // 2
    heat = nms(heat)
    scores, inds, clses, ys, xs = topk(heat, K)
    joints = transpose_and_gather(kps, inds).reshape(B, K, J, 2)
    joints = joints + torch.stack([xs, ys], dim=2).unsqueeze(2)
    if reg is not None:
        r = transpose_and_gather(reg, inds)
        cx, cy = xs.unsqueeze(2) + r[..., 0:1], ys.unsqueeze(2) + r[..., 1:2]
    else:
        cx, cy = xs.unsqueeze(2) + 0.5, ys.unsqueeze(2) + 0.5
    size = transpose_and_gather(wh, inds)
    half_w, half_h = size[..., 0:1] / 2, size[..., 1:2] / 2
    boxes = torch.cat([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=2)
    if hm_hp is not None:
        joints = _snap_to_joint_peaks(joints, boxes, nms(hm_hp), hp_offset, K, hm_hp_thresh)
    return torch.cat([boxes, scores.unsqueeze(2), joints.reshape(B, K, 2 * J),
                      clses.unsqueeze(2).float()], dim=2)


#: Elements of one block of the joint-assignment distances (detections x heatmap peaks):
#: 2^20 values; with the differences and squares behind them, about 32 MB at float32.
_SNAP_BLOCK = 2 ** 20


def _snap_to_joint_peaks(joints: "Tensor", boxes: "Tensor", hm_hp: "Tensor",
                         hp_offset: "Tensor | None", K: int, thresh: float) -> "Tensor":
    """Snap each regressed joint to its nearest ``hm_hp`` peak (CenterNet's assignment).

    Every one of the K detections' J regressed joints is compared with the K
    strongest peaks of its joint channel: O(B J K^2) time.  Memory stays
    O(B J K) plus one block of at most ``_SNAP_BLOCK`` distances (about
    32 MB): the detections are taken a block at a time.  Upstream builds
    the whole (B, J, K, K, 2) difference at once: K=1024 on a 32x32 map grew
    the process by 272 MB, blocks by 33 MB.
    Blocking changes no value: each detection's minimum is over the same K
    peaks, computed the same way.
    """
    torch = _torch()
    B, _, J, _ = joints.shape
    reg_kps = joints.permute(0, 2, 1, 3)                                        # B J K(det) 2
    hm_score, hm_inds, hm_ys, hm_xs = topk_channel(hm_hp, K)                    # B J K
    if hp_offset is not None:
        off = transpose_and_gather(hp_offset, hm_inds.reshape(B, -1)).reshape(B, J, K, 2)
        hm_xs = hm_xs + off[..., 0]
        hm_ys = hm_ys + off[..., 1]
    else:
        hm_xs = hm_xs + 0.5
        hm_ys = hm_ys + 0.5
    keep = (hm_score > thresh).to(hm_score.dtype)
    hm_score = (1 - keep) * -1 + keep * hm_score
    hm_ys = (1 - keep) * (-10000) + keep * hm_ys
    hm_xs = (1 - keep) * (-10000) + keep * hm_xs
    peaks = torch.stack([hm_xs, hm_ys], dim=-1)                                 # B J K(peak) 2
    min_dist = torch.empty(B, J, K, dtype=peaks.dtype, device=peaks.device)
    min_ind = torch.empty(B, J, K, dtype=torch.long, device=peaks.device)
    step = max(1, _SNAP_BLOCK // max(1, B * J * K))
    for k0 in range(0, K, step):
        block = reg_kps[:, :, k0:k0 + step].unsqueeze(3)                        # B J k 1 2
        dist = ((block - peaks.unsqueeze(2)) ** 2).sum(dim=4) ** 0.5            # B J k K
        min_dist[:, :, k0:k0 + step], min_ind[:, :, k0:k0 + step] = dist.min(dim=3)
    hm_score = hm_score.gather(2, min_ind).unsqueeze(-1)
    min_dist = min_dist.unsqueeze(-1)
    hm_kps = peaks.gather(2, min_ind.unsqueeze(-1).expand(B, J, K, 2))          # B J K 2
    l = boxes[:, :, 0].reshape(B, 1, K, 1)
    t = boxes[:, :, 1].reshape(B, 1, K, 1)
    r = boxes[:, :, 2].reshape(B, 1, K, 1)
    b = boxes[:, :, 3].reshape(B, 1, K, 1)
    reject = (hm_kps[..., 0:1] < l) | (hm_kps[..., 0:1] > r) | (hm_kps[..., 1:2] < t) | \
             (hm_kps[..., 1:2] > b) | (hm_score < thresh) | \
             (min_dist > (torch.max(b - t, r - l) * 0.3))
    reject = reject.to(joints.dtype).expand(B, J, K, 2)
    snapped = (1 - reject) * hm_kps + reject * reg_kps
    return snapped.permute(0, 2, 1, 3)


def to_image(points: np.ndarray, center: Sequence[float], scale: float | Sequence[float],
             output_size: Sequence[int]) -> np.ndarray:
    """Output-map points (..., 2) back to image pixels (CenterNet's ``transform_preds``).

    ``center``/``scale`` are the sample's ``c``/``s``; ``output_size`` (w, h).
    Use it on ``dets[..., [0, 1]]``, ``dets[..., [2, 3]]`` and the joints.
    """
    from .geometry import get_affine_transform, transform_points

    inv = get_affine_transform(np.asarray(center, np.float32), scale if np.ndim(scale) == 0
                               else np.asarray(scale, np.float32), 0, list(output_size), inv=True)
    return transform_points(points, inv)


def detections_to_image(dets: Any, meta: Mapping[str, Any],
                        flip_idx: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """Decoded detections in output-map pixels -> pixels of each item's original image.

    ``dets``: (B, K, 6) ctdet or (B, K, 6 + 2J) multi_pose rows (``x1, y1, x2,
    y2, score, [joints,] class``), a tensor or an array; ``meta``: the batch's
    collated ``meta`` (from :class:`~centertargets.CenterNetDataset` items), or
    one item's ``meta`` with ``dets`` (K, D).  Each item's affine transform
    (``center``, ``scale``, ``rot``, ``output_size``) is inverted; a box maps
    through its 4 corners (their hull, exact without rotation); a flipped item
    is mirrored back (``x -> width - 1 - x``) and its left/right joints
    swapped with ``flip_idx`` (the dataset's ``config.flip_idx``).  Returns a
    float32 array of ``dets``' shape; scores and classes are copied unchanged.
    """
    from .geometry import get_affine_transform, transform_boxes, transform_points

    d = dets.detach().cpu().numpy() if hasattr(dets, "detach") else np.asarray(dets)
    keys = ("center", "scale", "rot", "flipped", "image_size", "output_size")
    m = {k: (meta[k].detach().cpu().numpy() if hasattr(meta[k], "detach") else
             np.asarray(meta[k])) for k in keys}
    single = m["center"].ndim == 1
    if single:
        d, m = d[None], {k: v[None] for k, v in m.items()}
    if d.ndim != 3 or d.shape[2] < 6 or (d.shape[2] - 6) % 2 or d.shape[0] != len(m["center"]):
        raise ValueError(f"dets has shape {d.shape}: expected (B, K, 6 + 2J) with B = "
                         f"{len(m['center'])} items in meta")
    J = (d.shape[2] - 6) // 2
    out = d.astype(np.float32, copy=True)
    for b in range(d.shape[0]):
        inv = get_affine_transform(m["center"][b], m["scale"][b].astype(np.float64),
                                   float(m["rot"][b]), [int(v) for v in m["output_size"][b]],
                                   inv=True)
        boxes = transform_boxes(d[b, :, :4], inv, corners=True)
        joints = transform_points(d[b, :, 5:5 + 2 * J].reshape(-1, J, 2), inv)
        if bool(m["flipped"][b]):
            width = float(m["image_size"][b][0])
            boxes = np.stack([width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0],
                              boxes[:, 3]], axis=1)
            joints[..., 0] = width - 1 - joints[..., 0]
            for a, c in flip_idx:
                joints[:, [a, c]] = joints[:, [c, a]]
        out[b, :, :4] = boxes
        out[b, :, 5:5 + 2 * J] = joints.reshape(-1, 2 * J)
    return out[0] if single else out


def flip_test(outputs: "Mapping[str, Tensor]", config: Any) -> dict[str, "Tensor"]:
    """CenterNet's flip test: merge the outputs of images (first half of the batch) and of
    the same images mirrored horizontally (second half), as upstream's detectors do.

    ``outputs``: raw head outputs (logits) of a batch of 2B images, ``[x, x.flip(3)]``;
    ``config``: a ctdet or multi_pose config.  Returns B outputs for a decoder with
    ``apply_sigmoid=False``: heatmaps as probabilities, ``(p + mirrored p) / 2`` (``hm_hp``
    with its left/right joint channels swapped back), ``wh`` averaged with its mirror,
    ``hps`` averaged with its mirror whose x offsets are negated and joints swapped, and
    ``reg``/``hp_offset`` of the unflipped images only (upstream's arithmetic, float32).
    """
    import torch

    heads = config.head_spec()
    known = {"hm", "hm_hp", "wh", "hps", "reg", "hp_offset"}
    if set(heads) - known:
        raise ValueError(f"flip_test: heads {sorted(set(heads) - known)} of "
                         f"{type(config).__name__}: expected ctdet or multi_pose heads")
    if "hps" in heads and getattr(config, "flip_idx", None) is None:
        raise ValueError(f"{type(config).__name__}.flip_idx=None: expected the left/right "
                         "joint pairs (the dataset completes them from the file: use "
                         "dataset.config, or MultiPoseConfig.from_coco)")
    flip_idx = tuple(getattr(config, "flip_idx", None) or ())
    B2 = None
    out: dict[str, "Tensor"] = {}
    for name, head in heads.items():
        x = outputs[name].float()
        if B2 is None:
            B2 = x.shape[0]
            if B2 % 2:
                raise ValueError(f"outputs[{name!r}] has {B2} images: expected 2B, the images "
                                 "then the same images mirrored")
        B = B2 // 2
        if x.shape[0] != B2:
            raise ValueError(f"outputs[{name!r}] has {x.shape[0]} images: expected {B2}")
        if head.kind == "heatmap":
            x = x.sigmoid()
        a, b = x[:B], torch.flip(x[B:], [3])
        if name in ("reg", "hp_offset"):
            out[name] = a
            continue
        if name == "hm_hp":
            b = b[:, _swap_perm(b.shape[1], flip_idx)]
        elif name == "hps":
            J = b.shape[1] // 2
            b = b.reshape(B, J, 2, *b.shape[2:]).clone()
            b[:, :, 0] *= -1
            b = b[:, _swap_perm(J, flip_idx)].reshape(B, 2 * J, *b.shape[3:])
        out[name] = (a + b) / 2
    return out


def _swap_perm(n: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Channel order that swaps each left/right pair."""
    perm = list(range(n))
    for i, j in pairs:
        perm[i], perm[j] = perm[j], perm[i]
    return perm


class Decoder:
    """Reads the heads of ``config.head_spec()`` from a model's outputs and decodes them."""

    def __init__(self, config: "CtdetConfig | MultiPoseConfig", K: int = 100,
                 apply_sigmoid: bool = True) -> None:
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
            raise ValueError(f"K={K!r}: expected an int >= 1 (detections per image)")
        W, H = config.output_size
        if K > W * H:
            raise ValueError(f"K={K}: expected at most {W * H} (the output map's {W}x{H} pixels)")
        self.config, self.K, self.apply_sigmoid = config, int(K), bool(apply_sigmoid)
        self.heads = config.head_spec()

    def heads_of(self, outputs: "Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]]"
                 ) -> dict[str, "Tensor"]:
        """Every head of the config, checked, with a sigmoid on the heatmap heads.

        ``outputs`` is a dict of head tensors, or a list of them (one per stack;
        the last is decoded, as CenterNet does).  Heatmap heads (``kind ==
        "heatmap"``) get a sigmoid unless ``apply_sigmoid=False``; MSRA
        heatmaps are regressed and never do.
        """
        from .spec import check_head

        if isinstance(outputs, (list, tuple)):
            if not outputs:
                raise ValueError("outputs is an empty list: expected a dict of head tensors "
                                 "or one per stack")
            outputs = outputs[-1]
        got: dict[str, "Tensor"] = {}
        B = None
        for name, head in self.heads.items():
            t = check_head(outputs, head, B, self.config.describe())
            B = t.shape[0]
            t = t.detach()
            if head.kind == "heatmap" and self.apply_sigmoid:
                t = t.float().sigmoid()
            got[name] = t.float()
        return got


class CtdetDecoder(Decoder):
    """Decode ctdet head outputs with the config's heads: ``dec(outputs) -> (B, K, 6)``.

    ``outputs`` holds the heads of ``config.head_spec()`` as logits
    (``apply_sigmoid=True``, the default) or, with ``apply_sigmoid=False``,
    probabilities; a missing or misshapen head is an error naming it.
    Detections are ``x1, y1, x2, y2, score, class`` in output-map pixels,
    as float32 tensors without gradient.
    """

    def __call__(self, outputs: "Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]]"
                 ) -> "Tensor":
        h = self.heads_of(outputs)
        return ctdet_decode(h["hm"], h["wh"], h.get("reg"), cat_spec_wh=self.config.cat_spec_wh,
                            K=self.K)


class MultiPoseDecoder(Decoder):
    """Decode multi_pose head outputs with the config's heads: ``dec(outputs) -> (B, K, 6 + 2J)``.

    As :class:`CtdetDecoder`; each row is ``x1, y1, x2, y2, score, x0, y0, ...,
    x_{J-1}, y_{J-1}, class`` in output-map pixels.
    """

    def __call__(self, outputs: "Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]]"
                 ) -> "Tensor":
        h = self.heads_of(outputs)
        return multi_pose_decode(h["hm"], h["wh"], h["hps"], h.get("reg"), h.get("hm_hp"),
                                 h.get("hp_offset"), K=self.K)


def oracle_outputs(targets: dict, config: "CtdetConfig | MultiPoseConfig") -> dict:
    """Perfect head outputs for one sample's targets, as torch tensors with a batch of 1.

    Heatmaps are the targets themselves (probabilities, so decode with the
    functional decoders or ``apply_sigmoid=False``); regression heads hold
    each object's target at its ``ind`` pixel (joint offsets at ``hp_ind``),
    or the dense targets.  Decoding them gives back the encoded objects up to
    the documented quantisation: this is CenterNet's ``eval_oracle_*``.
    """
    torch = _torch()
    W, H = config.output_size

    def scatter(values: np.ndarray, ind: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = np.zeros((values.shape[1], H * W), np.float32)
        keep = mask.astype(bool)
        out[:, ind[keep]] = values[keep].T
        return out.reshape(values.shape[1], H, W)

    t = targets
    out = {"hm": t["hm"]}
    # slots holding an object: supervised ones, and unsupervised ones that still have a centre
    obj = t["reg_mask"].astype(bool) | (t["ind"] != 0)
    if "dense_wh" in t:
        out["wh"] = t["dense_wh"]
    elif "cat_spec_wh" in t:
        out["wh"] = scatter(t["cat_spec_wh"], t["ind"], obj)
    else:
        out["wh"] = scatter(t["wh"], t["ind"], obj)
    if "reg" in t:
        out["reg"] = scatter(t["reg"], t["ind"], obj)
    if "hps" in t:
        out["hps"] = scatter(t["hps"], t["ind"], obj)
    if "dense_hps" in t:
        out["hps"] = t["dense_hps"]
    if "hm_hp" in t:
        out["hm_hp"] = t["hm_hp"]
    if "hp_offset" in t:
        out["hp_offset"] = scatter(t["hp_offset"], t["hp_ind"], t["hp_mask"])
    return {k: torch.from_numpy(np.ascontiguousarray(v, np.float32))[None] for k, v in out.items()}
