"""Evaluation of SOLO predictions with Detectron2's evaluators: COCO mask and box AP that
tolerates degenerate polygons and images the test loader had to skip."""
from .coco import SOLOCOCOEvaluator

__all__ = ["SOLOCOCOEvaluator"]
