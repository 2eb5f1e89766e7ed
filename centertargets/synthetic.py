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
                 p_unlabelled: float = 0.15) -> Scene:
    """Standing persons of random size and place, some joints occluded or unlabelled."""
    rng = np.random.default_rng(rng)
    W, H = image_size
    boxes, kps = [], []
    for _ in range(num_people):
        h = rng.uniform(0.15, 0.8) * H
        w = h * rng.uniform(0.3, 0.55)
        x = rng.uniform(-0.1 * w, W - 0.9 * w)
        y = rng.uniform(-0.1 * h, H - 0.9 * h)
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
