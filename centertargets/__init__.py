"""centertargets: fast, exact CenterNet training targets.

Import never pulls in torch; the torch side lives in :mod:`losses` and in
:mod:`centertargets.decode` (imported lazily).
"""

try:
    import cv2  # noqa: F401
    cv2.warpAffine  # a half-removed OpenCV leaves a namespace package without its functions
except (ImportError, AttributeError) as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "centertargets needs OpenCV, and 'import cv2' fails: when both opencv-python and "
        "opencv-python-headless were installed and one was removed, the cv2 folder they share "
        "is left broken. Fix: pip uninstall -y opencv-python opencv-python-headless && pip "
        "install opencv-python-headless") from exc

from .augment import AugmentConfig, AugmentParams, ColorParams
from .coco import COCO_CATEGORY_IDS, COCO_FLIP_IDX, CocoDataset
from .config import BaseConfig, RadiusConfig
from .dataset import CenterNetDataset
from .encoders import Annotations, ClassIndexError, EncodeReport, Encoder
from .spec import HeadSpec, TargetSpec, head_spec, target_spec
from .tasks import (CtdetConfig, CtdetEncoder, DddConfig, DddEncoder, ExdetConfig, ExdetEncoder,
                    MultiPoseConfig, MultiPoseEncoder, TrackingConfig, TrackingEncoder,
                    TrackParams, make_encoder, sample_annotations)
from .tracker import Tracker
from .tracking import TrackingDataset

__version__ = "0.1.0"

__all__ = [
    "COCO_FLIP_IDX", "COCO_CATEGORY_IDS", "CtdetConfig", "MultiPoseConfig", "RadiusConfig",
    "AugmentConfig", "AugmentParams", "ColorParams", "CenterNetDataset", "CocoDataset",
    "CtdetEncoder", "MultiPoseEncoder", "EncodeReport", "Annotations", "make_encoder",
    "BaseConfig", "Encoder", "ClassIndexError", "sample_annotations", "ExdetConfig",
    "ExdetEncoder", "DddConfig", "DddEncoder", "TrackingConfig", "TrackingEncoder",
    "TrackParams", "TrackingDataset", "Tracker",
    "TargetSpec", "target_spec", "HeadSpec", "head_spec", "__version__",
]
