"""Seeded COCO-like scenes: persons with 17 keypoints, and boxes of 80 classes.

Used by the demo, the tests and the benchmarks, so none of them needs a
dataset on disk.  Everything is in IMAGE pixels with COCO conventions:
boxes ``[x, y, w, h]``, keypoints ``(N, 17, 3)`` with ``v = 0`` (not
labelled, x = y = 0), 1 (labelled, occluded) or 2 (visible).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .coco import COCO_CATEGORY_IDS, COCO_KEYPOINT_NAMES, COCO_SKELETON

#: A standing person, joints as fractions of the box (x right, y down), facing the camera.
_TEMPLATE = np.array([
    (0.50, 0.06), (0.45, 0.04), (0.55, 0.04), (0.40, 0.06), (0.60, 0.06), (0.30, 0.20),
    (0.70, 0.20), (0.20, 0.38), (0.80, 0.38), (0.15, 0.52), (0.85, 0.52), (0.38, 0.55),
    (0.62, 0.55), (0.36, 0.76), (0.64, 0.76), (0.35, 0.97), (0.65, 0.97)], dtype=np.float64)

@dataclass
class Scene:
    """One synthetic image's annotations (image pixels)."""

    width: int
    height: int
    boxes_xywh: np.ndarray                 # (N, 4) float64
    category_ids: np.ndarray               # (N,) int64, COCO ids
    keypoints: np.ndarray | None = None    # (N, 17, 3) float64
    meta: dict[str, Any] = field(default_factory=dict)


def person_scene(rng: np.random.Generator | int, num_people: int = 6,
                 image_size: tuple[int, int] = (640, 480), p_occluded: float = 0.15,
                 p_unlabelled: float = 0.15, inside: bool = False) -> Scene:
    """Standing persons of random size and place, some joints occluded or unlabelled;
    up to a tenth of a person may lie outside the image, or none with ``inside=True``."""
    rng = np.random.default_rng(rng)
    W, H = image_size
    boxes, kps = [], []
    out = -0.05 if inside else 0.1        # inside: a margin for the joints' jitter
    for _ in range(num_people):
        h = rng.uniform(0.15, 0.8) * H
        w = h * rng.uniform(0.3, 0.55)
        x = rng.uniform(-out * w, W - (1 - out) * w)
        y = rng.uniform(-out * h, H - (1 - out) * h)
        pts = _TEMPLATE * (w, h) + (x, y) + rng.normal(0, 0.02, _TEMPLATE.shape) * (w, h)
        v = np.full(len(pts), 2.0)
        u = rng.random(len(pts))
        v[u < p_occluded + p_unlabelled] = 1.0
        v[u < p_unlabelled] = 0.0
        pts[v == 0] = 0.0
        boxes.append((x, y, w, h))
        kps.append(np.concatenate([pts, v[:, None]], axis=1))
    return Scene(W, H, np.array(boxes, np.float64).reshape(-1, 4),
                 np.ones(num_people, np.int64),
                 np.array(kps, np.float64).reshape(-1, 17, 3))


def detection_scene(rng: np.random.Generator | int, num_objects: int = 20,
                    image_size: tuple[int, int] = (640, 480)) -> Scene:
    """Boxes of random COCO categories, log-uniform sizes from 4 px to most of the image."""
    rng = np.random.default_rng(rng)
    W, H = image_size
    sides = np.exp(rng.uniform(np.log(4), np.log(0.7 * min(W, H)), size=(num_objects, 2)))
    xs = rng.uniform(0, W - sides[:, 0] * 0.5)
    ys = rng.uniform(0, H - sides[:, 1] * 0.5)
    boxes = np.stack([xs, ys, np.minimum(sides[:, 0], W - xs), np.minimum(sides[:, 1], H - ys)], 1)
    cats = rng.choice(np.array(COCO_CATEGORY_IDS), size=num_objects)
    return Scene(W, H, boxes, cats.astype(np.int64))


def to_coco(scenes: list[Scene], categories: str = "person") -> dict[str, Any]:
    """A COCO-format dict (``images``, ``annotations``, ``categories``) for ``scenes``.

    ``categories``: ``"person"`` (COCO's person category with its 17 joints,
    for :func:`person_scene`) or ``"coco80"`` (COCO's 80 detection category
    ids, for :func:`detection_scene`).
    """
    if categories not in ("person", "coco80"):
        raise ValueError(f"categories={categories!r}: expected 'person' or 'coco80'")
    images, anns = [], []
    for i, s in enumerate(scenes, start=1):
        images.append({"id": i, "file_name": f"synthetic_{i:06d}.jpg", "width": s.width,
                       "height": s.height})
        for k in range(len(s.boxes_xywh)):
            x, y, w, h = (float(v) for v in s.boxes_xywh[k])
            ann: dict[str, Any] = {"id": len(anns) + 1, "image_id": i,
                                   "category_id": int(s.category_ids[k]),
                                   "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}
            if s.keypoints is not None:
                ann["keypoints"] = [float(v) for v in s.keypoints[k].reshape(-1)]
                ann["num_keypoints"] = int((s.keypoints[k, :, 2] > 0).sum())
            anns.append(ann)
    if categories == "person":
        cats = [{"id": 1, "name": "person", "supercategory": "person",
                 "keypoints": list(COCO_KEYPOINT_NAMES),
                 "skeleton": [[a + 1, b + 1] for a, b in COCO_SKELETON]}]
    else:
        cats = [{"id": c, "name": f"class_{c}", "supercategory": "thing"}
                for c in COCO_CATEGORY_IDS]
    return {"images": images, "annotations": anns, "categories": cats}


#: KITTI's categories in upstream's COCO conversion (ids 1-9).
KITTI_CATEGORIES = ("Pedestrian", "Car", "Cyclist", "Van", "Truck", "Person_sitting", "Tram",
                    "Misc", "DontCare")


def ddd_coco(num_images: int = 4, num_objects: int = 8, seed: int = 0,
             image_size: tuple[int, int] = (1242, 375), calib: Any = None) -> dict[str, Any]:
    """A KITTI-like COCO dict for the ``ddd`` task: objects on the ground in front of a camera.

    Each object gets a 3D size, a location (X, Y, Z: Y the ground, Z the depth),
    a yaw ``rotation_y``, the 2D box of its projected corners, and ``alpha``
    consistent with upstream's conversion (``rotation_y - atan2(u - cx, fx)``
    at the box's centre ``u``), so that decoding perfect outputs gives the yaw
    back.  Categories are KITTI's 1-9, mostly cars.
    """
    from .geometry import box_3d_corners
    from .tasks.ddd import KITTI_CALIB

    rng = np.random.default_rng(seed)
    P = np.asarray(KITTI_CALIB if calib is None else calib, np.float64)
    W, H = image_size
    images, anns = [], []
    for i in range(1, num_images + 1):
        images.append({"id": i, "file_name": f"kitti_{i:06d}.png", "width": W, "height": H,
                       "calib": P.tolist()})
        made = 0
        while made < num_objects:
            cat = int(rng.choice([1, 2, 2, 2, 3, 4, 9]))
            h, w, l = rng.uniform([1.4, 1.5, 3.2], [1.9, 1.9, 5.0])
            Z = rng.uniform(6, 60)
            X = rng.uniform(-0.4, 0.4) * Z
            Y = 1.65                                           # the camera is 1.65 m up
            ry = rng.uniform(-np.pi, np.pi)
            corners = box_3d_corners((h, w, l), (X, Y, Z), ry).T
            uvw = P @ np.vstack([corners, np.ones(8)])
            uv = uvw[:2] / uvw[2]
            x1, y1 = np.clip(uv.min(1), 0, [W - 1, H - 1])
            x2, y2 = np.clip(uv.max(1), 0, [W - 1, H - 1])
            if x2 - x1 < 4 or y2 - y1 < 4:
                continue
            u = (x1 + x2) / 2
            alpha = ry - np.arctan2(u - P[0, 2], P[0, 0])
            alpha = (alpha + np.pi) % (2 * np.pi) - np.pi
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat,
                         "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                         "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0,
                         "alpha": float(alpha), "depth": float(Z),
                         "dim": [float(h), float(w), float(l)],
                         "location": [float(X), float(Y), float(Z)], "rotation_y": float(ry)})
            made += 1
    return {"images": images, "annotations": anns,
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(KITTI_CATEGORIES)]}


def person_video(seed: int = 0, frames: int = 10, num_people: int = 4,
                 image_size: tuple[int, int] = (320, 240), speed: float = 6.0) -> list[Scene]:
    """A short video of persons walking at constant velocity (image pixels per frame),
    bouncing off the borders; ``scene.meta["track_ids"]`` (N,) holds each person's id
    (1..num_people), the same in every frame."""
    rng = np.random.default_rng(seed)
    W, H = image_size
    first = person_scene(rng, num_people, image_size, p_occluded=0.1, p_unlabelled=0.05)
    vel = rng.uniform(-1, 1, (num_people, 2)) * speed
    boxes, kps = first.boxes_xywh.copy(), first.keypoints.copy()
    scenes = []
    for _ in range(frames):
        s = Scene(W, H, boxes.copy(), first.category_ids.copy(), kps.copy(),
                  {"track_ids": np.arange(1, num_people + 1)})
        s.keypoints[s.keypoints[..., 2] == 0] = 0.0
        scenes.append(s)
        for k in range(num_people):
            x, y, w, h = boxes[k]
            for a, (lo, hi, pos) in enumerate(((0, W - w, x), (0, H - h, y))):
                if not lo <= pos + vel[k, a] <= hi:
                    vel[k, a] = -vel[k, a]
            boxes[k, :2] += vel[k]
            kps[k, :, :2] += vel[k]
    return scenes


def to_coco_video(videos: list[list[Scene]]) -> dict[str, Any]:
    """A CenterTrack video COCO dict (``videos``; images with ``video_id``, ``frame_id``;
    annotations with ``track_id``) of :func:`person_video` sequences."""
    flat = [s for v in videos for s in v]
    data = to_coco(flat)
    data["videos"] = [{"id": v + 1, "file_name": f"video_{v + 1:03d}"} for v in range(len(videos))]
    k = 0
    by_image = {}
    for v, frames in enumerate(videos):
        for f, s in enumerate(frames):
            img = data["images"][k]
            img.update(video_id=v + 1, frame_id=f + 1,
                       file_name=f"video_{v + 1:03d}/{f + 1:06d}.jpg")
            by_image[img["id"]] = s
            k += 1
    counts: dict[int, int] = {}
    for ann in data["annotations"]:
        i = counts.get(ann["image_id"], 0)
        ann["track_id"] = int(by_image[ann["image_id"]].meta["track_ids"][i])
        counts[ann["image_id"]] = i + 1
    return data
