"""SOLO-family heads: the contract and template (base.py) and one file per family."""
from .base import SOLO_HEAD_REGISTRY, SOLOHeadBase, build_solo_head, resize_level_features
from .decoupled import DecoupledSOLOHead, DecoupledSOLOLightHead
from .solo import SOLOHead
from .solov2 import MaskFeatModule, SOLOV2Head

__all__ = [
    "SOLO_HEAD_REGISTRY",
    "SOLOHeadBase",
    "build_solo_head",
    "resize_level_features",
    "SOLOHead",
    "DecoupledSOLOHead",
    "DecoupledSOLOLightHead",
    "SOLOV2Head",
    "MaskFeatModule",
]
