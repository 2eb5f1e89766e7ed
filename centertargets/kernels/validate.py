"""Input checks as kernels: find the first bad row fast, the caller words the error."""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit

OK = 0
NOT_FINITE = 1
BAD_ORDER = 2
BAD_VISIBILITY = 3
OUT_OF_RANGE = 4


@jit
def check_boxes(boxes: np.ndarray) -> tuple[int, int]:
    """``(row, code)`` of the first box (N, 4) that is not finite or has x2 < x1 / y2 < y1."""
    for i in range(boxes.shape[0]):
        for c in range(4):
            if not math.isfinite(boxes[i, c]):
                return i, NOT_FINITE
        if boxes[i, 2] < boxes[i, 0] or boxes[i, 3] < boxes[i, 1]:
            return i, BAD_ORDER
    return -1, OK


@jit
def check_keypoints(kps: np.ndarray) -> tuple[int, int, int]:
    """``(i, j, code)`` of the first joint whose v is not 0/1/2 or, labelled, is not finite."""
    for i in range(kps.shape[0]):
        for j in range(kps.shape[1]):
            v = kps[i, j, 2]
            if not (v == 0 or v == 1 or v == 2):
                return i, j, BAD_VISIBILITY
            if v > 0 and not (math.isfinite(kps[i, j, 0]) and math.isfinite(kps[i, j, 1])):
                return i, j, NOT_FINITE
    return -1, -1, OK


@jit
def check_classes(classes: np.ndarray, num_classes: int) -> int:
    """Index of the first class outside ``[0, num_classes)``, or -1."""
    for i in range(classes.shape[0]):
        if classes[i] < 0 or classes[i] >= num_classes:
            return i
    return -1
