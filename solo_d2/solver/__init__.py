"""The optimizer: Detectron2's SGD or AdamW, with mmdet's gradient clipping over the whole
model as an option."""
from .build import build_solo_optimizer, clip_full_model_gradients

__all__ = ["build_solo_optimizer", "clip_full_model_gradients"]
