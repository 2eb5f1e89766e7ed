"""The network input in one pass: uint8 HWC (warped) -> colour augmentation -> normalised CHW float32.

Upstream CenterNet makes four to eight full passes over the image after the
warp (``astype(float32) / 255``, the colour steps, ``- mean``, ``/ std``,
transpose).  :func:`normalize_image` does the same float32 arithmetic per
pixel in one pass (after :func:`gray_sum`, one cheap pass over the uint8
image for the grey mean the contrast step needs).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

# OpenCV's BGR -> grey weights (float32), as cv2.cvtColor(COLOR_BGR2GRAY) uses them
GRAY_B = np.float32(0.114)
GRAY_G = np.float32(0.587)
GRAY_R = np.float32(0.299)


@jit
def gray_mean(image):
    """Mean grey value of ``image`` (H, W, 3) uint8 BGR seen as ``x / 255`` (float64).

    From the exact integer channel sums, ``(0.114 Sb + 0.587 Sg + 0.299 Sr) /
    (255 N)``: within about 1e-7 of upstream's float32 ``gray.mean()``.
    """
    flat = image.reshape(image.size)
    n = image.shape[0] * image.shape[1]
    sb = 0
    sg = 0
    sr = 0
    for i in range(n):
        sb += np.int64(flat[3 * i])
        sg += np.int64(flat[3 * i + 1])
        sr += np.int64(flat[3 * i + 2])
    total = np.float64(GRAY_B) * sb + np.float64(GRAY_G) * sg + np.float64(GRAY_R) * sr
    return total / (255.0 * max(n, 1))


@jit
def normalize_plain(image, out, m0, m1, m2, d0, d1, d2):
    """``out[c] = (image[..., c] / 255 - mean[c]) / std[c]`` in float32, HWC uint8 -> CHW.

    ``image`` (H, W, 3) uint8 BGR and ``out`` (3, H, W) float32, both C-contiguous.
    """
    n = image.shape[0] * image.shape[1]
    flat = image.reshape(image.size)
    o = out.reshape(3, n)
    ob, og, orr = o[0], o[1], o[2]
    inv = np.float32(255.0)
    for i in range(n):
        ob[i] = (np.float32(flat[3 * i]) / inv - m0) / d0
        og[i] = (np.float32(flat[3 * i + 1]) / inv - m1) / d1
        orr[i] = (np.float32(flat[3 * i + 2]) / inv - m2) / d2


#: Pixels per block of :func:`normalize_color`: its planes stay in cache between the loops.
BLOCK = 8192


@jit
def _load_block(flat, ob, og, orr, gray):
    """Deinterleave a block of BGR uint8 pixels into float32 planes ``x / 255`` and their grey."""
    inv = np.float32(255.0)
    for i in range(ob.size):
        b = np.float32(flat[3 * i]) / inv
        g = np.float32(flat[3 * i + 1]) / inv
        r = np.float32(flat[3 * i + 2]) / inv
        ob[i] = b
        og[i] = g
        orr[i] = r
        gray[i] = b * GRAY_B + g * GRAY_G + r * GRAY_R


@jit
def _color_block(plane, gray, a0, a1, a2, c0, c1, c2, s0, s1, s2, light, mean, std):
    """The three colour steps, the lighting and the normalisation of one channel's block."""
    for i in range(plane.size):
        x = plane[i]
        gy = gray[i]
        x = x * a0 + (c0 + gy * s0)
        x = x * a1 + (c1 + gy * s1)
        x = x * a2 + (c2 + gy * s2)
        plane[i] = (np.float32(np.float64(x) + light) - mean) / std


@jit
def normalize_color(image, out, a0, a1, a2, c0, c1, c2, s0, s1, s2, l0, l1, l2,
                    m0, m1, m2, d0, d1, d2):
    """Colour augmentation, lighting and normalisation, HWC uint8 -> CHW float32.

    ``image`` (H, W, 3) uint8 BGR and ``out`` (3, H, W) float32, C-contiguous.
    Step k of the three (in upstream's drawn order) is ``x = x * a_k;
    x += c_k + gray * s_k`` on each channel, with ``(c_k, s_k)`` = ``(0, 0)``
    for brightness, ``(float32(gray_mean * (1 - a)), 0)`` for contrast and
    ``(0, float32(1 - a))`` for saturation: adding an exact zero changes
    nothing, so this branch-free form is upstream's float32 arithmetic.
    ``gray`` is OpenCV's BGR -> grey of ``x / 255``.  Then
    ``x = float32(float64(x) + l_c)`` (lighting, float64 as upstream) and
    ``(x - m_c) / d_c``.  The image is processed in blocks of :data:`BLOCK`
    pixels, each by a few simple loops that LLVM vectorises (one loop doing
    everything does not vectorise and is 5x slower).
    """
    n = image.shape[0] * image.shape[1]
    flat = image.reshape(image.size)
    o = out.reshape(3, n)
    gray = np.empty(BLOCK, np.float32)
    for lo in range(0, n, BLOCK):
        hi = min(n, lo + BLOCK)
        ob, og, orr = o[0, lo:hi], o[1, lo:hi], o[2, lo:hi]
        g = gray[:hi - lo]
        _load_block(flat[3 * lo:3 * hi], ob, og, orr, g)
        _color_block(ob, g, a0, a1, a2, c0, c1, c2, s0, s1, s2, l0, m0, d0)
        _color_block(og, g, a0, a1, a2, c0, c1, c2, s0, s1, s2, l1, m1, d1)
        _color_block(orr, g, a0, a1, a2, c0, c1, c2, s0, s1, s2, l2, m2, d2)
