"""Training and launching: the SOLO trainer and a multi-process launch for CPUs and GPUs."""
from .evaluation import SOLOCOCOEvaluator
from .launch import create_ddp_model, launch
from .trainer import SOLOTrainer, get_solo_cfg

__all__ = ["SOLOCOCOEvaluator", "SOLOTrainer", "create_ddp_model", "get_solo_cfg", "launch"]
