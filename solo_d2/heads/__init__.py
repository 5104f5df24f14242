"""SOLO-family heads: category and mask branches over the FPN levels; the contract, template and
registry (base.py) and one file per family (SOLO, Decoupled SOLO, SOLOv2)."""
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
