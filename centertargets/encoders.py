"""What every task's encoder shares: ``Encoder``, ``Annotations``, ``EncodeReport``, input checks.

Each task's encoder (``CtdetEncoder``, ``MultiPoseEncoder``, ...) lives in its
unit under :mod:`centertargets.tasks` and derives from :class:`Encoder`.
Dimensions used below: N objects given, M = ``max_objs`` slots, C classes,
J joints, H x W the output map.  Inputs are in OUTPUT-map coordinates (the
image already transformed by the sample's affine matrix, see
:mod:`centertargets.geometry`); boxes are clipped to the map as CenterNet
does.  Objects keep their input order: object k (k < M) owns slot k of every
per-object target, and CenterNet drops objects beyond M.
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ._warn import warn
from .config import BaseConfig
from .kernels import encode as K
from .kernels import validate as V
from .kernels.canvas import FAM_MMDET, FAM_UMICH
from .kernels.gaussian import (RADIUS_CENTERNET, RADIUS_CORRECTED, RADIUS_EXACT_SIDES,
                                mmdet_patch_table32, msra_patch, patch_table, patch_table32)
from .spec import TargetSpec

_RADIUS = {"centernet": RADIUS_CENTERNET, "corrected": RADIUS_CORRECTED}

#: Meaning of each value of :attr:`EncodeReport.status`.
STATUS_NAMES = {
    K.ST_ENCODED: "encoded",
    K.ST_DROPPED: "dropped: beyond max_objs",
    K.ST_DEGENERATE: "dropped: zero width or height after clipping to the map",
    K.ST_NO_KEYPOINTS: "encoded in hm only: no labelled keypoint (reg_mask 0)",
    K.ST_BAD_CLASS: "refused: class outside [0, num_classes)",
    K.ST_IGNORED: "an ignore region (in hm at 0.9999, never a positive) or a skipped category",
}


class ClassIndexError(ValueError):
    """An object's class index is outside ``[0, num_classes)``; nothing was encoded.

    Attributes: ``index`` (the object's position in the input), ``value``
    (its class index) and ``num_classes``.  Raised by every encode path, the
    checked-at-load one of :class:`~centertargets.CenterNetDataset` included
    (which re-raises it as a ``ValueError`` naming the image and annotation).
    """

    def __init__(self, index: int, value: int, num_classes: int) -> None:
        self.index, self.value, self.num_classes = index, value, num_classes
        super().__init__(f"classes[{index}]={value}: expected a class index, an integer in "
                         f"[0, {num_classes})")


_REPORT_FIELDS = {
    "num_objects": K.S_INPUT,
    "encoded": K.S_ENCODED,
    "dropped_max_objs": K.S_DROPPED,
    "degenerate": K.S_DEGENERATE,
    "center_collisions": K.S_COLLISIONS,
    "no_keypoints": K.S_NO_KEYPOINTS,
    "keypoints_labelled": K.S_KPS_LABELLED,
    "keypoints_encoded": K.S_KPS_ENCODED,
    "keypoints_outside": K.S_KPS_OUTSIDE,
    "ignored": K.S_IGNORED,
}


@dataclass(frozen=True, repr=False)
class EncodeReport:
    """What an encode call wrote and what it had to leave out (read-only).

    Attributes
    ----------
    num_objects : N, objects given.
    encoded : objects whose centre was drawn (including persons without keypoints).
    dropped_max_objs : objects beyond ``max_objs`` (never looked at).
    degenerate : boxes with zero width or height once clipped to the map.
    center_collisions : objects whose integer centre fell on a pixel that
        already held another object's peak of the same class; CenterNet
        keeps one peak for both.
    no_keypoints : persons with no labelled keypoint (multi_pose).
    keypoints_labelled / keypoints_encoded / keypoints_outside : labelled
        (v > 0) joints of encoded persons, those inside the map, those outside.
    ignored : ignore regions and skipped categories (ddd's negative classes).
    status : int8 (N,), per object: 0 encoded, 1 beyond max_objs,
        2 degenerate, 3 no labelled keypoint, 4 bad class, 5 ignored; see ``STATUS_NAMES``.
    """

    num_objects: int
    encoded: int
    dropped_max_objs: int
    degenerate: int
    center_collisions: int
    no_keypoints: int
    keypoints_labelled: int
    keypoints_encoded: int
    keypoints_outside: int
    ignored: int
    status: np.ndarray = field(compare=False)

    @classmethod
    def from_kernel(cls, stats: np.ndarray, status: np.ndarray) -> "EncodeReport":
        """From the kernels' stats vector (indices ``K.S_*``) and status array."""
        return cls(**{k: int(stats[i]) for k, i in _REPORT_FIELDS.items()}, status=status)

    def __repr__(self) -> str:
        return "EncodeReport(" + ", ".join(f"{k}={v}" for k, v in self.as_dict().items()) + ")"

    @property
    def lost_anything(self) -> bool:
        """True when some object, centre or keypoint did not make it into the targets."""
        return bool(self.dropped_max_objs or self.degenerate or self.center_collisions
                    or self.keypoints_outside)

    def as_dict(self) -> dict[str, int]:
        """The counts (everything but ``status``) as a plain dict."""
        return {k: getattr(self, k) for k in _REPORT_FIELDS}


@dataclass(frozen=True, init=False)
class Annotations:
    """One sample's objects in OUTPUT-map pixels, what every encoder's :meth:`encode_annotations` takes.

    Attributes
    ----------
    boxes : (N, 4) float32 x1, y1, x2, y2.
    classes : (N,) int64 class indices, or None (all class 0).
    keypoints : (N, J, 3) float32 x, y, v, or None (detection, or no keypoints): a task's
        per-object points (joints; exdet's extreme points).
    rotated : the sample was rotated (CenterNet's pose quirk, see ``MultiPoseConfig.rotation``).
    extras : a task's other per-object values, name -> (N, ...) array (ddd: ``alpha``,
        ``depth``, ``dim``), and per-sample flags (ddd: ``augmented``).

    :func:`centertargets.tasks.sample_annotations` makes one from a COCO
    image's annotations and a sample's :class:`~centertargets.AugmentParams`.
    """

    boxes: np.ndarray
    classes: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    rotated: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, boxes: np.ndarray, classes: np.ndarray | None = None,
                 keypoints: np.ndarray | None = None, rotated: bool = False,
                 extras: Mapping[str, Any] | None = None) -> None:
        # one dict update, where a frozen dataclass's __init__ sets each field through
        # object.__setattr__ (1.8 us -> 0.5 us, on every sample's path)
        self.__dict__.update(boxes=boxes, classes=classes, keypoints=keypoints, rotated=rotated,
                             extras={} if extras is None else extras)

    @classmethod
    def from_input_pixels(cls, boxes: Any, classes: Any = None, keypoints: Any = None, *,
                          down_ratio: float = 4.0, matrix: Any = None,
                          box_format: str = "xyxy", rotated: bool = False) -> "Annotations":
        """Annotations in the pixels of the network input image -> output-map pixels.

        For users whose own augmentation (albumentations, mmpose, ...) already
        produced the input image and its annotations.  ``boxes`` (N, 4) in
        ``box_format`` ``"xyxy"`` or ``"xywh"`` (COCO); ``keypoints`` (N, J, 3)
        x, y, v (unlabelled joints, v = 0, stay 0); the output map is the
        input divided by ``down_ratio`` (CenterNet: 4), or ``matrix`` (2x3,
        input -> output) when given, boxes through their 4 corners.  After a
        horizontal flip done elsewhere, swap left/right joints first
        (:func:`centertargets.geometry.swap_left_right`).
        """
        from .geometry import transform_boxes, transform_points

        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        if box_format == "xywh":
            b = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
        elif box_format != "xyxy":
            raise ValueError(f"box_format={box_format!r}: expected 'xyxy' or 'xywh'")
        if matrix is None:
            if not (isinstance(down_ratio, (int, float)) and down_ratio > 0):
                raise ValueError(f"down_ratio={down_ratio!r}: expected a number > 0")
            matrix = np.array([[1.0 / down_ratio, 0, 0], [0, 1.0 / down_ratio, 0]])
        m = np.asarray(matrix, np.float64)
        if m.shape != (2, 3):
            raise ValueError(f"matrix has shape {m.shape}: expected (2, 3), input -> output")
        out_boxes = transform_boxes(b, m, corners=True).astype(np.float32)
        kps = None
        if keypoints is not None:
            k = np.array(keypoints, np.float32).reshape(len(b), -1, 3)
            xy = transform_points(k[..., :2], m).astype(np.float32)
            k[..., :2] = np.where((k[..., 2] > 0)[..., None], xy, np.float32(0))
            kps = k
        cls_ = None if classes is None else np.asarray(classes, np.int64)
        return cls(out_boxes, cls_, kps, bool(rotated))

    @classmethod
    def empty(cls, num_joints: int = 0) -> "Annotations":
        """No objects (with ``(0, num_joints, 3)`` keypoints when ``num_joints``)."""
        kps = np.zeros((0, num_joints, 3), np.float32) if num_joints else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), kps)


def as_numeric(a: object, name: str) -> np.ndarray:
    """``a`` as a real numeric numpy array, or an error naming ``name`` and what was given."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):          # a torch tensor (any dtype, grad)
        t = a.detach().cpu()
        a = (t.float() if str(t.dtype) in ("torch.bfloat16", "torch.float16") else t).numpy()
    if isinstance(a, (str, bytes, dict)) or (a is not None and not hasattr(a, "__len__")
                                             and not hasattr(a, "__array__")):
        raise TypeError(f"{name} is {type(a).__name__}: expected an array of numbers")
    try:
        arr = np.asarray(a)
    except ValueError as exc:                               # ragged nested lists
        raise ValueError(f"{name} cannot be made an array ({exc}): expected equal-length rows "
                         "of numbers") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {arr.dtype}: expected real numbers (int or float)")
    return arr


def kernel_array(a: np.ndarray, dtype: type) -> np.ndarray:
    """``a`` as a C-contiguous, writeable array of ``dtype``: the one array type the kernels are
    compiled for (numba compiles read-only arrays separately, for seconds)."""
    arr = np.ascontiguousarray(a, dtype=dtype)
    return arr if arr.flags.writeable else arr.copy()


def check_boxes(boxes: object) -> np.ndarray:
    raw = as_numeric(boxes, "boxes")
    if raw.size == 0 and (raw.ndim < 2 or raw.shape[-1] in (0, 4)) and raw.shape[:1] in ((0,), ()):
        return np.zeros((0, 4), dtype=np.float32)
    if raw.ndim != 2 or raw.shape[1] != 4:
        raise ValueError(f"boxes has shape {raw.shape}: expected (N, 4) rows of x1, y1, x2, y2")
    b = kernel_array(raw, np.float32)
    i, code = V.check_boxes(b)
    if code == V.NOT_FINITE:
        raise ValueError(f"boxes[{i}]={raw[i].tolist()}: expected finite coordinates")
    if code == V.BAD_ORDER:
        raise ValueError(f"boxes[{i}]={b[i].tolist()}: expected x1 <= x2 and y1 <= y2 "
                         "(x1, y1, x2, y2 order, not x, y, w, h?)")
    return b


def check_classes(classes: object, n: int, num_classes: int) -> np.ndarray:
    if classes is None:
        if num_classes != 1:
            raise ValueError(f"classes=None: expected an (N,) array of class indices "
                             f"when num_classes={num_classes}")
        return np.zeros(n, dtype=np.int64)
    c = as_numeric(classes, "classes")
    if c.size == 0 and n == 0:
        return np.zeros(0, dtype=np.int64)
    if c.shape != (n,):
        raise ValueError(f"classes has shape {c.shape}: expected ({n},), one per box")
    bad = ~((c >= 0) & (c < num_classes))
    if c.dtype.kind == "f":
        bad |= ~np.isfinite(c) | (c != np.round(c))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"classes[{i}]={c[i].item()!r}: expected a class index, an integer in "
                         f"[0, {num_classes})")
    return kernel_array(c, np.int64)


def check_keypoints(keypoints: object, n: int, num_joints: int) -> np.ndarray:
    raw = as_numeric(keypoints, "keypoints")
    if n == 0 and raw.size == 0 and (raw.ndim < 3 or raw.shape[1:] == (num_joints, 3)):
        return np.zeros((0, num_joints, 3), dtype=np.float32)
    k = kernel_array(raw, np.float32)
    if k.ndim == 2 and k.shape == (n, num_joints * 3):
        k = k.reshape(n, num_joints, 3)
    if k.shape != (n, num_joints, 3):
        raise ValueError(f"keypoints has shape {k.shape}: expected ({n}, {num_joints}, 3) "
                         "rows of x, y, v, one person per box")
    i, j, code = V.check_keypoints(k)
    if code == V.BAD_VISIBILITY:
        raise ValueError(f"keypoints[{i}, {j}, 2]={float(k[i, j, 2])}: expected a COCO "
                         "visibility 0 (not labelled), 1 (labelled, occluded) or 2 (visible)")
    if code == V.NOT_FINITE:
        raise ValueError(f"keypoints[{i}, {j}]={k[i, j].tolist()}: expected finite x, y "
                         "for a labelled joint")
    return k


_PARAMS: dict[Any, tuple[tuple[str, ...], frozenset[str], Any]] = {}


def call_kernel(kernel: Any, **named: Any) -> Any:
    """Call a numba kernel with every argument named, passed positionally in its order.

    The fused kernels take 27 and 36 arguments, several of them neighbouring
    floats of the same type: naming each one here means a reordering of the
    kernel's parameters cannot silently swap two of them (a name that does not
    match raises), at next to no cost over a positional call.
    """
    entry = _PARAMS.get(kernel)
    if entry is None:
        order = tuple(inspect.signature(kernel.py_func).parameters)
        entry = _PARAMS[kernel] = (order, frozenset(order), operator.itemgetter(*order))
    order, names, in_order = entry
    if named.keys() != names:
        missing = [n for n in order if n not in named]
        extra = [n for n in named if n not in names]
        raise TypeError(f"{kernel.__name__}: missing arguments {missing}, unknown {extra}")
    return kernel(*in_order(named))


def bind_kernel(kernel: Any, **bound: Any) -> Callable[..., Any]:
    """``kernel`` with the arguments that depend only on the config bound once, by name: a
    function that takes the others, by name.  As :func:`call_kernel`, a name that does not
    match the kernel's parameters raises: for the bound ones here, for the rest at each
    call, where Python's own keyword check does it (``encode_ctdet() got an unexpected
    keyword argument 'x'``, ``... missing 1 required keyword-only argument: 'draws'``).

    The function is generated once (as ``dataclasses`` generates ``__init__``): it takes
    the free arguments as keyword-only parameters and passes every argument to the kernel
    positionally, in the kernel's order, about 1 us over a positional call.
    """
    order = tuple(inspect.signature(kernel.py_func).parameters)
    unknown = sorted(set(bound) - set(order))
    if unknown:
        raise TypeError(f"{kernel.__name__}: unknown arguments {unknown}")
    free = [n for n in order if n not in bound]
    namespace = {"_kernel": kernel, **{f"_bound_{n}": v for n, v in bound.items()}}
    passed = ", ".join(n if n not in bound else f"_bound_{n}" for n in order)
    exec(f"def {kernel.__name__}({'*, ' + ', '.join(free) if free else ''}):\n"
         f"    return _kernel({passed})\n", namespace)
    return namespace[kernel.__name__]


def _shape_only(shape: tuple[int, ...]) -> np.ndarray:
    """A writeable float32 array of ``shape`` over one element (all strides 0): what a kernel
    gets for a heatmap it records in ``draws`` instead of drawing, to read the map's shape."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=shape,
                                           strides=(0,) * len(shape))


class Encoder:
    """A task's encoder: annotations in output-map pixels -> its targets and a report.

    Every task's encoder takes :class:`Annotations` through the same two
    methods: :meth:`encode_annotations` checks them first;
    :meth:`encode_prepared` takes them as they are (already checked and of the
    kernels' array types), the fast path :class:`~centertargets.CenterNetDataset`
    uses for a COCO file's arrays, which were checked when the file was loaded.
    A task's encoder adds its own convenience ``encode(...)``.
    """

    config: BaseConfig
    _config_type: type = BaseConfig

    def __init__(self, config: BaseConfig) -> None:
        if not isinstance(config, self._config_type):
            raise TypeError(f"config is {type(config).__name__}: expected a "
                            f"{self._config_type.__name__}")
        self.config = config
        self._spec: dict[str, TargetSpec] = config.spec()
        self._fresh = tuple((name, s.shape, s.dtype) for name, s in self._spec.items())
        r = config.radius
        # None for the heatmap kinds not drawn: the kernels compile only the one that is
        self._heat = {"msra_sigma": float(config.msra_sigma),
                      "msra": msra_patch(float(config.msra_sigma)) if config.heatmap == "msra"
                      else None,
                      "radius_formula": _RADIUS[r.formula] | (0 if r.round_sides else
                                                               RADIUS_EXACT_SIDES),
                      "min_overlap": float(r.min_overlap),
                      "min_radius": int(r.min_radius),
                      "elliptic_alpha": float(config.elliptic_alpha)
                      if config.heatmap == "elliptic" else None,
                      "table": patch_table(),
                      "table32": mmdet_patch_table32() if config.heatmap == "mmdet"
                      else patch_table32(),
                      "patch_family": FAM_MMDET if config.heatmap == "mmdet" else FAM_UMICH}
        # heatmaps="sparse": the recorded maps' stand-ins, which only carry their shape
        layout = config.sparse_layout()
        self._sparse_maps: dict[str, np.ndarray] = {}
        if config.heatmaps == "sparse":
            if layout.maps:
                dense = config.dense_spec()
                self._sparse_maps = {m: _shape_only(dense[m].shape) for m in layout.maps}
            else:
                warn(f"{type(config).__name__}(heatmaps='sparse'): {layout.dense_reason}, so "
                     "its heatmaps stay dense targets")
        # stand-ins for cheap heads that are off: same dtype and ndim, one compiled signature
        self._off = {"f2": np.zeros((0, 2), np.float32), "u2": np.zeros((0, 2), np.uint8),
                     "u1": np.zeros(0, np.uint8),
                     "f3": np.zeros((0, 1, 1), np.float32), "i1": np.zeros(0, np.int64)}

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Rebuilt from its config in the receiving process (a spawned DataLoader worker): the
        # patch tables are recomputed there (numpy, milliseconds) as read-only arrays, the array
        # type the kernels were compiled and cached for.  The pickle stays a few hundred bytes:
        # a spawned worker's pickle larger than the pipe's buffer would hold up the start of the
        # next worker until this one has imported everything.
        return (type(self), (self.config,))

    def _map(self, t: dict[str, np.ndarray], name: str) -> np.ndarray:
        """Target ``name`` of ``t``, or, when it is recorded in ``draws``, its stand-in."""
        got = t.get(name)
        return self._sparse_maps[name] if got is None else got

    @property
    def spec(self) -> dict[str, TargetSpec]:
        """Name -> :class:`TargetSpec` of every target returned."""
        return self._spec

    def _outputs(self, out: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        if out is None:
            return {name: np.zeros(shape, dtype) for name, shape, dtype in self._fresh}
        missing = [n for n in self._spec if n not in out]
        if missing:
            raise ValueError(f"out is missing {missing}: expected buffers for {list(self._spec)}")
        names = list(self._spec)
        for name, s in self._spec.items():           # check every buffer before touching any
            a = out[name]
            if not isinstance(a, np.ndarray) or a.shape != s.shape or a.dtype != s.dtype \
                    or not a.flags.c_contiguous or not a.flags.writeable:
                got = (getattr(a, "shape", None), getattr(a, "dtype", None))
                raise ValueError(f"out[{name!r}] is {got}: expected a writeable C-contiguous "
                                 f"array of shape {s.shape} and dtype {s.dtype}")
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if np.shares_memory(out[a], out[b]):
                    raise ValueError(f"out[{a!r}] and out[{b!r}] share memory: expected "
                                     "separate buffers (each target is written on its own)")
        for name in names:
            out[name].fill(0)
        return {name: out[name] for name in names}

    @staticmethod
    def _write_cat(t: dict[str, np.ndarray], classes: np.ndarray, status: np.ndarray) -> None:
        if "cat" in t:
            m = min(len(classes), t["cat"].shape[0])
            written = (status[:m] == K.ST_ENCODED) | (status[:m] == K.ST_NO_KEYPOINTS)
            t["cat"][:m][written] = classes[:m][written]

    def _check_overflow(self, n: int) -> None:
        if n > self.config.max_objs and self.config.overflow == "error":
            raise ValueError(f"{n} objects given: expected at most max_objs="
                             f"{self.config.max_objs} (overflow='error')")

    def encode_annotations(self, annotations: Annotations,
                           out: dict[str, np.ndarray] | None = None
                           ) -> tuple[dict[str, np.ndarray], EncodeReport]:
        """Targets for one sample and an :class:`EncodeReport`; the annotations are checked.

        ``out``: optional dict of preallocated buffers (``spec`` shapes and
        dtypes); they are zeroed and filled, and returned.
        """
        t, stats, status = self.encode_prepared(self._checked(annotations), out)
        return t, EncodeReport.from_kernel(stats, status)

    def encode_prepared(self, annotations: Annotations, out: dict[str, np.ndarray] | None = None
                        ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Targets, the kernel's stats (int64, ``K.NSTATS``) and status (int8 (N,)), unchecked.

        The fast path for arrays already checked and of the kernels' types:
        ``boxes`` float32 (N, 4), ``classes`` int64 (N,), keypoints (when the
        task has them) float32 (N, J, 3), all C-contiguous and writeable, as
        the task unit's ``prepared`` returns them for a COCO file's arrays.
        The kernels still check every class against the map (a
        :class:`ClassIndexError`, never a write outside ``hm``).
        """
        a = annotations
        n = len(a.boxes)
        classes = a.classes
        if classes is None or len(classes) != n or (a.keypoints is not None
                                                    and len(a.keypoints) != n):
            raise ValueError(f"{n} boxes, {'no' if classes is None else len(classes)} classes "
                             f"and {'no' if a.keypoints is None else len(a.keypoints)} keypoint "
                             "rows: expected one class (and one keypoint row) per box")
        self._check_overflow(n)
        t = self._outputs(out)
        stats = np.zeros(K.NSTATS, np.int64)
        status = np.zeros(n, np.int8)
        self._run(a, t, stats, status)
        if stats[K.S_DRAWS_LOST]:        # draws is sized for the worst case of the config
            raise RuntimeError(f"{stats[K.S_DRAWS_LOST]} draw rows did not fit "
                               f"{self.config.describe()}'s draws: a bug, please report it")
        if stats[K.S_BAD_CLASS]:         # the kernel checked every class and encoded nothing
            i = int(np.flatnonzero(status == K.ST_BAD_CLASS)[0])
            raise ClassIndexError(i, int(classes[i]), self.config.num_classes)
        self._write_cat(t, classes, status)
        return t, stats, status

    def _checked(self, annotations: Annotations) -> Annotations:
        """``annotations`` checked (errors name the field) and as the kernels' array types."""
        raise NotImplementedError

    def _run(self, a: Annotations, t: dict[str, np.ndarray], stats: np.ndarray,
             status: np.ndarray) -> None:
        """Call the task's kernel with every argument named (:func:`call_kernel`)."""
        raise NotImplementedError
