"""SOLO-family meta-architectures: SOLO and PanopticSOLO (backbone, levels, losses, inference)
around a head from solo_d2/heads, built from the operations in solo_d2/layers."""
# the heads and InferenceSettings stay importable from here: LazyConfigs saved before they moved
# to heads/ and layers/ name them ``solo_d2.modeling.<Class>`` (tests/lazy/test_saved_targets.py)
from ..heads import (
    SOLO_HEAD_REGISTRY,
    DecoupledSOLOHead,
    DecoupledSOLOLightHead,
    SOLOHead,
    SOLOHeadBase,
    SOLOV2Head,
    build_solo_head,
)
from ..layers.postprocess import InferenceSettings
from .meta_arch import SOLO
from .panoptic import PanopticSOLO

__all__ = [
    "SOLO",
    "PanopticSOLO",
    "SOLO_HEAD_REGISTRY",
    "SOLOHeadBase",
    "build_solo_head",
    "InferenceSettings",
    "SOLOHead",
    "DecoupledSOLOHead",
    "DecoupledSOLOLightHead",
    "SOLOV2Head",
]
