"""A CenterNet sample's geometry: augmentation parameters -> annotations in output pixels.

CenterNet crops, scales, rotates and flips each training image with one
affine transform (see :mod:`centertargets.geometry`).  This module applies
it to COCO-style annotations with exactly CenterNet's float32/float64
rounding order, so the encoders downstream reproduce upstream targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import cv2
import numpy as np

from .geometry import (flip_boxes, flip_keypoints, get_affine_transform, transform_boxes,
                       transform_points)


@dataclass(frozen=True)
class AugmentParams:
    """CenterNet's per-sample augmentation: ``c``, ``s``, ``rot`` and the flip.

    ``center`` is in the (already flipped) image's pixels, as CenterNet passes
    it to ``get_affine_transform``; ``scale`` a float or ``(sw, sh)``.
    """

    center: tuple[float, float]
    scale: float | tuple[float, float]
    rot: float = 0.0
    flipped: bool = False

    @classmethod
    def centered(cls, image_width: int, image_height: int) -> "AugmentParams":
        """CenterNet's validation transform: centre of the image, scale = longer side."""
        return cls((image_width / 2.0, image_height / 2.0),
                   float(max(image_width, image_height)))

    def matrix(self, output_size: Sequence[int], rotated: bool = True) -> np.ndarray:
        """2x3 float64 image -> output matrix (``rotated=False``: with ``rot = 0``)."""
        return get_affine_transform(np.array(self.center, np.float32), self._scale(),
                                    self.rot if rotated else 0.0, list(output_size))

    def _scale(self) -> float | np.ndarray:
        if isinstance(self.scale, (tuple, list, np.ndarray)):
            return np.array(self.scale, dtype=np.float32)
        return float(self.scale)


def coco_boxes_to_xyxy(bboxes_xywh: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """COCO ``[x, y, w, h]`` (N, 4) -> float32 ``x1, y1, x2, y2``, sums in float64 as CenterNet."""
    b = np.asarray(bboxes_xywh, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]],
                    axis=1).astype(np.float32)


def annotations_to_output(boxes_xywh: np.ndarray, image_width: int, params: AugmentParams,
                          output_size: Sequence[int], keypoints: np.ndarray | None = None,
                          flip_idx: Sequence[tuple[int, int]] = (),
                          rotation: Literal["centernet", "corners"] = "centernet"
                          ) -> tuple[np.ndarray, np.ndarray | None]:
    """Boxes (and keypoints) from image pixels to output-map pixels, float32.

    Parameters
    ----------
    boxes_xywh : (N, 4) COCO boxes in the unflipped image.
    image_width : width of the unflipped image (for the flip).
    params : the sample's :class:`AugmentParams`.
    output_size : ``(width, height)`` of the output map.
    keypoints : optional (N, J, 3) x, y, v in the unflipped image.
    flip_idx : left/right joint pairs swapped by the flip.
    rotation : ``"centernet"`` maps boxes with the unrotated matrix (upstream);
        ``"corners"`` maps the 4 corners with the rotated one and takes the hull.

    Returns
    -------
    boxes : (N, 4) float32 x1, y1, x2, y2 (not clipped; the encoders clip).
    keypoints : (N, J, 3) float32 with x, y mapped where v > 0 (0 elsewhere), or None.
    """
    boxes = coco_boxes_to_xyxy(boxes_xywh)
    if params.flipped:
        boxes = flip_boxes(boxes, image_width)
    if rotation == "corners" and params.rot != 0:
        boxes = transform_boxes(boxes, params.matrix(output_size), corners=True)
    else:
        boxes = transform_boxes(boxes, params.matrix(output_size, rotated=False))
    boxes = boxes.astype(np.float32)
    if keypoints is None:
        return boxes, None
    kps = np.array(keypoints, dtype=np.float32)
    kps = kps.reshape(len(boxes), kps.shape[-2] if kps.ndim == 3 else -1, 3)
    if params.flipped:
        kps = flip_keypoints(kps, image_width, flip_idx)
    xy = transform_points(kps[..., :2], params.matrix(output_size)).astype(np.float32)
    kps[..., :2] = np.where((kps[..., 2] > 0)[..., None], xy, np.float32(0.0))
    return boxes, kps


def warp_image(image: np.ndarray, params: AugmentParams, input_size: Sequence[int]) -> np.ndarray:
    """The network input: ``image`` (H, W, 3) flipped and warped to ``input_size`` (w, h)."""
    if params.flipped:
        image = image[:, ::-1]
    m = params.matrix(input_size)
    return cv2.warpAffine(np.ascontiguousarray(image), m, (int(input_size[0]), int(input_size[1])),
                          flags=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class AugmentConfig:
    """CenterNet's training augmentation (its ``opts`` defaults), or none when ``train=False``.

    ``rand_crop`` (CenterNet's default; ``--not_rand_crop`` turns it off):
    scale times one of 0.6, 0.7, ..., 1.3 and a random centre away from the
    borders; otherwise centre shifted by ``shift`` and scale jittered by
    ``scale`` (Gaussian, clipped at 2 sigma).  ``flip`` is the probability of
    a horizontal flip; ``rot_prob`` / ``rotate`` CenterNet's ``aug_rot`` /
    ``rotate`` (degrees, clipped at 2 sigma).
    """

    train: bool = False
    rand_crop: bool = True
    scale: float = 0.4
    shift: float = 0.1
    flip: float = 0.5
    rot_prob: float = 0.0
    rotate: float = 0.0

    def sample(self, rng: np.random.Generator, width: int, height: int) -> AugmentParams:
        """Draw one sample's :class:`AugmentParams` for an image ``width x height``."""
        c = np.array([width / 2.0, height / 2.0], np.float32)
        s = float(max(width, height))
        if not self.train:
            return AugmentParams((float(c[0]), float(c[1])), s)
        rot = 0.0
        if self.rand_crop:
            s = s * float(rng.choice(np.arange(0.6, 1.4, 0.1)))
            wb, hb = _border(128, width), _border(128, height)
            c[0] = rng.integers(wb, max(wb + 1, width - wb))
            c[1] = rng.integers(hb, max(hb + 1, height - hb))
        else:
            sf, cf = self.scale, self.shift
            c[0] += s * np.clip(rng.standard_normal() * cf, -2 * cf, 2 * cf)
            c[1] += s * np.clip(rng.standard_normal() * cf, -2 * cf, 2 * cf)
            s = s * float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
        if rng.random() < self.rot_prob:
            rot = float(np.clip(rng.standard_normal() * self.rotate, -2 * self.rotate,
                                2 * self.rotate))
        flipped = bool(rng.random() < self.flip)
        if flipped:
            c[0] = width - c[0] - 1
        return AugmentParams((float(c[0]), float(c[1])), s, rot, flipped)


def _border(border: int, size: int) -> int:
    i = 1
    while size - border // i <= border // i:
        i *= 2
    return border // i


#: Mean / std of CenterNet's COCO datasets for 0..1 pixels, in OpenCV's BGR channel order
#: (CenterNet feeds BGR images to its networks).
COCO_MEAN_BGR = np.array([0.40789654, 0.44719302, 0.47026115], np.float32)
COCO_STD_BGR = np.array([0.28863828, 0.27408164, 0.27809835], np.float32)


class CenterNetDataset:
    """A map-style dataset (works with ``torch.utils.data.DataLoader``) of CenterNet samples.

    Each item is the encoder's target dict (numpy arrays, CenterNet's names,
    shapes and dtypes) plus, when ``image_root`` is given, ``input``: the
    warped, normalised image, float32 (3, input_h, input_w).  No torch is
    imported; ``default_collate`` turns a list of items into a batch.

    Parameters
    ----------
    coco : a :class:`~centertargets.coco.CocoDataset`.
    config : :class:`~centertargets.CtdetConfig` or :class:`~centertargets.MultiPoseConfig`.
    down_ratio : input size = output size * ``down_ratio`` (CenterNet: 4).
    augment : :class:`AugmentConfig` (default: validation transform).
    image_root : folder of the images (``file_name`` relative to it), or None.
    seed : augmentation is drawn from ``default_rng((seed, epoch, index))``, so
        every worker and every rerun sees the same sample for an index.
    with_report : add ``report``, the :class:`~centertargets.EncodeReport` counts.

    The constructor encodes an empty scene once, so DataLoader workers forked
    afterwards inherit compiled kernels instead of compiling them again.
    """

    def __init__(self, coco: Any, config: Any, down_ratio: int = 4,
                 augment: AugmentConfig | None = None, image_root: str | None = None,
                 seed: int = 0, with_report: bool = False) -> None:
        from .encoders import make_encoder

        self.coco = coco
        self.config = config
        self.encoder = make_encoder(config)
        self.down_ratio = int(down_ratio)
        self.augment = augment or AugmentConfig()
        self.image_root = image_root
        self.seed = int(seed)
        self.epoch = 0
        self.with_report = with_report
        W, H = config.output_size
        self.input_size = (W * self.down_ratio, H * self.down_ratio)
        if config.task == "multi_pose" and coco.num_joints != config.num_joints:
            raise ValueError(f"the COCO file has {coco.num_joints} keypoints per person: expected "
                             f"config.num_joints={config.num_joints}")
        if coco.num_classes > config.num_classes:
            raise ValueError(f"the COCO file has {coco.num_classes} categories: expected at most "
                             f"config.num_classes={config.num_classes}")
        self._encode(np.zeros((0, 4), np.float32), None, np.zeros(0, np.int64), False)  # warm-up

    def set_epoch(self, epoch: int) -> None:
        """Draw different augmentations for a new epoch (call it in the training loop)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.coco)

    def params(self, index: int) -> AugmentParams:
        """The augmentation parameters of item ``index`` at the current epoch."""
        ann = self.coco[index]
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        return self.augment.sample(rng, ann.width, ann.height)

    def _encode(self, boxes: np.ndarray, kps: np.ndarray | None, classes: np.ndarray,
                rotated: bool) -> tuple[dict[str, np.ndarray], Any]:
        if self.config.task == "multi_pose":
            if kps is None:
                kps = np.zeros((len(boxes), self.config.num_joints, 3), np.float32)
            return self.encoder.encode_with_report(boxes, kps, classes, rotated=rotated)
        return self.encoder.encode_with_report(boxes, classes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ann = self.coco[index]
        params = self.params(index)
        rotation = getattr(self.config, "rotation", "centernet")
        boxes, kps = annotations_to_output(
            ann.boxes_xywh, ann.width, params, self.config.output_size,
            keypoints=ann.keypoints if self.config.task == "multi_pose" else None,
            flip_idx=getattr(self.config, "flip_idx", ()), rotation=rotation)
        targets, report = self._encode(boxes, kps, ann.classes, params.rot != 0)
        item: dict[str, Any] = dict(targets)
        if self.image_root is not None:
            item["input"] = self.load_input(ann.file_name, params)
        if self.with_report:
            item["report"] = report.as_dict()
        return item

    def load_input(self, file_name: str, params: AugmentParams) -> np.ndarray:
        """Read, warp and normalise an image like CenterNet: float32 (3, input_h, input_w), BGR."""
        import os

        path = os.path.join(self.image_root or "", file_name)
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {path!r}")
        inp = warp_image(img, params, self.input_size).astype(np.float32) / 255.0
        inp = (inp - COCO_MEAN_BGR) / COCO_STD_BGR
        return np.ascontiguousarray(inp.transpose(2, 0, 1))
