"""A CenterNet sample's augmentation: parameters, annotations and image through them.

CenterNet crops, scales, rotates and flips each training image with one
affine transform (see :mod:`centertargets.geometry`), then changes its
colours (brightness, contrast and saturation in a random order, then PCA
lighting) and normalises it.  :class:`AugmentParams` (with its
:class:`ColorParams`) is everything one sample draws; :class:`AugmentConfig`
draws it.  The functions here apply it to COCO-style annotations and to the
image with exactly CenterNet's float32/float64 rounding order, so the
targets and the network input reproduce upstream's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import cv2
import numpy as np

from .geometry import flip_permutation, get_affine_transform
from .kernels import image as IK
from .kernels import transform as TK


#: The three colour steps of CenterNet's ``color_aug``, applied in a random order.
COLOR_STEPS = ("brightness", "contrast", "saturation")

#: Mean / std of CenterNet's COCO datasets for 0..1 pixels, in OpenCV's BGR channel order
#: (CenterNet feeds BGR images to its networks).
COCO_MEAN_BGR = np.array([0.40789654, 0.44719302, 0.47026115], np.float32)
COCO_STD_BGR = np.array([0.28863828, 0.27408164, 0.27809835], np.float32)
#: PCA of COCO's pixel colours (BGR), CenterNet's ``_eig_val`` / ``_eig_vec`` for lighting.
COCO_EIG_VAL = np.array([0.2141788, 0.01817699, 0.00341571], np.float32)
COCO_EIG_VEC = np.array([[-0.58752847, -0.69563484, 0.41340352],
                         [-0.5832747, 0.00994535, -0.81221408],
                         [-0.56089297, 0.71832671, 0.41158938]], np.float32)


def _finite(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"{owner}.{name}={value!r}: expected a finite number")
    return float(value)


@dataclass(frozen=True)
class ColorParams:
    """One sample's colour augmentation draws, CenterNet's ``color_aug``.

    ``order``: the three steps ``"brightness"``, ``"contrast"``,
    ``"saturation"`` in the order applied (upstream shuffles them with
    Python's ``random``); ``brightness``, ``contrast``, ``saturation``: each
    step's factor ``1 + U(-0.4, 0.4)``; ``lighting``: the three
    ``normal(scale=0.1)`` draws of the PCA lighting, before they are
    multiplied by the eigenvalues.
    """

    order: tuple[str, str, str]
    brightness: float
    contrast: float
    saturation: float
    lighting: tuple[float, float, float]

    def __post_init__(self) -> None:
        order = tuple(self.order)
        if sorted(order) != sorted(COLOR_STEPS):
            raise ValueError(f"ColorParams.order={self.order!r}: expected the three steps "
                             f"{COLOR_STEPS} in some order")
        object.__setattr__(self, "order", order)
        for name in COLOR_STEPS:
            object.__setattr__(self, name, _finite("ColorParams", name, getattr(self, name)))
        try:
            light = tuple(_finite("ColorParams", "lighting", v) for v in self.lighting)
        except TypeError:
            light = ()
        if len(light) != 3:
            raise ValueError(f"ColorParams.lighting={self.lighting!r}: expected three numbers")
        object.__setattr__(self, "lighting", light)

    @classmethod
    def draw(cls, rng: np.random.Generator, var: float = 0.4, lighting_std: float = 0.1
             ) -> "ColorParams":
        """Draw like upstream: a random order, factors ``1 + U(-var, var)``, lighting normals."""
        order = tuple(COLOR_STEPS[i] for i in rng.permutation(3))
        f = 1.0 + rng.uniform(-var, var, size=3)
        light = rng.normal(0.0, lighting_std, size=3)
        return cls(order, float(f[0]), float(f[1]), float(f[2]),  # type: ignore[arg-type]
                   (float(light[0]), float(light[1]), float(light[2])))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ColorParams":
        """From ``{"order": [...], "brightness": ..., ..., "lighting": [...]}`` (fixture meta)."""
        return cls(tuple(d["order"]), d["brightness"], d["contrast"],  # type: ignore[arg-type]
                   d["saturation"], tuple(d["lighting"]))  # type: ignore[arg-type]

    def apply(self, image: np.ndarray, eig_val: np.ndarray = COCO_EIG_VAL,
              eig_vec: np.ndarray = COCO_EIG_VEC) -> None:
        """Change ``image`` (H, W, 3) float32 BGR in [0, 1] in place, with upstream's arithmetic.

        The grey image and its mean are taken once, before any step; each
        step scales the image by its factor in float32 and blends in
        ``(1 - factor)`` times the grey mean (contrast) or the grey image
        (saturation; upstream scales its grey image in place); the lighting
        adds ``eig_vec @ (eig_val * lighting)`` (float64) to every pixel.
        """
        if image.dtype != np.float32 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image has dtype {image.dtype} and shape {image.shape}: expected "
                             "float32 (H, W, 3)")
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        gray_mean = np.float32(gray.mean())
        for step in self.order:
            alpha = getattr(self, step)
            image *= np.float32(alpha)
            if step == "contrast":
                image += np.float32(gray_mean * np.float32(1.0 - alpha))
            elif step == "saturation":
                gray *= np.float32(1.0 - alpha)
                image += gray[:, :, None]
        shift = np.dot(eig_vec, eig_val * np.asarray(self.lighting, np.float64))
        np.add(image, shift, out=image, casting="same_kind")


@dataclass(frozen=True)
class AugmentParams:
    """Everything one CenterNet sample draws: ``c``, ``s``, ``rot``, the flip and the colours.

    ``center`` is in the (already flipped) image's pixels, as CenterNet passes
    it to ``get_affine_transform``; ``scale`` a float or ``(sw, sh)`` (with
    ``keep_res``, kept in float64 as upstream); ``rot`` in degrees;
    ``color`` a :class:`ColorParams` or None (no colour augmentation);
    ``center_dtype`` the precision of ``c`` in upstream's transform:
    ``"float32"`` (ctdet, multi_pose) or ``"float64"`` (exdet), a property of
    the task that :class:`~centertargets.CenterNetDataset` sets; ``augmented``
    a task's own augmentation coin (ddd's ``aug_ddd``: then ``reg_mask`` is 0).
    Given the image, these fully determine the sample: see
    ``CenterNetDataset.item(index, params)``.
    """

    center: tuple[float, float]
    scale: float | tuple[float, float]
    rot: float = 0.0
    flipped: bool = False
    color: ColorParams | None = None
    center_dtype: Literal["float32", "float64"] = "float32"
    augmented: bool = False

    def __post_init__(self) -> None:
        try:
            c = tuple(float(v) for v in self.center)
        except (TypeError, ValueError):
            c = ()
        if len(c) != 2 or not all(np.isfinite(c)):
            raise ValueError(f"AugmentParams.center={self.center!r}: expected (cx, cy), finite")
        object.__setattr__(self, "center", c)
        if np.ndim(self.scale) == 0:
            s: Any = _finite("AugmentParams", "scale", self.scale)
            ok = s > 0
        else:
            s = tuple(float(v) for v in np.asarray(self.scale, np.float64).reshape(-1))
            ok = len(s) == 2 and all(np.isfinite(s)) and min(s) > 0
        if not ok:
            raise ValueError(f"AugmentParams.scale={self.scale!r}: expected a number > 0 or "
                             "(sw, sh) > 0")
        object.__setattr__(self, "scale", s)
        object.__setattr__(self, "rot", _finite("AugmentParams", "rot", self.rot))
        object.__setattr__(self, "flipped", bool(self.flipped))
        object.__setattr__(self, "augmented", bool(self.augmented))
        if self.color is not None and not isinstance(self.color, ColorParams):
            raise ValueError(f"AugmentParams.color={self.color!r}: expected ColorParams or None")
        if self.center_dtype not in ("float32", "float64"):
            raise ValueError(f"AugmentParams.center_dtype={self.center_dtype!r}: expected "
                             "'float32' or 'float64'")

    @classmethod
    def centered(cls, image_width: int, image_height: int,
                 scale: float | tuple[float, float] | None = None) -> "AugmentParams":
        """CenterNet's validation transform: centre of the image, scale = longer side.

        ``scale`` overrides the scale (``keep_res``: the input size ``(w, h)``).
        """
        return cls((image_width / 2.0, image_height / 2.0),
                   float(max(image_width, image_height)) if scale is None else scale)

    def matrix(self, output_size: Sequence[int], rotated: bool = True) -> np.ndarray:
        """2x3 float64 image -> output matrix (``rotated=False``: with ``rot = 0``)."""
        return get_affine_transform(np.array(self.center, self.center_dtype), self._scale(),
                                    self.rot if rotated else 0.0, list(output_size))

    def _scale(self) -> float | np.ndarray:
        if isinstance(self.scale, tuple):
            return np.array(self.scale, dtype=np.float64)
        return float(self.scale)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (json-friendly), the inverse of :meth:`from_dict`."""
        d: dict[str, Any] = {"center": list(self.center), "scale": self.scale
                             if not isinstance(self.scale, tuple) else list(self.scale),
                             "rot": self.rot, "flipped": self.flipped, "color": None,
                             "augmented": self.augmented}
        if self.color is not None:
            c = self.color
            d["color"] = {"order": list(c.order), "brightness": c.brightness,
                          "contrast": c.contrast, "saturation": c.saturation,
                          "lighting": list(c.lighting)}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AugmentParams":
        """From a dict with ``center``, ``scale``, ``rot``, ``flipped`` and optional ``color``
        (the ``__meta__`` of upstream fixtures has this form)."""
        scale = d["scale"]
        color = d.get("color")
        return cls(tuple(d["center"]),  # type: ignore[arg-type]
                   tuple(scale) if isinstance(scale, (list, tuple)) else float(scale),
                   float(d.get("rot", 0.0)), bool(d.get("flipped", False)),
                   ColorParams.from_dict(color) if color else None,
                   augmented=bool(d.get("augmented", False)))


def annotations_to_output(boxes_xywh: np.ndarray, image_width: int, params: AugmentParams,
                          output_size: Sequence[int], keypoints: np.ndarray | None = None,
                          flip_idx: Sequence[tuple[int, int]] | None = (),
                          rotation: Literal["centernet", "corners"] = "centernet"
                          ) -> tuple[np.ndarray, np.ndarray | None]:
    """Boxes (and keypoints) from image pixels to output-map pixels, float32.

    Upstream's arithmetic in one compiled pass (:mod:`centertargets.kernels.transform`):
    the result is bit-identical to composing :func:`~centertargets.geometry.coco_boxes_to_xyxy`,
    :func:`~centertargets.geometry.flip_boxes` / :func:`~centertargets.geometry.flip_keypoints`
    and :func:`~centertargets.geometry.transform_boxes` /
    :func:`~centertargets.geometry.transform_points`.

    Parameters
    ----------
    boxes_xywh : (N, 4) COCO boxes in the unflipped image.
    image_width : width of the unflipped image (for the flip).
    params : the sample's :class:`AugmentParams`.
    output_size : ``(width, height)`` of the output map.
    keypoints : optional (N, J, 3) x, y, v in the unflipped image.
    flip_idx : left/right joint pairs swapped by the flip (None: none).
    rotation : ``"centernet"`` maps boxes with the unrotated matrix (upstream);
        ``"corners"`` maps the 4 corners with the rotated one and takes the hull.

    Returns
    -------
    boxes : (N, 4) float32 x1, y1, x2, y2 (not clipped; the encoders clip).
    keypoints : (N, J, 3) float32 with x, y mapped where v > 0 (0 elsewhere), or None.
    """
    boxes = _readonly(boxes_xywh, np.float64).reshape(-1, 4)
    n = len(boxes)
    if keypoints is None:
        kps, out_kps = _NO_KEYPOINTS, _NO_KEYPOINTS32
    else:
        kps = _readonly(keypoints, np.float64)
        kps = kps.reshape(n, kps.shape[-2] if kps.ndim == 3 else -1, 3)
        out_kps = np.empty(kps.shape, np.float32)
    rotated = params.matrix(output_size)
    unrotated = rotated if params.rot == 0 else params.matrix(output_size, rotated=False)
    corners = rotation == "corners" and params.rot != 0
    out_boxes = np.empty((n, 4), np.float32)
    bad = TK.annotations_to_output(boxes, kps, np.float32(image_width), params.flipped,
                                   flip_permutation(kps.shape[1], flip_idx or ()
                                                    if keypoints is not None else ()),
                                   rotated if corners else unrotated, rotated, corners,
                                   out_boxes, out_kps)
    if bad >= 0:
        raise ValueError(f"object {bad} (boxes_xywh={boxes[bad].tolist()}) maps to non-finite "
                         f"output-map coordinates under {params}: expected finite annotations "
                         "and transform")
    return out_boxes, None if keypoints is None else out_kps


def _readonly(a: Any, dtype: type) -> np.ndarray:
    """``a`` as a read-only C-contiguous array of ``dtype``: COCO's stored arrays are read-only
    views, and one array type means one compiled specialisation of the transform kernel."""
    arr = np.ascontiguousarray(a, dtype=dtype)
    if arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    return arr


_NO_KEYPOINTS = _readonly(np.zeros((0, 0, 3)), np.float64)
_NO_KEYPOINTS32 = np.zeros((0, 0, 3), np.float32)


def _warp_probe_cases(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, tuple]]:
    """Small random images, transforms (zoom, rotation, the image's border in view) and
    output sizes on which the two ways of warping must agree."""
    cases = []
    for k in range(12):
        h, w = int(rng.integers(9, 70)), int(rng.integers(9, 90))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        m = cv2.getRotationMatrix2D((float(rng.uniform(-5, w + 5)), float(rng.uniform(-5, h + 5))),
                                    float(rng.uniform(-40, 40)) if k % 2 else 0.0,
                                    float(rng.uniform(0.4, 2.5)))
        m[:, 2] += rng.uniform(-20, 20, 2)
        cases.append((img, m, (int(rng.integers(5, 80)), int(rng.integers(5, 80)))))
    return cases


_FOUR_CHANNELS: list[bool] = []


def four_channel_warp() -> bool:
    """Whether this process's OpenCV warps a BGRA image to the same B, G, R bytes as the BGR
    image (checked once per process on :func:`_warp_probe_cases`, about 3 ms).

    OpenCV 4.11+ vectorises ``warpAffine``'s bilinear 8-bit path for 1 and 4 channels
    better than for 3: on this project's machine (OpenCV 5.0, AVX-512) a 512x512 BGR warp
    takes 2.0 ms and the same image as BGRA 1.0 ms, with identical bytes in every channel
    (0 of 26.7 million pixels differed over 300 random transforms when measured;
    ``tests/test_images.py`` holds both routes to the BGR warp byte for byte).
    The samples take the BGRA route only where this check agrees, so a build whose paths
    round differently falls back to the BGR warp, which is upstream's.
    ``CENTERTARGETS_BGRA_WARP=0`` switches the route off.
    """
    if not _FOUR_CHANNELS:
        ok = os.environ.get("CENTERTARGETS_BGRA_WARP", "1") != "0"
        for img, m, size in _warp_probe_cases(np.random.default_rng(20261201)) if ok else ():
            three = cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR)
            four = cv2.warpAffine(cv2.cvtColor(img, cv2.COLOR_BGR2BGRA), m, size,
                                  flags=cv2.INTER_LINEAR)
            if not np.array_equal(three, four[:, :, :3]):
                ok = False
                break
        _FOUR_CHANNELS.append(ok)
    return _FOUR_CHANNELS[0]


def _warp(image: np.ndarray, params: AugmentParams, input_size: Sequence[int]
          ) -> tuple[np.ndarray, bool]:
    """``image`` flipped and warped, and whether it went through BGRA: a uint8 BGR image
    (H, W, 3) takes the faster route where :func:`four_channel_warp` allows, and comes back
    (h, w, 4) with those bytes in its first three channels; anything else as it is."""
    if params.flipped:
        image = cv2.flip(image, 1)          # image[:, ::-1], copied by OpenCV's fast path
    m = params.matrix(input_size)
    size = (int(input_size[0]), int(input_size[1]))
    bgra = image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and \
        four_channel_warp()
    if bgra:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2BGRA)
    return cv2.warpAffine(np.ascontiguousarray(image), m, size, flags=cv2.INTER_LINEAR), bgra


def warp_image(image: np.ndarray, params: AugmentParams, input_size: Sequence[int]) -> np.ndarray:
    """The network input: ``image`` (H, W, 3) flipped and warped to ``input_size`` (w, h).

    Upstream's ``cv2.warpAffine`` of the (flipped) BGR image, byte for byte; computed
    through BGRA where that is faster and gives the same bytes (:func:`four_channel_warp`).
    """
    warped, bgra = _warp(image, params, input_size)
    return cv2.cvtColor(warped, cv2.COLOR_BGRA2BGR) if bgra else warped


def warp_image_chw(image: np.ndarray, params: AugmentParams, input_size: Sequence[int]
                   ) -> np.ndarray:
    """:func:`warp_image` of a BGR uint8 ``image`` (H, W, 3) as the uint8 network input
    (3, in_h, in_w): the same bytes, planes first (``cv2.split`` into the planes, about 3x
    faster than numpy's strided transpose)."""
    warped, bgra = _warp(check_image(image), params, input_size)
    out = np.empty((3,) + warped.shape[:2], np.uint8)
    planes = [out[0], out[1], out[2]]
    if bgra:
        planes.append(np.empty(warped.shape[:2], np.uint8))        # alpha, dropped
    cv2.split(warped, planes)
    return out


def network_input(image: np.ndarray, params: AugmentParams, input_size: Sequence[int],
                  mean: np.ndarray = COCO_MEAN_BGR, std: np.ndarray = COCO_STD_BGR,
                  eig_val: np.ndarray = COCO_EIG_VAL, eig_vec: np.ndarray = COCO_EIG_VEC
                  ) -> np.ndarray:
    """CenterNet's network input from a BGR uint8 image (H, W, 3): float32 (3, in_h, in_w).

    Upstream's steps and arithmetic: flip, warp to ``input_size`` (w, h),
    ``/ 255`` in float32, the colour augmentation of ``params.color`` (if
    any, see :meth:`ColorParams.apply`), ``(x - mean) / std`` per BGR
    channel, HWC -> CHW.  After OpenCV's warp, everything is one compiled
    pass over the image (plus one over the uint8 image for the grey mean);
    the values match upstream's numpy code within 1e-6 (the grey mean is
    summed in another order).
    """
    warped = warp_image(check_image(image), params, input_size)
    H, W = warped.shape[:2]
    out = np.empty((3, H, W), np.float32)
    m = [np.float32(v) for v in np.asarray(mean, np.float32).reshape(3)]
    d = [np.float32(v) for v in np.asarray(std, np.float32).reshape(3)]
    c = params.color
    if c is None:
        IK.normalize_plain(warped, out, *m, *d)
        return out
    gray_mean = np.float32(IK.gray_mean(warped))
    a, add, sat = [], [], []
    for step in c.order:
        alpha = getattr(c, step)
        one_minus = np.float32(1.0 - alpha)
        a.append(np.float32(alpha))
        add.append(np.float32(gray_mean * one_minus) if step == "contrast" else np.float32(0))
        sat.append(one_minus if step == "saturation" else np.float32(0))
    shift = np.dot(eig_vec, eig_val * np.asarray(c.lighting, np.float64))
    IK.normalize_color(warped, out, *a, *add, *sat, *(float(v) for v in shift), *m, *d)
    return out


#: Codes of the colour steps in ``color_meta``'s ``order``.
COLOR_STEP_CODES = {name: k for k, name in enumerate(COLOR_STEPS)}


def color_meta(color: ColorParams | None) -> dict[str, np.ndarray]:
    """A sample's colour draws as fixed-shape arrays (collatable): ``on`` (bool), ``order``
    (3,) int64 step codes (0 brightness, 1 contrast, 2 saturation), ``factors`` (3,) f64 by
    step code, ``lighting`` (3,) f64; zeros and ``on=False`` without colour augmentation."""
    if color is None:
        return {"on": np.bool_(False), "order": np.arange(3, dtype=np.int64),
                "factors": np.ones(3), "lighting": np.zeros(3)}
    return {"on": np.bool_(True),
            "order": np.array([COLOR_STEP_CODES[s] for s in color.order], np.int64),
            "factors": np.array([color.brightness, color.contrast, color.saturation], np.float64),
            "lighting": np.array(color.lighting, np.float64)}


def check_image(image: Any) -> np.ndarray:
    """``image`` as a BGR uint8 ``(H, W, 3)`` array, or a ValueError saying what it is."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
        raise ValueError(f"image has dtype {img.dtype} and shape {img.shape}: expected a BGR "
                         "uint8 (H, W, 3) image, as cv2.imread returns")
    return img


@dataclass(frozen=True)
class AugmentConfig:
    """CenterNet's training augmentation (its ``opts`` defaults), or none when ``train=False``.

    ``rand_crop`` (CenterNet's default; ``--not_rand_crop`` turns it off):
    scale times one of 0.6, 0.7, ..., 1.3 and a random centre away from the
    borders; otherwise centre shifted by ``shift`` and scale jittered by
    ``scale`` (Gaussian, clipped at 2 sigma).  ``flip`` is the probability of
    a horizontal flip; ``rot_prob`` / ``rotate`` CenterNet's ``aug_rot`` /
    ``rotate`` (degrees, clipped at 2 sigma).  ``color`` (default: on when
    ``train``, as upstream's ``no_color_aug=False``) draws a
    :class:`ColorParams` per sample with factors ``1 + U(-color_var,
    color_var)`` and lighting ``normal(scale=lighting_std)``.
    """

    train: bool = False
    rand_crop: bool = True
    scale: float = 0.4
    shift: float = 0.1
    flip: float = 0.5
    rot_prob: float = 0.0
    rotate: float = 0.0
    color: bool | None = None
    color_var: float = 0.4
    lighting_std: float = 0.1

    def __post_init__(self) -> None:
        for name in ("train", "rand_crop"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"AugmentConfig.{name}={getattr(self, name)!r}: expected True "
                                 "or False")
        if self.color is not None and not isinstance(self.color, bool):
            raise ValueError(f"AugmentConfig.color={self.color!r}: expected None, True or False")
        for name in ("scale", "shift", "rotate", "color_var", "lighting_std"):
            v = _finite("AugmentConfig", name, getattr(self, name))
            if v < 0:
                raise ValueError(f"AugmentConfig.{name}={v!r}: expected a number >= 0")
        for name in ("flip", "rot_prob"):
            v = _finite("AugmentConfig", name, getattr(self, name))
            if not 0 <= v <= 1:
                raise ValueError(f"AugmentConfig.{name}={v!r}: expected a probability in [0, 1]")

    @property
    def color_on(self) -> bool:
        """Whether samples get colour augmentation (``color``, or ``train`` when None)."""
        return self.train if self.color is None else self.color

    def sample(self, rng: np.random.Generator, width: int, height: int,
               scale: float | tuple[float, float] | None = None) -> AugmentParams:
        """Draw one sample's :class:`AugmentParams` for an image ``width x height``.

        ``scale``: the untransformed scale, ``max(width, height)`` by default
        (``keep_res``: the input size ``(w, h)``, multiplied in float64 as upstream).
        """
        if width < 1 or height < 1:
            raise ValueError(f"image size {width}x{height}: expected width and height >= 1")
        c = np.array([width / 2.0, height / 2.0], np.float32)
        s: Any = float(max(width, height)) if scale is None else scale
        color = ColorParams.draw(rng, self.color_var, self.lighting_std) \
            if self.color_on and not self.train else None
        if not self.train:
            return AugmentParams((float(c[0]), float(c[1])), s, color=color)
        pair = isinstance(s, tuple)
        f = self.draw_crop(rng, c, *(s if pair else (s, s)), width, height)
        s = tuple(float(np.float32(v)) * f for v in s) if pair else s * f
        rot = self.draw_rotation(rng)
        flipped = bool(rng.random() < self.flip)
        if flipped:
            c[0] = width - c[0] - 1
        if self.color_on:
            color = ColorParams.draw(rng, self.color_var, self.lighting_std)
        return AugmentParams((float(c[0]), float(c[1])), s, rot, flipped, color)


    def draw_crop(self, rng: np.random.Generator, c: np.ndarray, sw: float, sh: float,
                  width: int, height: int) -> float:
        """Upstream's crop draw, moving the float32 centre ``c`` in place; returns the scale
        factor.  ``rand_crop``: a factor among 0.6, 0.7, ..., 1.3 and a centre away from the
        borders; otherwise the centre shifted by ``clip(N(0, shift), +-2 shift)`` times
        ``sw``/``sh`` and a factor ``clip(N(1, scale), 1 +- scale)``."""
        if self.rand_crop:
            f = float(rng.choice(np.arange(0.6, 1.4, 0.1)))
            wb, hb = _border(128, width), _border(128, height)
            c[0] = rng.integers(wb, max(wb + 1, width - wb))
            c[1] = rng.integers(hb, max(hb + 1, height - hb))
            return f
        sf, cf = self.scale, self.shift
        c[0] += sw * np.clip(rng.standard_normal() * cf, -2 * cf, 2 * cf)
        c[1] += sh * np.clip(rng.standard_normal() * cf, -2 * cf, 2 * cf)
        return float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))

    def draw_rotation(self, rng: np.random.Generator) -> float:
        """Upstream's rotation: with probability ``rot_prob``, ``clip(N(0, rotate), +-2
        rotate)`` degrees, else 0."""
        if rng.random() < self.rot_prob:
            return float(np.clip(rng.standard_normal() * self.rotate, -2 * self.rotate,
                                 2 * self.rotate))
        return 0.0


def _border(border: int, size: int) -> int:
    """CenterNet's ``_get_border``: halve ``border`` until it leaves room in ``size`` (>= 0)."""
    i = 1
    while border // i > 0 and size - border // i <= border // i:
        i *= 2
    return border // i
