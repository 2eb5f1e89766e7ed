"""COCO json -> per-image arrays, and COCO constants.

Plain ``json`` parsing (no pycocotools needed).  Annotations keep file order
per image, as pycocotools' ``getAnnIds`` returns them, which is the order
CenterNet assigns object slots in.  Images keep file order too (pycocotools'
``getImgIds``).

Class indices: by default class k is the k-th of the file's own category ids
in increasing order; ``category_ids=`` fixes the map (upstream CenterNet's
COCO detection uses the 80 ids of :data:`COCO_CATEGORY_IDS` whatever the
file lists).  The joint count comes from the annotations' keypoints, and
left/right flip pairs from the file's keypoint names (:func:`flip_pairs_from_names`).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from . import _warn

__all__ = ["CocoDataset", "ImageAnnotations", "COCO_FLIP_IDX", "COCO_CATEGORY_IDS",
           "COCO_KEYPOINT_NAMES", "COCO_SKELETON", "flip_pairs_from_names"]

#: COCO person keypoint names, in COCO order.
COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle")

#: COCO person keypoint left/right pairs (0-based joint indices), CenterNet's ``flip_idx``.
COCO_FLIP_IDX: tuple[tuple[int, int], ...] = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

#: COCO skeleton as 0-based joint pairs.
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))

#: The 80 COCO detection category ids (not contiguous); upstream CenterNet's ``_valid_ids``.
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90)

_SIDES = (("left", "right"), ("l", "r"))


def flip_pairs_from_names(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Left/right joint pairs found in keypoint names, as 0-based ``(left, right)`` indices.

    A name pairs with the one that differs only in a side word: ``left``/``right``
    or ``l``/``r`` as a separate part of the name (``left_knee``/``right_knee``,
    ``l_ankle``/``r_ankle``, ``knee_left``/``knee_right``, ``leftKnee``/``rightKnee``).
    Names without a partner (``nose``, ``head_top``) are not flipped.  COCO's
    names give :data:`COCO_FLIP_IDX`.
    """
    def parts(name: str) -> list[str]:
        name = re.sub(r"([a-z])([A-Z])", r"\1_\2", str(name))
        return [p for p in re.split(r"[^A-Za-z0-9]+", name.lower()) if p]

    index = {tuple(parts(n)): i for i, n in enumerate(names)}
    pairs: list[tuple[int, int]] = []
    for i, n in enumerate(names):
        p = parts(n)
        for left, right in _SIDES:
            for k, word in enumerate(p):
                if word != left:
                    continue
                j = index.get(tuple(p[:k] + [right] + p[k + 1:]))
                if j is not None and j != i and all(i not in q and j not in q for q in pairs):
                    pairs.append((i, j))
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class ImageAnnotations:
    """One image's annotations as arrays (image pixels, COCO conventions).

    Attributes
    ----------
    image_id, file_name : from ``images``.
    width, height : from ``images``; 0 when the entry has none (read them from the image).
    boxes_xywh : (N, 4) float64 ``[x, y, w, h]``.
    category_ids : (N,) int64 COCO category ids.
    classes : (N,) int64 class indices (position of the category id in ``category_ids``).
    keypoints : (N, J, 3) float64 ``x, y, v``, or None when the file has none.
    iscrowd : (N,) bool.
    ann_ids : (N,) int64 annotation ids.
    fields : the task-specific fields made dense with
        :meth:`CocoDataset.dense_field` (e.g. ``extreme_points`` (N, 4, 2)
        float64), name -> read-only view.
    image_fields : the image's own fields made dense with
        :meth:`CocoDataset.dense_image_field` (e.g. ddd's ``calib`` (3, 4)).
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
    fields: Mapping[str, np.ndarray] = field(default_factory=dict)
    image_fields: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def _of_arrays(cls, **values: Any) -> "ImageAnnotations":
        """An instance from every field by name, without the frozen dataclass's ``__init__``
        (one ``object.__setattr__`` per field: 2.5 us of a 25 us sample); the loader's
        per-item path, which gives every field."""
        obj = object.__new__(cls)
        obj.__dict__.update(values)
        return obj


#: Image keys the loader reads itself.
_STANDARD_IMAGE_KEYS = frozenset({"id", "file_name", "width", "height", "license", "coco_url",
                                  "flickr_url", "date_captured"})

#: Annotation keys the loader reads itself or that never hold per-object numbers for a task.
_STANDARD_KEYS = frozenset({"id", "image_id", "category_id", "bbox", "area", "iscrowd",
                            "keypoints", "num_keypoints", "segmentation", "caption",
                            "ignore"})


class CocoDataset:
    """A COCO annotation file, indexed by image.

    >>> coco = CocoDataset.load("person_keypoints_val2017.json")
    >>> ann = coco[0]            # ImageAnnotations of the first image
    >>> len(coco), coco.num_classes, coco.num_joints, coco.flip_idx

    Parameters
    ----------
    data : the parsed json (``images``, ``annotations``, ``categories``).
    skip_crowd : leave ``iscrowd=1`` annotations out (CenterNet keeps them).
    images_with_annotations_only : drop images without any annotation
        (upstream's pose training set does; ``CenterNetDataset`` applies it
        itself in train mode).
    category_ids : class k = position of its category id in this sequence;
        None (default): the file's own category ids in increasing order.
        Upstream COCO detection: :data:`COCO_CATEGORY_IDS`.  An annotation
        whose category is not in the map is an error.
    category_map : instead of ``category_ids``, ``{category_id: class}`` (several
        categories may share a class), or ``"one_class"``: every category of the
        file is class 0 (e.g. AP-10K's 54 animal species as one "animal" for pose).

    Attributes
    ----------
    category_ids, num_classes : the class map.
    keypoint_names : the keypoint category's names (may be longer than the
        annotations' joints; see ``num_joints``).
    num_joints : joints per annotation, from the annotations' ``keypoints``
        (the names' count when no annotation has keypoints).
    flip_idx : left/right pairs from the names (empty when the names do not
        match the annotations' joint count).
    skeleton : 0-based joint pairs of the file's ``skeleton``, or empty.
    """

    def __init__(self, data: Mapping[str, Any], skip_crowd: bool = False,
                 images_with_annotations_only: bool = False,
                 category_ids: Sequence[int] | None = None,
                 category_map: Mapping[int, int] | str | None = None) -> None:
        if not isinstance(data, Mapping):
            raise ValueError(f"COCO json is a {type(data).__name__}: expected an object with "
                             "'images', 'annotations' and 'categories'")
        for key in ("images", "annotations", "categories"):
            if key not in data or not isinstance(data[key], list):
                raise ValueError(f"COCO json has no list {key!r}: expected the keys 'images', "
                                 "'annotations' and 'categories'")
        file_cats = sorted(_int_field(c, "id", "categories") for c in data["categories"])
        if category_ids is None:
            cats = file_cats
        else:
            cats = [int(c) for c in category_ids]
            if len(set(cats)) != len(cats):
                raise ValueError(f"category_ids={list(category_ids)}: expected distinct ids")
        if category_map is not None and category_ids is not None:
            raise ValueError("category_ids and category_map given: expected one of them")
        if isinstance(category_map, str):
            if category_map != "one_class":
                raise ValueError(f"category_map={category_map!r}: expected 'one_class' or a "
                                 "{category_id: class} mapping")
            category_map = {c: 0 for c in file_cats}
        if category_map is not None:
            try:
                cmap = {int(k): int(v) for k, v in dict(category_map).items()}
            except (TypeError, ValueError):
                raise ValueError(f"category_map={category_map!r}: expected {{category_id: "
                                 "class}} with integer ids and classes") from None
            if any(v < 0 for v in cmap.values()):
                raise ValueError(f"category_map={cmap}: expected classes >= 0")
            cats = sorted(cmap)
        self.category_ids: list[int] = cats
        #: The file's ``videos`` list (CenterTrack's video files), or None when it has none.
        self.videos: list[Any] | None = list(data["videos"]) \
            if isinstance(data.get("videos"), list) else None
        self._class_of = cmap if category_map is not None else \
            {c: i for i, c in enumerate(cats)}
        self._num_classes = max(self._class_of.values(), default=-1) + 1
        kp_cats = [c for c in data["categories"] if isinstance(c, Mapping) and c.get("keypoints")]
        self.keypoint_names: list[str] = _names(kp_cats[0]) if kp_cats else []
        self._images: dict[int, dict[str, Any]] = {}
        for img in data["images"]:
            iid = _int_field(img, "id", "images")
            if not isinstance(img.get("file_name", ""), str):
                raise ValueError(f"image id={iid} has file_name={img['file_name']!r}: expected a "
                                 "path (a string)")
            if iid in self._images:
                raise ValueError(f"images has two entries with id={iid}: expected unique ids")
            self._images[iid] = img
        self._anns: dict[int, list[dict[str, Any]]] = {i: [] for i in self._images}
        joints: int | None = None
        for ann in data["annotations"]:
            aid = ann.get("id") if isinstance(ann, Mapping) else None
            if aid is not None:                 # optional (pycocotools numbers them if absent)
                aid = _int_field(ann, "id", "annotations")
            iid = _int_field(ann, "image_id", "annotations")
            if iid not in self._anns:
                raise ValueError(f"annotation id={aid} has image_id={iid}: expected "
                                 "the id of an entry in 'images'")
            cid = _int_field(ann, "category_id", "annotations")
            if cid not in self._class_of:
                raise ValueError(f"annotation id={aid} has category_id={cid}: expected one of "
                                 f"the category ids {cats}")
            k = ann.get("keypoints")
            if isinstance(k, (list, tuple)) and k:
                if len(k) % 3:
                    raise ValueError(f"annotation id={aid} keypoints has {len(k)} values: "
                                     "expected 3 per joint (x, y, v)")
                if joints is None:
                    joints = len(k) // 3
                elif len(k) != 3 * joints:
                    raise ValueError(f"annotation id={aid} has {len(k) // 3} keypoints: "
                                     f"expected {joints} like the file's earlier annotations")
            crowd = ann.get("iscrowd", 0)
            if crowd not in (0, 1):          # 0/1, False/True (json has no other crowd flag)
                raise ValueError(f"annotation id={aid} has iscrowd={crowd!r}: expected 0 or 1")
            if skip_crowd and crowd:
                continue
            self._anns[iid].append(ann)
        self.num_joints = joints if joints is not None else len(self.keypoint_names)
        # the skeleton only draws lines: junk in it is warned about and dropped, never fatal
        self.skeleton: list[tuple[int, int]] = _skeleton(kp_cats[0], self.num_joints) \
            if kp_cats else []
        names = self.keypoint_names
        if names and len(names) != self.num_joints:
            _warn.warn(f"the keypoint category lists {len(names)} names but annotations "
                          f"carry {self.num_joints} joints: the names are not used for flip "
                          "pairs (pass flip_idx in the config if the set has left/right joints)")
            self.flip_idx: tuple[tuple[int, int], ...] = ()
        else:
            self.flip_idx = flip_pairs_from_names(names)
        self._build_arrays()
        ids = list(self._pos)
        if images_with_annotations_only:
            ids = [i for i in ids if self._count[self._pos[i]]]
        self.image_ids: list[int] = ids

    def _build_arrays(self) -> None:
        """Every annotation's fields in contiguous arrays, images in file order.

        ``image()`` then returns views, with no per-sample list-of-dict work;
        and DataLoader workers forked from the dataset share these arrays
        without touching Python objects (no copy-on-write growth).
        """
        flat: list[dict[str, Any]] = []
        self._pos = {iid: k for k, iid in enumerate(self._images)}
        self._start = np.zeros(len(self._images), np.int64)
        self._count = np.zeros(len(self._images), np.int64)
        for k, iid in enumerate(self._images):
            self._start[k], self._count[k] = len(flat), len(self._anns[iid])
            flat.extend(self._anns[iid])
        n, J = len(flat), self.num_joints
        self._boxes = np.array([_bbox(a) for a in flat], np.float64).reshape(n, 4)
        self._category_ids = np.array([int(a["category_id"]) for a in flat], np.int64)
        self._classes = np.array([self._class_of[int(c)] for c in self._category_ids], np.int64)
        self._keypoints = np.array([_keypoints(a, J) for a in flat], np.float64).reshape(
            n, J, 3) if J else None
        self._iscrowd = np.array([bool(a.get("iscrowd", 0)) for a in flat], bool)
        # every other per-annotation field, as given: a task makes the ones it needs dense
        # (dense_field), checked, so that the dataset's workers read arrays, not dicts
        extra = set().union(*(a.keys() for a in flat)) - _STANDARD_KEYS if flat else set()
        self._raw_fields: dict[str, list[Any]] = {k: [a.get(k) for a in flat]
                                                  for k in sorted(extra)}
        self._dense: dict[str, np.ndarray] = {}
        self._ann_ids = np.array([-1 if a.get("id") is None else int(a["id"]) for a in flat],
                                 np.int64)        # ids were checked as they were read
        for a in (self._boxes, self._category_ids, self._classes, self._keypoints,
                  self._iscrowd, self._ann_ids):
            if a is not None:
                a.flags.writeable = False
        self._sizes = [(_size(img, "width"), _size(img, "height")) for img in
                       self._images.values()]
        self._files = [str(img.get("file_name", "")) for img in self._images.values()]
        extra = set().union(*(i.keys() for i in self._images.values())) - _STANDARD_IMAGE_KEYS \
            if self._images else set()
        self._raw_image_fields: dict[str, list[Any]] = {
            k: [img.get(k) for img in self._images.values()] for k in sorted(extra)}
        self._dense_images: dict[str, np.ndarray] = {}
        del self._anns, self._images            # the json's dicts are no longer needed

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: Any) -> "CocoDataset":
        """Parse a COCO json file (UTF-8, with or without a byte-order mark)."""
        with open(path, "r", encoding="utf-8-sig") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} is not valid JSON: {exc}") from exc
        return cls(data, **kwargs)

    @property
    def num_classes(self) -> int:
        """Classes of the map: the file's categories, or ``category_map``'s largest class + 1."""
        return self._num_classes

    def class_index(self, category_id: int) -> int:
        """Class index of a COCO category id."""
        try:
            return self._class_of[int(category_id)]
        except KeyError:
            raise ValueError(f"category_id={category_id}: expected one of the category ids "
                             f"{self.category_ids}") from None

    def num_annotations(self, image_id: int) -> int:
        """How many annotations (crowd included unless skipped) image ``image_id`` has."""
        return int(self._count[self._pos[int(image_id)]])

    def __len__(self) -> int:
        return len(self.image_ids)

    def __iter__(self) -> Iterator[ImageAnnotations]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int) -> ImageAnnotations:
        return self.image(self.image_ids[index])

    def image(self, image_id: int) -> ImageAnnotations:
        """The :class:`ImageAnnotations` of ``image_id`` (read-only views of the file's arrays)."""
        try:
            k = self._pos[int(image_id)]
        except KeyError:
            raise KeyError(f"image_id={image_id}: no such image in the file") from None
        a, b = int(self._start[k]), int(self._start[k] + self._count[k])
        w, h = self._sizes[k]
        return ImageAnnotations._of_arrays(
            image_id=int(image_id), file_name=self._files[k], width=w, height=h,
            boxes_xywh=self._boxes[a:b], category_ids=self._category_ids[a:b],
            classes=self._classes[a:b],
            keypoints=None if self._keypoints is None else self._keypoints[a:b],
            iscrowd=self._iscrowd[a:b], ann_ids=self._ann_ids[a:b],
            fields={name: arr[a:b] for name, arr in self._dense.items()},
            image_fields={name: arr[k] for name, arr in self._dense_images.items()})

    def dense_image_field(self, name: str, shape: tuple[int, ...], default: Any,
                          what: str = "") -> np.ndarray:
        """Image field ``name`` of every image as one float64 ``(n_images, *shape)`` array.

        An image without the field takes ``default``; one whose value is not
        ``shape`` finite numbers is a ValueError naming the image id.  Kept, and
        viewed per image in ``ImageAnnotations.image_fields``.
        """
        got = self._dense_images.get(name)
        if got is not None:
            return got
        raw = self._raw_image_fields.get(name, [None] * len(self._files))
        out = np.empty((len(raw),) + tuple(shape), np.float64)
        for k, v in enumerate(raw):
            v = default if v is None else v
            try:
                a = np.asarray(v, np.float64)
            except (TypeError, ValueError):
                a = np.zeros(0)
            if a.shape != tuple(shape) or not np.isfinite(a).all():
                shown = _short(v)
                raise ValueError(f"image id={list(self._pos)[k]} {name}={shown}: expected "
                                 f"{what or f'finite numbers of shape {tuple(shape)}'}")
            out[k] = a
        out.flags.writeable = False
        self._dense_images[name] = out
        return out

    def image_field_values(self, name: str) -> list[Any]:
        """Image field ``name`` of every image as given in the json (None where absent), in
        the file's image order: for fields a task parses itself (videos: ``video_id``,
        ``frame_id``, ``sensor_id``)."""
        return list(self._raw_image_fields.get(name, [None] * len(self._files)))

    @property
    def all_image_ids(self) -> list[int]:
        """Every image id in file order (``image_ids`` may leave some out)."""
        return list(self._pos)

    def empty_image(self) -> ImageAnnotations:
        """An image with no annotations, with the file's joint count and dense fields."""
        J = self.num_joints
        return ImageAnnotations(
            image_id=-1, file_name="", width=1, height=1, boxes_xywh=self._boxes[:0],
            category_ids=self._category_ids[:0], classes=self._classes[:0],
            keypoints=None if self._keypoints is None else self._keypoints[:0].reshape(0, J, 3),
            iscrowd=self._iscrowd[:0], ann_ids=self._ann_ids[:0],
            fields={name: arr[:0] for name, arr in self._dense.items()},
            image_fields={name: arr[0] for name, arr in self._dense_images.items()})

    def has_field(self, name: str) -> bool:
        """Whether any annotation carries ``name`` (beyond the fields the loader reads)."""
        return name in self._dense or any(v is not None for v in self._raw_fields.get(name, ()))

    def dense_field(self, name: str, shape: tuple[int, ...], what: str = "",
                    optional: bool = False,
                    parse: Callable[[Any], np.ndarray] | None = None) -> np.ndarray:
        """Annotation field ``name`` of every annotation as one float64 ``(N, *shape)`` array.

        Checked once, here: an annotation without the field (unless
        ``optional``: then its row is NaN, "absent"), of another size or with a
        value that is not a finite number is a ValueError naming its id
        (``what`` says what the field holds).  ``parse`` turns a present raw
        value into the row (it may return NaN: "absent", with ``optional``).
        The array is kept, and :meth:`image` returns views of it in
        ``ImageAnnotations.fields``.
        """
        got = self._dense.get(name)
        if got is not None:
            if got.shape[1:] != tuple(shape):
                raise ValueError(f"field {name!r} was made dense with shape {got.shape[1:]}: "
                                 f"expected {tuple(shape)}")
            return got
        raw = self._raw_fields.get(name, [None] * len(self._ann_ids))
        size = int(np.prod(shape))
        out = np.empty((len(raw),) + tuple(shape), np.float64)
        for i, v in enumerate(raw):
            if v is None and optional:
                out[i] = np.nan
                continue
            try:
                a = None if v is None else np.asarray(v if parse is None else parse(v),
                                                      np.float64).reshape(-1)
            except (TypeError, ValueError, IndexError):
                a = None
            if a is not None and optional and a.size == size and np.isnan(a).all():
                out[i] = np.nan
                continue
            if a is None or a.size != size or not np.isfinite(a).all() or \
                    (np.abs(a) > 1e7).any():
                shown = _short(v)
                raise ValueError(f"annotation id={int(self._ann_ids[i])} {name}={shown}: expected "
                                 f"{what or f'{size} finite numbers'} (shape {tuple(shape)}, "
                                 "at most 1e7 in size)")
            out[i] = a.reshape(shape)
        out.flags.writeable = False
        self._dense[name] = out
        return out


def _int_field(entry: Any, key: str, where: str) -> int:
    if not isinstance(entry, Mapping):
        raise ValueError(f"an entry of {where!r} is {type(entry).__name__}: expected an object")
    v = entry.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() \
            or not -2**63 <= v < 2**63:
        ident = f" id={entry.get('id')}" if key != "id" else ""
        raise ValueError(f"{where}{ident}: {key}={v!r}: expected an integer")
    return int(v)


def _names(cat: Mapping[str, Any]) -> list[str]:
    """The category's joint names; names only label and pair joints, so a list that is not
    one of strings is warned about and left out."""
    names = cat["keypoints"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        shown = _short(names, 80)
        _warn.warn(f"category id={cat.get('id')} keypoints={shown}: expected a list of joint "
                      "names; the names are not used (no flip pairs or legend from them)")
        return []
    return list(names)


def _skeleton(cat: Mapping[str, Any], num_joints: int) -> list[tuple[int, int]]:
    """The category's 1-based skeleton pairs as 0-based joint index pairs.

    The skeleton only draws lines, so real files' junk in it is not an error: a 0-based
    skeleton (some joint 0, all below ``num_joints``) is converted, and pairs that are not
    two joint numbers in ``[1, num_joints]`` are dropped; either way one warning names the
    category and what was wrong.
    """
    sk = cat.get("skeleton", [])
    if not isinstance(sk, list):
        sk, problem = [], f"skeleton={sk!r} is not a list of pairs"
    else:
        problem = ""
    pairs = [p for p in sk if isinstance(p, (list, tuple)) and len(p) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in p)]
    if len(pairs) < len(sk):
        problem = f"{len(sk) - len(pairs)} skeleton entries are not [a, b] integer pairs"
    flat = [v for p in pairs for v in p]
    if flat and min(flat) == 0 and max(flat) < num_joints:
        _warn.warn(f"category id={cat.get('id')}: its skeleton numbers joints from 0 "
                      "(COCO numbers them from 1); read as 0-based")
        return [(a, b) for a, b in pairs]
    good = [(a - 1, b - 1) for a, b in pairs if 1 <= a <= num_joints and 1 <= b <= num_joints]
    if len(good) < len(pairs):
        bad = [list(p) for p in pairs if not (1 <= p[0] <= num_joints and 1 <= p[1] <= num_joints)]
        problem = (f"{len(bad)} skeleton pairs name joints outside [1, {num_joints}] "
                   f"(e.g. {bad[0]})")
    if problem:
        _warn.warn(f"category id={cat.get('id')}: {problem}; those are not drawn (the "
                      "skeleton only draws lines)")
    return good


def _size(img: Mapping[str, Any], key: str) -> int:
    v = img.get(key)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() \
            or not 0 <= v <= 1e7:
        raise ValueError(f"image id={img.get('id')} {key}={v!r}: expected an integer in "
                         "[1, 1e7] (or no entry, to read it from the image)")
    return int(v)


def _bbox(ann: Mapping[str, Any]) -> list[float]:
    b = ann.get("bbox")
    ok = isinstance(b, (list, tuple)) and len(b) == 4 and \
        all(isinstance(v, (int, float)) and math.isfinite(v) for v in b)
    if ok and max(abs(v) for v in b) > 1e7:
        ok = False
    if not ok or b[2] < 0 or b[3] < 0:
        raise ValueError(f"annotation id={ann.get('id')} bbox={b!r}: expected [x, y, w, h] "
                         "with finite numbers of at most 1e7 and w, h >= 0")
    return [float(v) for v in b]


def _keypoints(ann: Mapping[str, Any], num_joints: int) -> np.ndarray:
    k = ann.get("keypoints")
    if k is None or (isinstance(k, (list, tuple)) and not k):
        return np.zeros((num_joints, 3))
    if not isinstance(k, (list, tuple)) or len(k) != 3 * num_joints:
        n = len(k) if isinstance(k, (list, tuple)) else type(k).__name__
        raise ValueError(f"annotation id={ann.get('id')} keypoints has {n} values: expected "
                         f"{3 * num_joints} (x, y, v for {num_joints} joints)")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in k):
        bad = next(v for v in k if not isinstance(v, (int, float)) or isinstance(v, bool))
        raise ValueError(f"annotation id={ann.get('id')} keypoints holds {bad!r}: expected "
                         "numbers x, y, v per joint")
    a = np.asarray(k, np.float64).reshape(num_joints, 3)
    bad = np.flatnonzero(~np.isin(a[:, 2], (0, 1, 2)))
    if len(bad):
        raise ValueError(f"annotation id={ann.get('id')} keypoints: joint {int(bad[0])} has "
                         f"visibility {float(a[bad[0], 2])!r} ({len(bad)} of {num_joints} joints "
                         "like it): expected 0, 1 or 2")
    labelled = a[:, 2] > 0
    bad = np.flatnonzero(labelled & ~(np.isfinite(a[:, :2]) & (np.abs(a[:, :2]) <= 1e7))
                         .all(axis=1))
    if len(bad):
        raise ValueError(f"annotation id={ann.get('id')} keypoints: joint {int(bad[0])} at "
                         f"{a[bad[0]].tolist()}: expected finite x, y of at most 1e7 for "
                         "labelled (v > 0) joints")
    return a


def _short(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters (error messages name long values too)."""
    r = repr(value)
    return r if len(r) <= limit else r[:limit - 3] + "..."
