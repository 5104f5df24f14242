"""Training, evaluation and prediction: SOLOTrainer, SOLOPredictor, the COCO evaluator, and a
multi-process launch for CPUs and GPUs (spawned, torchrun, SLURM) that survives preemption
and dead processes."""
from .evaluation import SOLOCOCOEvaluator
from .launch import create_ddp_model, launch, launch_options
from .predictor import SOLOPredictor
from .trainer import SOLOTrainer, get_solo_cfg

__all__ = ["SOLOCOCOEvaluator", "SOLOPredictor", "SOLOTrainer", "create_ddp_model", "get_solo_cfg", "launch",
           "launch_options"]
