"""centertargets: fast, exact CenterNet training targets.

Import never pulls in torch; the torch side lives in :mod:`losses` and in
:mod:`centertargets.decode` (imported lazily).
"""

from .config import COCO_FLIP_IDX, CtdetConfig, MultiPoseConfig, RadiusConfig
from .encoders import CtdetEncoder, EncodeReport, MultiPoseEncoder, make_encoder
from .spec import HeadSpec, TargetSpec, head_spec, target_spec

__version__ = "0.1.0"

__all__ = [
    "COCO_FLIP_IDX", "CtdetConfig", "MultiPoseConfig", "RadiusConfig",
    "CtdetEncoder", "MultiPoseEncoder", "EncodeReport", "make_encoder",
    "TargetSpec", "target_spec", "HeadSpec", "head_spec", "__version__",
]
