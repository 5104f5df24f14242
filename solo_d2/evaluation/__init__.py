"""Evaluation with Detectron2's evaluators: COCO mask and box AP that tolerates degenerate
polygons and skipped images, and panoptic PQ (panopticapi or torchmetrics) with stuff mIoU."""
from .coco import SOLOCOCOEvaluator
from .panoptic import build_panoptic_evaluator

__all__ = ["SOLOCOCOEvaluator", "build_panoptic_evaluator"]
