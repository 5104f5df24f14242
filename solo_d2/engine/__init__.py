"""Training, evaluation and prediction: SOLOTrainer (yaml configs), LazySOLOTrainer
(LazyConfigs), SOLOPredictor, the COCO evaluator, a multi-process launch for CPUs and GPUs
(spawned, torchrun, SLURM) that survives preemption and dead processes, and one way to load and
read either kind of config (``configs``)."""
from .configs import load_config, trainer_class
from .evaluation import SOLOCOCOEvaluator
from .launch import create_ddp_model, launch, launch_options
from .lazy_trainer import LazySOLOTrainer
from .predictor import SOLOPredictor
from .trainer import SOLOTrainer, get_solo_cfg

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
