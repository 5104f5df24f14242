"""solo_d2: SOLO, Decoupled SOLO and SOLOv2 as a Detectron2 project.

Importing this package registers the ``SOLO`` meta-architecture, the SOLO heads and the
built-in datasets with Detectron2's registries.
"""
from .config import add_solo_config
from .modeling import SOLO, SOLO_HEAD_REGISTRY, PanopticSOLO
from . import data  # noqa: F401  registers the built-in datasets
from . import model_zoo
from .engine import LazySOLOTrainer, SOLOPredictor, SOLOTrainer, get_solo_cfg, launch, load_config

__all__ = [
    "add_solo_config",
    "SOLO",
    "SOLO_HEAD_REGISTRY",
    "PanopticSOLO",
    "LazySOLOTrainer",
    "SOLOPredictor",
    "SOLOTrainer",
    "get_solo_cfg",
    "launch",
    "load_config",
    "model_zoo",
]
__version__ = "0.1.0"
