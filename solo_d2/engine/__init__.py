"""Training, evaluation and prediction: SOLOTrainer (yaml configs and LazyConfigs alike),
SOLOPredictor, panoptic drawing, and one way to load and read either kind of config."""
from ..evaluation import SOLOCOCOEvaluator
from ..launch import create_ddp_model, launch
from .configs import get_solo_cfg, launch_options, load_config
from .predictor import SOLOPredictor
from .trainer import LazySOLOTrainer, SOLOTrainer, trainer_class

__all__ = [
    "LazySOLOTrainer",
    "SOLOCOCOEvaluator",
    "SOLOPredictor",
    "SOLOTrainer",
    "create_ddp_model",
    "get_solo_cfg",
    "launch",
    "launch_options",
    "load_config",
    "trainer_class",
]
