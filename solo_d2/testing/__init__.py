"""Helpers that tests and tools share, never used by the model itself (as Detectron2 keeps
``detectron2/utils/testing.py``): independent reference paths for the heads.

:mod:`.mmdet_reference` is the mmdet 3.3.0 reference harness (imported on its own: it needs
mmdet only when its functions run).
"""
from .full_projection import full_mask_logits, solov2_kernel_preds

__all__ = ["full_mask_logits", "solov2_kernel_preds"]
