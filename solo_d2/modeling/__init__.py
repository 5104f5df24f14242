"""SOLO-family modeling: the SOLO and PanopticSOLO meta-architectures and the heads, built from
the operations in solo_d2/layers (targets, losses, Matrix NMS)."""
from ..layers.postprocess import InferenceSettings
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
