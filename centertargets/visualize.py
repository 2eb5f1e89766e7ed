"""Pictures of targets: numpy/OpenCV renderings returned as RGB uint8 arrays.

Nothing here opens a window; show the arrays with matplotlib's ``imshow``
in a notebook, or write them with :func:`save_png`.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from .coco import COCO_SKELETON


def palette(n: int) -> np.ndarray:
    """``n`` distinct RGB colours (uint8, (n, 3)), evenly spaced in hue."""
    hsv = np.stack([np.arange(n) * 180 // max(n, 1), np.full(n, 220), np.full(n, 255)], 1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0]


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """Heatmap(s) (C, H, W) or (H, W) in [0, 1] -> RGB uint8 (H, W, 3).

    One colour per channel, brightness = value; where channels overlap the
    strongest wins (like CenterNet's debugger).
    """
    hm = np.asarray(heatmap, np.float32)
    if hm.ndim == 2:
        v = np.clip(hm, 0, 1)
        return cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1].copy()
    colors = palette(hm.shape[0]).astype(np.float32)
    arg = hm.argmax(0)
    val = np.clip(hm.max(0), 0, 1)
    return (colors[arg] * val[..., None]).astype(np.uint8)


def _upsample(img: np.ndarray, scale: int) -> np.ndarray:
    return cv2.resize(img, (img.shape[1] * scale, img.shape[0] * scale),
                      interpolation=cv2.INTER_NEAREST)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = np.zeros((img.shape[0] + 22, img.shape[1], 3), np.uint8)
    out[22:] = img
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def draw_objects(canvas: np.ndarray, targets: dict[str, np.ndarray], output_width: int,
                 scale: int, skeleton: Sequence[tuple[int, int]] = COCO_SKELETON) -> np.ndarray:
    """Draw what the per-object targets say onto an RGB canvas upsampled by ``scale``.

    Boxes from ``ind`` + ``reg`` and ``wh`` (white), centres (white dots),
    joints from ``hps`` (cyan lines from the centre) and the skeleton.  Only
    slots with ``reg_mask == 1`` (or a centre) are drawn.  Returns ``canvas``.
    """
    W = output_width
    ind, mask = targets["ind"], targets["reg_mask"]
    for k in np.flatnonzero((mask > 0) | (ind > 0)):
        cx, cy = float(ind[k] % W), float(ind[k] // W)
        if "reg" in targets:
            cx, cy = cx + targets["reg"][k, 0], cy + targets["reg"][k, 1]
        else:
            cx, cy = cx + 0.5, cy + 0.5
        c = (int(round(cx * scale)), int(round(cy * scale)))
        if "wh" in targets:
            w, h = targets["wh"][k]
            p1 = (int(round((cx - w / 2) * scale)), int(round((cy - h / 2) * scale)))
            p2 = (int(round((cx + w / 2) * scale)), int(round((cy + h / 2) * scale)))
            cv2.rectangle(canvas, p1, p2, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.circle(canvas, c, max(2, scale // 2), (255, 255, 255), -1, cv2.LINE_AA)
        if "hps" in targets:
            J = targets["hps"].shape[1] // 2
            on = targets["hps_mask"][k].reshape(J, 2)[:, 0] > 0
            base = np.floor([ind[k] % W, ind[k] // W])
            pts = (base + targets["hps"][k].reshape(J, 2)) * scale
            for j in np.flatnonzero(on):
                cv2.line(canvas, c, tuple(int(v) for v in pts[j]), (0, 200, 255), 1, cv2.LINE_AA)
            for a, b in skeleton:
                if a < J and b < J and on[a] and on[b]:
                    cv2.line(canvas, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]),
                             (80, 255, 120), 2, cv2.LINE_AA)
    return canvas


def render_targets(targets: dict[str, np.ndarray], config: Any, scale: int = 3,
                   image: np.ndarray | None = None) -> np.ndarray:
    """A labelled grid of panels showing every target family of one sample (RGB uint8).

    Panels: ``hm`` with the objects drawn on it; ``hm_hp`` (max over joints,
    one colour per joint) for pose; ``dense_wh`` / ``dense_hps`` magnitude
    and their masks when present; ``image`` (RGB, already in output-map
    geometry or any size) underneath the first panel when given.
    """
    W, H = config.output_size
    hm_rgb = _upsample(colorize(targets["hm"]), scale)
    if image is not None:
        base = cv2.resize(np.asarray(image, np.uint8), (W * scale, H * scale))
        hm_rgb = cv2.addWeighted(base, 0.5, hm_rgb, 0.8, 0)
    panels = [_label(draw_objects(hm_rgb.copy(), targets, W, scale), "hm + boxes, centres, hps")]
    if "hm_hp" in targets:
        joints = _upsample(colorize(targets["hm_hp"]), scale)
        if "hp_ind" in targets:
            on = targets["hp_mask"] > 0
            xs = targets["hp_ind"][on] % W + targets["hp_offset"][on, 0]
            ys = targets["hp_ind"][on] // W + targets["hp_offset"][on, 1]
            for x, y in zip(xs, ys):
                cv2.circle(joints, (int(x * scale), int(y * scale)), 2, (255, 255, 255), -1)
        panels.append(_label(joints, "hm_hp (max over joints) + hp_offset"))
    for name in ("dense_wh", "dense_hps"):
        if name in targets:
            mag = np.abs(targets[name]).max(0)
            mag = mag / max(float(mag.max()), 1e-6)
            panels.append(_label(_upsample(colorize(mag), scale), f"|{name}| (max over channels)"))
            panels.append(_label(_upsample(colorize(targets[name + "_mask"][0]), scale),
                                 f"{name}_mask"))
    return np.concatenate(panels, axis=1)


def save_png(path: str, rgb: np.ndarray) -> None:
    """Write an RGB uint8 array as PNG."""
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")
