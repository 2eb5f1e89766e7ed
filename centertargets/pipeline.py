"""A CenterNet sample's geometry: augmentation parameters -> annotations in output pixels.

CenterNet crops, scales, rotates and flips each training image with one
affine transform (see :mod:`centertargets.geometry`).  This module applies
it to COCO-style annotations with exactly CenterNet's float32/float64
rounding order, so the encoders downstream reproduce upstream targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

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
