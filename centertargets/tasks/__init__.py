"""The task registry: each task is one module here, registered once (this file lists them).

A task unit (:class:`~centertargets.tasks.base.TaskUnit`) holds everything
that differs between tasks: config, target and head specs, encoder and
kernel, how a COCO image's annotations become its arrays (and how a flip
changes them), and the names of its loss and decoder.  Shared code asks
:func:`unit_of` / :func:`get` and never tests a task's name.  Adding a task:
``docs/architecture.md``, "Adding a task".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .base import TaskUnit, decode_unit, for_coco, get, names, register, unit_of
# The tasks.  Importing a module registers its unit; this is the only list of them.
from . import ctdet, ddd, exdet, multi_pose, tracking  # noqa: E402,F401  (registration)
from .ctdet import CtdetConfig, CtdetEncoder
from .ddd import DddConfig, DddEncoder
from .exdet import ExdetConfig, ExdetEncoder
from .multi_pose import MultiPoseConfig, MultiPoseEncoder
from .tracking import TrackingConfig, TrackingEncoder, TrackParams

if TYPE_CHECKING:  # pragma: no cover
    from ..augment import AugmentParams
    from ..coco import ImageAnnotations
    from ..encoders import Annotations, Encoder

__all__ = ["TaskUnit", "register", "get", "unit_of", "names", "for_coco", "decode_unit",
           "make_encoder", "sample_annotations", "CtdetConfig", "CtdetEncoder",
           "MultiPoseConfig", "MultiPoseEncoder", "ExdetConfig", "ExdetEncoder", "DddConfig",
           "DddEncoder", "TrackingConfig", "TrackingEncoder", "TrackParams"]


def make_encoder(config: Any) -> "Encoder":
    """The encoder of ``config``'s task."""
    return unit_of(config).encoder_type(config)


def sample_annotations(image: "ImageAnnotations", params: "AugmentParams",
                       output_size: Sequence[int], config: Any) -> "Annotations":
    """A COCO image's annotations through a sample's flip and affine transform, for any encoder.

    ``image``: a :class:`~centertargets.coco.ImageAnnotations` (image pixels);
    ``config``: the encoder's config (the task decides what is mapped: boxes,
    and joints with their left/right swap for pose).  The result goes to
    ``encoder.encode_annotations`` (which checks it) or, for a loaded COCO
    file's checked arrays, ``encoder.encode_prepared``.
    """
    out = (int(output_size[0]), int(output_size[1]))
    return unit_of(config).prepared(image, params, out, config)
