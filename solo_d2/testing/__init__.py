"""Helpers that tests and tools share (as Detectron2 keeps ``detectron2/utils/testing.py``),
never used by the model itself: independent reference paths for the heads (here), and
:mod:`.mmdet_reference`, the mmdet 3.3.0 reference harness (imported on its own: it needs
mmdet only when its functions run)."""
from .full_projection import full_mask_logits, solov2_kernel_preds

__all__ = ["full_mask_logits", "solov2_kernel_preds"]
