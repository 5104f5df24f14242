"""SOLO-family modeling: the SOLO and PanopticSOLO meta-architectures, heads, targets, losses
and post-processing."""
from .heads import (
    SOLO_HEAD_REGISTRY,
    DecoupledSOLOHead,
    DecoupledSOLOLightHead,
    SOLOHead,
    SOLOHeadBase,
    SOLOV2Head,
    build_solo_head,
)
from .meta_arch import SOLO
from .panoptic import PanopticSOLO
from .postprocess import InferenceSettings

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
