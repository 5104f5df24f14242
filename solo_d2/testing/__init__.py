"""Helpers that tests and tools share (as Detectron2 keeps ``detectron2/utils/testing.py``):
independent reference paths for the heads, never used by the model itself."""
from .full_projection import full_mask_logits, solov2_kernel_preds

__all__ = ["full_mask_logits", "solov2_kernel_preds"]
