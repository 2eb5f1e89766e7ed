"""Pictures of targets: numpy/OpenCV renderings returned as RGB uint8 arrays.

Nothing here opens a window; show the arrays with matplotlib's ``imshow``
in a notebook, or write them with :func:`save_png`.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from .augment import COCO_MEAN_BGR, COCO_STD_BGR
from .geometry import box_3d_corners


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
    """``img`` under a title, the font shrunk (down to 0.3) until the title fits."""
    out = np.zeros((img.shape[0] + 22, img.shape[1], 3), np.uint8)
    out[22:] = img
    size = 0.5
    while size > 0.3 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, 1)[0][0] > \
            img.shape[1] - 8:
        size -= 0.05
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, size, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def draw_objects(canvas: np.ndarray, targets: dict[str, np.ndarray], output_width: int,
                 scale: int, skeleton: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """Draw what the per-object targets say onto an RGB canvas upsampled by ``scale``.

    Boxes from ``ind`` + ``reg`` and ``wh``, centres, joints from ``hps``
    (cyan lines from the centre, only where ``hps_mask`` is 1) and the
    ``skeleton`` (pairs of joint indices; none by default).  Supervised
    objects (``reg_mask`` 1) are white, or with several classes in their
    class's colour (the ``hm`` channel peaking at ``ind``, as
    :func:`colorize` paints it); objects with a centre but ``reg_mask`` 0 (a
    person without labelled keypoints) are red.  Returns ``canvas``.
    """
    W = output_width
    ind, mask = targets["ind"], targets["reg_mask"]
    hm = targets.get("hm")
    colours = palette(hm.shape[0]) if hm is not None and hm.shape[0] > 1 else None
    for k in np.flatnonzero((mask > 0) | (ind > 0)):
        colour = (255, 255, 255) if mask[k] > 0 else (255, 60, 60)
        if colours is not None and mask[k] > 0:
            cls = int(hm.reshape(hm.shape[0], -1)[:, ind[k]].argmax())
            colour = tuple(int(v) for v in colours[cls])
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
            cv2.rectangle(canvas, p1, p2, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, c, max(2, scale // 2), colour, -1, cv2.LINE_AA)
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


def network_input_to_rgb(inp: np.ndarray, mean: np.ndarray = COCO_MEAN_BGR,
                         std: np.ndarray = COCO_STD_BGR) -> np.ndarray:
    """A normalised network input (3, H, W) float32 BGR back to an RGB uint8 picture."""
    x = np.asarray(inp, np.float32).transpose(1, 2, 0) * np.asarray(std, np.float32) + \
        np.asarray(mean, np.float32)
    return np.ascontiguousarray((np.clip(x, 0, 1) * 255).astype(np.uint8)[..., ::-1])


#: Legend rows at most (COCO's 17 joints fit in one column): a file with hundreds of joints
#: (DeepFashion2: 294) gets the first ones named and a count of the rest, not a legend taller
#: than the picture.
LEGEND_MAX_ROWS = 18


def _legend(names: Sequence[str], width: int) -> np.ndarray:
    """A strip naming each joint in its ``palette`` colour (at most ``LEGEND_MAX_ROWS`` rows)."""
    colours = palette(len(names))
    per_row = max(1, width // 110)
    shown = min(len(names), per_row * LEGEND_MAX_ROWS)
    if shown < len(names):
        shown -= 1                        # room for "+ N more"
    rows = (shown + (shown < len(names)) + per_row - 1) // per_row
    out = np.zeros((rows * 16 + 4, width, 3), np.uint8)
    for j in range(shown):
        x, y = (j % per_row) * 110 + 4, (j // per_row) * 16 + 14
        cv2.rectangle(out, (x, y - 9), (x + 9, y), tuple(int(v) for v in colours[j]), -1)
        cv2.putText(out, str(names[j])[:14], (x + 13, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (230, 230, 230), 1, cv2.LINE_AA)
    if shown < len(names):
        x, y = (shown % per_row) * 110 + 4, (shown // per_row) * 16 + 14
        cv2.putText(out, f"+ {len(names) - shown} more", (x, y), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, (230, 230, 230), 1, cv2.LINE_AA)
    return out


def mark_unsupervised_joints(canvas: np.ndarray, targets: dict[str, np.ndarray],
                             keypoints: np.ndarray, scale: int) -> np.ndarray:
    """Red crosses at labelled joints (``keypoints`` (N, J, 3) x, y, v in output pixels, the
    sample's annotations) whose ``hps_mask`` is 0: outside the map, or of a person beyond
    ``max_objs``; the targets say nothing about them.  Returns ``canvas``."""
    kp = np.asarray(keypoints, np.float32)
    mask = targets["hps_mask"]
    M = mask.shape[0]
    for k in range(len(kp)):
        for j in np.flatnonzero(kp[k, :, 2] > 0):
            if k < M and mask[k, 2 * j] > 0:
                continue
            x, y = int(round(kp[k, j, 0] * scale)), int(round(kp[k, j, 1] * scale))
            cv2.drawMarker(canvas, (x, y), (255, 40, 40), cv2.MARKER_TILTED_CROSS,
                           max(6, 2 * scale), 2, cv2.LINE_AA)
    return canvas


def render_targets(targets: dict[str, np.ndarray], config: Any, scale: int = 3,
                   image: np.ndarray | None = None, skeleton: Sequence[tuple[int, int]] = (),
                   joint_names: Sequence[str] | None = None,
                   keypoints: np.ndarray | None = None) -> np.ndarray:
    """A labelled grid of panels showing every target family of one sample (RGB uint8).

    Panels: ``hm`` with the objects drawn on it (supervised objects white,
    ``reg_mask`` 0 red; pose: joint vectors and the ``skeleton``); any other
    heatmap ``hm_*`` of the task (exdet's ``hm_t`` ... ``hm_c``, with the
    supervised points of ``ind_*`` / ``reg_*``); ``hm_hp``
    (one colour per joint, with a legend naming the joints when
    ``joint_names`` is given) for pose; ``dense_wh`` / ``dense_hps``
    magnitude and their masks when present.  ``image``: an RGB picture of the
    network input (e.g. :func:`network_input_to_rgb` of the item's
    ``input``) shown under the heatmaps.  ``keypoints``: the sample's joints in
    output pixels (``sample_annotations(...).keypoints``): labelled joints that
    the targets do not supervise (``hps_mask`` 0) are marked with red crosses.  An item of
    a ``heatmaps="sparse"`` config has its ``draws`` rendered first.
    """
    if "draws" in targets:                     # a heatmaps="sparse" item: its maps drawn
        from .sparse import render

        targets = render(targets, config)
    W, H = config.output_size
    base = None
    if image is not None:
        base = cv2.resize(np.asarray(image, np.uint8), (W * scale, H * scale),
                          interpolation=cv2.INTER_AREA)

    def over(rgb: np.ndarray) -> np.ndarray:
        return rgb if base is None else cv2.addWeighted(base, 0.55, rgb, 0.9, 0)

    panels = []
    if "hm" in targets:
        hm_rgb = over(_upsample(colorize(targets["hm"]), scale))
        title = "hm + boxes, centres" + (", hps" if "hps" in targets else "")
        canvas = draw_objects(hm_rgb.copy(), targets, W, scale, skeleton)
        if keypoints is not None and "hps_mask" in targets:
            canvas = mark_unsupervised_joints(canvas, targets, keypoints, scale)
            title = "hm, objects, hps; x: joint not supervised"
        panels.append(_label(canvas, title))
    for name, arr in targets.items():     # a task's other heatmaps (exdet's hm_t ... hm_c)
        if not name.startswith("hm_") or name == "hm_hp" or np.ndim(arr) != 3:
            continue
        rgb = over(_upsample(colorize(arr), scale))
        ind, reg = targets.get("ind_" + name[3:]), targets.get("reg_" + name[3:])
        if ind is not None and reg is not None and "reg_mask" in targets:
            on = targets["reg_mask"] > 0                   # the supervised points, sub-pixel
            for x, y in zip(ind[on] % W + reg[on, 0], ind[on] // W + reg[on, 1]):
                cv2.circle(rgb, (int(x * scale), int(y * scale)), 2, (255, 255, 255), -1)
        panels.append(_label(rgb, name + (" + points" if ind is not None else "")))
    if "hm_hp" in targets:
        joints = over(_upsample(colorize(targets["hm_hp"]), scale))
        if "hp_ind" in targets:
            on = targets["hp_mask"] > 0
            xs = targets["hp_ind"][on] % W + targets["hp_offset"][on, 0]
            ys = targets["hp_ind"][on] // W + targets["hp_offset"][on, 1]
            for x, y in zip(xs, ys):
                cv2.circle(joints, (int(x * scale), int(y * scale)), 2, (255, 255, 255), -1)
        panel = _label(joints, "hm_hp + hp_offset")
        if joint_names:
            panel = np.concatenate([panel, _legend(joint_names, panel.shape[1])], axis=0)
        panels.append(panel)
    for name in ("dense_wh", "dense_hps"):
        if name in targets:
            mag = np.abs(targets[name]).max(0)
            mag = mag / max(float(mag.max()), 1e-6)
            panels.append(_label(_upsample(colorize(mag), scale), f"|{name}| (max over channels)"))
            panels.append(_label(_upsample(colorize(targets[name + "_mask"][0]), scale),
                                 f"{name}_mask"))
    height = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0))) for p in panels]
    return np.concatenate(panels, axis=1)


def draw_people(canvas: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray | None,
                skeleton: Sequence[tuple[int, int]] = (), colour: tuple[int, int, int] =
                (255, 255, 255)) -> np.ndarray:
    """Boxes (N, 4) x1, y1, x2, y2 and keypoints (N, J, 2 or 3) on an RGB image.

    Unlabelled joints (v = 0) are not drawn; occluded ones (v = 1) are hollow
    circles, visible ones (v = 2, or no v) filled.
    """
    for k, b in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        cv2.rectangle(canvas, (int(round(b[0])), int(round(b[1]))),
                      (int(round(b[2])), int(round(b[3]))), colour, 2, cv2.LINE_AA)
        if keypoints is None:
            continue
        kp = np.asarray(keypoints[k], np.float64)
        vis = kp[:, 2] > 0 if kp.shape[1] > 2 else np.ones(len(kp), bool)
        for a, c in skeleton:
            if vis[a] and vis[c]:
                cv2.line(canvas, (int(kp[a, 0]), int(kp[a, 1])), (int(kp[c, 0]), int(kp[c, 1])),
                         colour, 2, cv2.LINE_AA)
        for j in np.flatnonzero(vis):     # visible joints filled, occluded ones (v = 1) hollow
            filled = -1 if kp.shape[1] < 3 or kp[j, 2] != 1 else 1
            cv2.circle(canvas, (int(kp[j, 0]), int(kp[j, 1])), 3, colour, filled, cv2.LINE_AA)
    return canvas


def render_detections(image_rgb: np.ndarray, gt_boxes: np.ndarray, gt_keypoints: np.ndarray | None,
                      boxes: np.ndarray, keypoints: np.ndarray | None,
                      skeleton: Sequence[tuple[int, int]] = (),
                      title: str = "decoded") -> np.ndarray:
    """Ground truth (left) and decoded detections (right) on the image, side by side (RGB)."""
    left = draw_people(np.array(image_rgb, copy=True), gt_boxes, gt_keypoints, skeleton,
                       (80, 255, 120))
    right = draw_people(np.array(image_rgb, copy=True), boxes, keypoints, skeleton,
                        (255, 200, 0))
    return np.concatenate([_label(left, "ground truth"), _label(right, title)], axis=1)


def draw_boxes_3d(image_rgb: np.ndarray, boxes: np.ndarray, calib: np.ndarray,
                  colour: tuple[int, int, int] = (255, 80, 80)) -> np.ndarray:
    """3D boxes projected onto an RGB image (a copy): ``boxes`` (K, 14) rows of
    :func:`losses.ddd.ddd_post_process` (``alpha, x1, y1, x2, y2, h, w, l, X, Y, Z,
    rotation_y, score, class``), ``calib`` the (3, 4) camera.  The front face is crossed."""
    out = np.ascontiguousarray(image_rgb, np.uint8).copy()
    P = np.asarray(calib, np.float64).reshape(3, 4)
    for row in np.asarray(boxes, np.float64).reshape(-1, 14):
        corners = box_3d_corners(row[5:8], row[8:11], row[11])
        uvw = P @ np.hstack([corners, np.ones((8, 1))]).T
        if (uvw[2] <= 0).any():                         # behind the camera
            continue
        uv = np.round((uvw[:2] / uvw[2]).T).astype(np.int64)
        pts = [tuple(int(v) for v in q) for q in uv]
        for a, b in ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
                     (0, 4), (1, 5), (2, 6), (3, 7)):
            cv2.line(out, pts[a], pts[b], colour, 2, cv2.LINE_AA)
        for a, b in ((0, 5), (1, 4)):                   # the face the yaw points to
            cv2.line(out, pts[a], pts[b], colour, 1, cv2.LINE_AA)
    return out



def _as_rgb(image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """A network input (3, H, W float32 normalised, or uint8 CHW) as RGB of ``size`` (w, h)."""
    if image is None:
        return np.zeros((size[1], size[0], 3), np.uint8)
    img = np.asarray(image)
    rgb = np.ascontiguousarray(img.transpose(1, 2, 0)[..., ::-1]) if img.dtype == np.uint8 \
        else network_input_to_rgb(img)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def render_prediction(targets: dict[str, np.ndarray], predicted: dict[str, np.ndarray],
                      scale: int = 3, image: np.ndarray | None = None) -> np.ndarray:
    """Each heatmap target beside the network's prediction of it (RGB uint8): for every
    name in both dicts whose arrays are (C, H, W) maps (``hm``, ``hm_hp``, ...), the target
    then the predicted probabilities (apply the sigmoid to logits first), over ``image``
    (RGB, any size) when given."""
    panels = []
    for name, t in targets.items():
        p = predicted.get(name)
        if p is None or np.ndim(t) != 3 or np.shape(p) != np.shape(t):
            continue
        H, W = t.shape[1:]
        base = None if image is None else cv2.resize(np.asarray(image, np.uint8),
                                                     (W * scale, H * scale),
                                                     interpolation=cv2.INTER_AREA)
        for title, arr in ((f"{name} target", t), (f"{name} predicted", p)):
            rgb = _upsample(colorize(np.asarray(arr, np.float32)), scale)
            if base is not None:
                rgb = cv2.addWeighted(base, 0.55, rgb, 0.9, 0)
            panels.append(_label(rgb, title))
    if not panels:
        raise ValueError("no heatmap in both targets and predicted: expected (C, H, W) maps of "
                         "the same names and shapes (hm, hm_hp, ...)")
    height = max(p.shape[0] for p in panels)
    return np.concatenate([np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)))
                           for p in panels], axis=1)


def render_tracking(item: dict[str, Any], config: Any, scale: int = 1) -> np.ndarray:
    """A tracking sample as pictures (RGB uint8): the previous frame (``pre_img``) under
    ``pre_hm`` with the previous centres the ``tracking`` targets point to (white), and the
    current frame (``input``) under ``hm`` with an arrow from each object's centre to its
    previous centre (``tracking``; objects without a match in the previous frame: a red
    dot).  Input pixels times ``scale``."""
    iw, ih = config.input_size
    d = config.down_ratio
    size = (iw * scale, ih * scale)
    pre = _as_rgb(item.get("pre_img"), size)
    if "pre_hm" in item:
        heat = cv2.resize(colorize(item["pre_hm"][0]), size, interpolation=cv2.INTER_NEAREST)
        pre = cv2.addWeighted(pre, 0.6, heat, 0.9, 0)
    cur = _as_rgb(item.get("input"), size)
    heat = cv2.resize(colorize(item["hm"]), size, interpolation=cv2.INTER_NEAREST)
    cur = cv2.addWeighted(cur, 0.6, heat, 0.9, 0)
    W = config.output_size[0]
    f = d * scale
    for k in np.flatnonzero(item["mask"] > 0):
        cx, cy = item["ind"][k] % W, item["ind"][k] // W
        p0 = (int((cx + item["reg"][k, 0]) * f), int((cy + item["reg"][k, 1]) * f))
        if item["tracking_mask"][k, 0] > 0:
            p1 = (int((cx + item["tracking"][k, 0]) * f), int((cy + item["tracking"][k, 1]) * f))
            cv2.arrowedLine(cur, p0, p1, (255, 255, 255), 1, cv2.LINE_AA, tipLength=0.2)
            cv2.circle(pre, p1, 2 * scale, (255, 255, 255), -1)
        else:
            cv2.circle(cur, p0, 2 * scale, (255, 60, 60), -1)
    return np.concatenate([_label(pre, "pre_img + pre_hm, previous centres"),
                           _label(cur, "input + hm, tracking arrows")], axis=1)


def render_tracks(frames: Sequence[np.ndarray], tracks: Sequence[Sequence[tuple[int, Any]]],
                  width: int = 240) -> np.ndarray:
    """Frames side by side (RGB uint8, each resized to ``width``) with each frame's tracks:
    ``tracks[t]`` lists ``(track_id, (x1, y1, x2, y2))`` in that frame's pixels; one colour
    per track id, the id written on the box."""
    colours = palette(12)
    out = []
    for img, tr in zip(frames, tracks):
        f = width / img.shape[1]
        canvas = cv2.resize(np.ascontiguousarray(img), (width, int(round(img.shape[0] * f))))
        for tid, box in tr:
            c = tuple(int(v) for v in colours[int(tid) % len(colours)])
            x1, y1, x2, y2 = (int(v * f) for v in box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), c, 1)
            cv2.putText(canvas, str(int(tid)), (x1 + 2, max(y1 + 12, 12)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, c, 1, cv2.LINE_AA)
        out.append(canvas)
    return np.concatenate(out, axis=1)

def save_png(path: str, rgb: np.ndarray) -> None:
    """Write an RGB uint8 array as PNG."""
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")
