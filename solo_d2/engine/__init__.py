"""Training, evaluation and prediction: SOLOTrainer (yaml configs), LazySOLOTrainer
(LazyConfigs), SOLOPredictor, and one way to load and read either kind of config (``configs``)."""
from ..evaluation import SOLOCOCOEvaluator
from ..launch import create_ddp_model, launch
from .configs import get_solo_cfg, launch_options, load_config
from .lazy_trainer import LazySOLOTrainer, trainer_class
from .predictor import SOLOPredictor
from .trainer import SOLOTrainer

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
