"""What a task unit is: the one interface through which shared code reaches a task.

A task (ctdet, multi_pose, ...) is one module under ``centertargets/tasks/``
holding its config, target and head specs, encoder and kernel, how a COCO
image's annotations become its arrays (and how a flip changes them), and the
names of its loss and decoder on the torch side.  The module defines a
:class:`TaskUnit` subclass and registers one instance with :func:`register`;
``centertargets/tasks/__init__.py`` imports the task modules and is the only
place that lists them.  The dataset, the CLI, ``compare`` and ``compat`` ask
the registry (:func:`unit_of`, :func:`get`) and never test a task's name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

from .. import config

if TYPE_CHECKING:  # pragma: no cover
    from ..augment import AugmentParams
    from ..coco import CocoDataset, ImageAnnotations
    from ..encoders import Annotations

__all__ = ["TaskUnit", "register", "get", "unit_of", "names", "for_coco", "decode_unit"]


class TaskUnit:
    """One task's hooks.  Subclasses set the class attributes and override what differs.

    Class attributes
    ----------------
    name : the task's name (upstream's ``--task``), e.g. ``"ctdet"``.
    config_type : its frozen config class (``config.task == name``).
    encoder_type : its encoder class (``encoder_type(config)``).
    loss, decoder : ``"module:Class"`` of its torch loss and decoder, imported on request.
    decode_kinds : the ``kind`` of the reference decoder fixtures it answers.
    specificity : when a COCO file fits several tasks, the highest wins (the CLI's default).
    train_filter : keep only images with annotations when training (upstream's pose set).
    center_dtype : the precision of the sample's centre ``c`` in upstream's transform
        (``AugmentParams.center_dtype``).
    mean, std : the network input's normalisation for 0..1 pixels, as upstream applies it to
        the BGR image; None: COCO's (ddd: KITTI's).
    video : a sample is two frames of a video (tracking): the task needs
        :class:`~centertargets.tracking.TrackingDataset`, not ``CenterNetDataset``.
    dataset : ``"module:Class"`` of the task's torch dataset (``dataset_class``).
    fixture_check : ``"module:function"`` replaying the task's own reference fixture kinds
        (see :meth:`fixture_checker`), or None.
    """

    name: ClassVar[str]
    config_type: ClassVar[type]
    encoder_type: ClassVar[type]
    loss: ClassVar[str]
    decoder: ClassVar[str]
    decode_kinds: ClassVar[tuple[str, ...]] = ()
    specificity: ClassVar[int] = 0
    train_filter: ClassVar[bool] = False
    center_dtype: ClassVar[str] = "float32"
    mean: ClassVar[tuple[float, float, float] | None] = None      # None: COCO's
    std: ClassVar[tuple[float, float, float] | None] = None
    video: ClassVar[bool] = False
    dataset: ClassVar[str] = "centertargets.dataset:CenterNetDataset"
    fixture_check: ClassVar[str | None] = None

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (get, (self.name,))          # the registered instance in the receiving process

    # -- data -------------------------------------------------------------------------------------
    def fits(self, coco: "CocoDataset") -> bool:
        """Whether a COCO file carries what this task needs."""
        return True

    def config_for_coco(self, coco: "CocoDataset", output_size: tuple[int, int],
                        max_objs: int | None = None) -> Any:
        """A config fitting ``coco`` (classes, joints, flip pairs from the file)."""
        raise NotImplementedError

    def adapt(self, config: Any, coco: "CocoDataset") -> Any:
        """``config`` checked against a COCO file and completed from it (``CenterNetDataset``)."""
        if coco.num_classes > config.num_classes:
            raise ValueError(f"the COCO file has {coco.num_classes} categories: expected at most "
                             f"config.num_classes={config.num_classes}")
        return config

    def prepared(self, image: "ImageAnnotations", params: "AugmentParams",
                 output_size: tuple[int, int], config: Any) -> "Annotations":
        """A COCO image's checked arrays through a sample's flip and affine transform, in
        output-map pixels and of the kernels' types: what :meth:`Encoder.encode_prepared`
        takes."""
        raise NotImplementedError

    def sample_params(self, augment: Any, rng: np.random.Generator, width: int, height: int,
                      config: Any, keep_res_input: tuple[float, float] | None
                      ) -> "AugmentParams":
        """A sample's draws: upstream's CenterNet augmentation (``AugmentConfig.sample``),
        unless the task draws its own (ddd)."""
        return augment.sample(rng, width, height, keep_res_input)

    def item_meta(self, image: "ImageAnnotations", config: Any) -> dict[str, np.ndarray]:
        """Task-specific entries of an item's ``meta`` (ddd: the camera's ``calib``)."""
        return {}

    def dataset_class(self) -> type:
        """The task's dataset class (``CenterNetDataset``; tracking: ``TrackingDataset``)."""
        return _load(self.dataset)

    # -- report -----------------------------------------------------------------------------------
    def dataset_audit(self, ds: Any) -> dict[str, Any]:
        """Task-specific counts of ``centertargets audit`` over a whole dataset (tracking: what
        the videos give), added to the totals that :meth:`audit_rows` reads."""
        return {}

    def render(self, item: Mapping[str, Any], config: Any, coco: "CocoDataset",
               annotations: "Annotations | None" = None) -> np.ndarray:
        """A picture (RGB uint8) of one item's targets (``centertargets render``);
        ``annotations``: the sample's, in output pixels (joints it does not supervise are
        marked)."""
        from ..visualize import network_input_to_rgb, render_targets

        image = network_input_to_rgb(item["input"]) if "input" in item else None
        return render_targets(dict(item), config, image=image, skeleton=coco.skeleton,
                              joint_names=coco.keypoint_names or None,
                              keypoints=None if annotations is None else annotations.keypoints)

    def audit_rows(self, totals: Mapping[str, int]) -> list[tuple[str, int, str]]:
        """Task-specific rows of ``centertargets audit``: ``(label, count, "objects" |
        "keypoints" | "")``."""
        return []

    # -- upstream's fixtures (compat, compare) ----------------------------------------------------
    def config_from_meta(self, meta: Mapping[str, Any], common: dict[str, Any]) -> Any:
        """The config of a reference fixture (``common``: the options every task shares)."""
        raise NotImplementedError

    def fixture_keep_res(self, meta: Mapping[str, Any]) -> bool:
        """Whether a fixture's sample used upstream's ``keep_res`` input size (a [w, h] scale)."""
        return isinstance(meta["scale"], (list, tuple))

    def loss_fixture_meta(self, targets: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The sizes (and e.g. joints) a loss fixture's batch of targets implies: the meta
        keys :meth:`config_from_meta` reads beyond the options."""
        B, C, H, W = targets["hm"].shape
        return {"output_w": W, "output_h": H, "num_classes": C,
                "max_objs": targets["ind"].shape[1]}

    def fixture_classes(self, meta: Mapping[str, Any]) -> tuple[list[dict[str, Any]],
                                                               list[int] | None]:
        """``(categories, category_ids)`` of the one-image COCO file of a fixture's scene:
        by default the meta's ``category_ids`` (upstream's COCO map), in that order."""
        ids = [int(c) for c in meta["category_ids"]]
        return [{"id": c, "name": str(c)} for c in ids], ids

    def fixture_checker(self) -> Any:
        """The function (``fixture_check``, imported on request) that replays this task's own
        fixture kinds, or None: ``compare``'s shared scene, sample and loss checks apply.
        It takes ``(meta, arrays)`` and returns comparison steps: ``("arrays", expected,
        got, atol, rtol)`` or ``("loss", expected_stats, got_stats)``."""
        return _load(self.fixture_check) if self.fixture_check else None

    def decode_fixture(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                       ) -> tuple[Any, dict[str, np.ndarray]]:
        """``(decoder, head arrays)`` that replay a reference decoder fixture."""
        raise NotImplementedError

    # -- torch side ---------------------------------------------------------------------------------
    def loss_class(self) -> type:
        return _load(self.loss)

    def decoder_class(self) -> type:
        return _load(self.decoder)


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_UNITS: dict[str, TaskUnit] = {}


def register(unit: TaskUnit) -> TaskUnit:
    """Register a task unit under its ``name`` (once)."""
    if unit.name in _UNITS:
        raise ValueError(f"task {unit.name!r} is registered twice")
    _UNITS[unit.name] = unit
    config.UNITS[unit.name] = unit          # what BaseConfig.from_coco asks
    return unit


def names() -> tuple[str, ...]:
    """The registered tasks' names."""
    return tuple(_UNITS)


def get(name: str) -> TaskUnit:
    """The unit of task ``name``."""
    try:
        return _UNITS[name]
    except KeyError:
        raise ValueError(f"task {name!r}: expected one of {sorted(_UNITS)}") from None


def unit_of(config: Any) -> TaskUnit:
    """The unit of a config (by its ``task``)."""
    task = getattr(config, "task", None)
    if not isinstance(task, str) or task not in _UNITS:
        raise TypeError(f"config is {type(config).__name__}: expected the config of a task "
                        f"({', '.join(u.config_type.__name__ for u in _UNITS.values())})")
    return _UNITS[task]


def for_coco(coco: "CocoDataset") -> TaskUnit:
    """The most specific task a COCO file fits (multi_pose for a file with keypoints)."""
    return max((u for u in _UNITS.values() if u.fits(coco)), key=lambda u: u.specificity)


def decode_unit(kind: str) -> TaskUnit | None:
    """The unit answering reference decoder fixtures of ``kind``, or None."""
    for u in _UNITS.values():
        if kind in u.decode_kinds:
            return u
    return None
