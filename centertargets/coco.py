"""COCO json -> per-image arrays, and COCO constants.

Plain ``json`` parsing (no pycocotools needed).  Annotations keep file order
per image, as pycocotools' ``getAnnIds`` returns them, which is the order
CenterNet assigns object slots in.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from .config import COCO_FLIP_IDX
from .synthetic import COCO_CATEGORY_IDS, COCO_KEYPOINT_NAMES, COCO_SKELETON

__all__ = ["CocoDataset", "ImageAnnotations", "COCO_FLIP_IDX", "COCO_CATEGORY_IDS",
           "COCO_KEYPOINT_NAMES", "COCO_SKELETON"]


@dataclass(frozen=True)
class ImageAnnotations:
    """One image's annotations as arrays (image pixels, COCO conventions).

    Attributes
    ----------
    image_id, file_name, width, height : from ``images``.
    boxes_xywh : (N, 4) float64 ``[x, y, w, h]``.
    category_ids : (N,) int64 COCO category ids.
    classes : (N,) int64 contiguous class indices (position in the sorted category ids).
    keypoints : (N, J, 3) float64 ``x, y, v``, or None when the file has none.
    iscrowd : (N,) bool.
    ann_ids : (N,) int64 annotation ids.
    """

    image_id: int
    file_name: str
    width: int
    height: int
    boxes_xywh: np.ndarray
    category_ids: np.ndarray
    classes: np.ndarray
    keypoints: np.ndarray | None
    iscrowd: np.ndarray
    ann_ids: np.ndarray


class CocoDataset:
    """A COCO annotation file, indexed by image.

    >>> coco = CocoDataset.load("person_keypoints_val2017.json")
    >>> ann = coco[0]            # ImageAnnotations of the first image
    >>> len(coco), coco.num_classes, coco.num_joints

    Parameters
    ----------
    data : the parsed json (``images``, ``annotations``, ``categories``).
    skip_crowd : leave ``iscrowd=1`` annotations out (CenterNet keeps them).
    images_with_annotations_only : drop images without any annotation.
    """

    def __init__(self, data: Mapping[str, Any], skip_crowd: bool = False,
                 images_with_annotations_only: bool = False) -> None:
        for key in ("images", "annotations", "categories"):
            if key not in data or not isinstance(data[key], list):
                raise ValueError(f"COCO json has no list {key!r}: expected the keys 'images', "
                                 "'annotations' and 'categories'")
        cats = sorted(int(c["id"]) for c in data["categories"])
        self.category_ids: list[int] = cats
        self._class_of = {c: i for i, c in enumerate(cats)}
        kp_cats = [c for c in data["categories"] if c.get("keypoints")]
        self.keypoint_names: list[str] = list(kp_cats[0]["keypoints"]) if kp_cats else []
        self.skeleton: list[tuple[int, int]] = [(a - 1, b - 1) for a, b in
                                                kp_cats[0].get("skeleton", [])] if kp_cats else []
        self.num_joints = len(self.keypoint_names)
        self._images: dict[int, dict[str, Any]] = {}
        for img in data["images"]:
            self._images[int(img["id"])] = img
        self._anns: dict[int, list[dict[str, Any]]] = {i: [] for i in self._images}
        for ann in data["annotations"]:
            iid = int(ann.get("image_id", -1))
            if iid not in self._anns:
                raise ValueError(f"annotation id={ann.get('id')} has image_id={iid}: expected "
                                 "the id of an entry in 'images'")
            if skip_crowd and ann.get("iscrowd", 0):
                continue
            self._anns[iid].append(ann)
        ids = list(self._images)
        if images_with_annotations_only:
            ids = [i for i in ids if self._anns[i]]
        self.image_ids: list[int] = ids

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: Any) -> "CocoDataset":
        """Parse a COCO json file."""
        with open(path, "r", encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} is not valid JSON: {exc}") from exc
        return cls(data, **kwargs)

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def class_index(self, category_id: int) -> int:
        """Contiguous class index of a COCO category id."""
        try:
            return self._class_of[int(category_id)]
        except KeyError:
            raise ValueError(f"category_id={category_id}: expected one of the file's "
                             f"categories {self.category_ids}") from None

    def __len__(self) -> int:
        return len(self.image_ids)

    def __iter__(self) -> Iterator[ImageAnnotations]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int) -> ImageAnnotations:
        return self.image(self.image_ids[index])

    def image(self, image_id: int) -> ImageAnnotations:
        """The :class:`ImageAnnotations` of ``image_id``."""
        img = self._images[int(image_id)]
        anns = self._anns[int(image_id)]
        n = len(anns)
        boxes = np.zeros((n, 4), np.float64)
        kps = np.zeros((n, self.num_joints, 3), np.float64) if self.num_joints else None
        for k, ann in enumerate(anns):
            boxes[k] = _bbox(ann)
            if kps is not None:
                kps[k] = _keypoints(ann, self.num_joints)
        cat_ids = np.array([int(a["category_id"]) for a in anns], np.int64)
        return ImageAnnotations(
            image_id=int(image_id), file_name=str(img.get("file_name", "")),
            width=int(img.get("width", 0)), height=int(img.get("height", 0)),
            boxes_xywh=boxes, category_ids=cat_ids,
            classes=np.array([self.class_index(c) for c in cat_ids], np.int64),
            keypoints=kps, iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], bool),
            ann_ids=np.array([int(a.get("id", -1)) for a in anns], np.int64))


def _bbox(ann: Mapping[str, Any]) -> list[float]:
    b = ann.get("bbox")
    ok = isinstance(b, (list, tuple)) and len(b) == 4 and \
        all(isinstance(v, (int, float)) and math.isfinite(v) for v in b)
    if not ok or b[2] < 0 or b[3] < 0:
        raise ValueError(f"annotation id={ann.get('id')} bbox={b!r}: expected [x, y, w, h] "
                         "with finite numbers and w, h >= 0")
    return [float(v) for v in b]


def _keypoints(ann: Mapping[str, Any], num_joints: int) -> np.ndarray:
    k = ann.get("keypoints")
    if k is None:
        return np.zeros((num_joints, 3))
    if not isinstance(k, (list, tuple)) or len(k) != 3 * num_joints:
        n = len(k) if isinstance(k, (list, tuple)) else type(k).__name__
        raise ValueError(f"annotation id={ann.get('id')} keypoints has {n} values: expected "
                         f"{3 * num_joints} (x, y, v for {num_joints} joints)")
    a = np.asarray(k, np.float64).reshape(num_joints, 3)
    if not np.isin(a[:, 2], (0, 1, 2)).all():
        raise ValueError(f"annotation id={ann.get('id')} keypoints visibility "
                         f"{a[:, 2].tolist()}: expected 0, 1 or 2")
    return a
