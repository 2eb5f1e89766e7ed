"""centertargets: fast, exact CenterNet training targets.

Import never pulls in torch; the torch side lives in :mod:`losses` and in
:mod:`centertargets.decode` (imported lazily).
"""

from .augment import AugmentConfig, AugmentParams, ColorParams
from .coco import COCO_CATEGORY_IDS, COCO_FLIP_IDX, CocoDataset
from .config import CtdetConfig, MultiPoseConfig, RadiusConfig
from .dataset import CenterNetDataset
from .encoders import Annotations, CtdetEncoder, EncodeReport, MultiPoseEncoder, make_encoder
from .spec import HeadSpec, TargetSpec, head_spec, target_spec

__version__ = "0.1.0"

__all__ = [
    "COCO_FLIP_IDX", "COCO_CATEGORY_IDS", "CtdetConfig", "MultiPoseConfig", "RadiusConfig",
    "AugmentConfig", "AugmentParams", "ColorParams", "CenterNetDataset", "CocoDataset",
    "CtdetEncoder", "MultiPoseEncoder", "EncodeReport", "Annotations", "make_encoder",
    "TargetSpec", "target_spec", "HeadSpec", "head_spec", "__version__",
]
