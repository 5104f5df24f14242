"""``SOLOPredictor``: Detectron2's DefaultPredictor with the test loader's preprocessing.

Detectron2's DefaultPredictor always resizes with PIL; converted mmdet checkpoints are
evaluated with OpenCV's resize (``INPUT.RESIZE_BACKEND "cv2"``), so its predictions would
differ from evaluation. Here the resize is the one ``SOLOTrainer.build_test_loader`` applies,
weights load through :class:`~solo_d2.checkpoint.SOLOCheckpointer` (``.pkl`` files without
running code), and the class names a converted checkpoint carries are kept.
"""
from typing import List, Optional

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model

from ..checkpoint.checkpointer import SOLOCheckpointer
from ..data.transforms import build_solo_augmentation

__all__ = ["SOLOPredictor"]


class SOLOPredictor(DefaultPredictor):
    """``predictor(bgr_image) -> {"instances": Instances}`` for one (H, W, 3) uint8 BGR image,
    preprocessed exactly as the test loader preprocesses it.

    Attributes:
        thing_classes: class names stored in the loaded checkpoint (converted mmdet
            checkpoints carry them), else None.
    """

    def __init__(self, cfg: CfgNode):  # DefaultPredictor's, with the parts above changed
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg)
        self.model.eval()
        if len(cfg.DATASETS.TEST):
            self.metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0])
        extra = SOLOCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        classes = extra.get("thing_classes")
        self.thing_classes: Optional[List[str]] = list(classes) if classes is not None else None
        (self.aug,) = build_solo_augmentation(cfg, is_train=False)  # the test resize alone
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be 'RGB' or 'BGR', got {self.input_format!r}")
