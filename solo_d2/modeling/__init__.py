"""SOLO-family modeling: meta-architecture, heads, targets, losses and post-processing."""
from .heads import SOLO_HEAD_REGISTRY, DecoupledSOLOHead, DecoupledSOLOLightHead, SOLOHead, build_solo_head
from .meta_arch import SOLO
from .solov2_head import SOLOV2Head

__all__ = [
    "SOLO",
    "SOLO_HEAD_REGISTRY",
    "build_solo_head",
    "SOLOHead",
    "DecoupledSOLOHead",
    "DecoupledSOLOLightHead",
    "SOLOV2Head",
]
