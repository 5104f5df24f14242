"""``SOLOPredictor``: Detectron2's DefaultPredictor with the test loader's preprocessing, for a
yaml config or a LazyConfig.

Detectron2's DefaultPredictor always resizes with PIL; converted mmdet checkpoints are
evaluated with OpenCV's resize (``INPUT.RESIZE_BACKEND "cv2"``), so its predictions would
differ from evaluation. Here the preprocessing is the test loader's (the yaml config's
resize, or a LazyConfig's ``dataloader.test.mapper`` augmentations and image format),
weights load through :class:`~solo_d2.checkpoint.SOLOCheckpointer` (``.pkl`` files without
running code), and the class names a converted checkpoint carries are kept.
"""
import copy
from typing import List, Optional

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor

from ..checkpoint.checkpointer import SOLOCheckpointer
from ..data.transforms import augment_image
from .configs import (
    AnyConfig,
    build_solo_model,
    config_weights,
    dataset_names,
    inference_augmentation,
    input_format,
    is_lazy,
)

__all__ = ["SOLOPredictor"]


class SOLOPredictor(DefaultPredictor):
    """``predictor(bgr_image) -> {"instances": Instances}`` for one (H, W, 3) uint8 BGR image,
    preprocessed exactly as the test loader preprocesses it.

    Attributes:
        thing_classes: class names stored in the loaded checkpoint (converted mmdet
            checkpoints carry them), else None.
    """

    def __init__(self, cfg: AnyConfig):  # DefaultPredictor's, with the parts above changed
        self.cfg = copy.deepcopy(cfg) if is_lazy(cfg) else cfg.clone()
        self.model = build_solo_model(self.cfg)
        self.model.eval()
        tests = dataset_names(cfg, "test")
        if tests:
            self.metadata = MetadataCatalog.get(tests[0])
        extra = SOLOCheckpointer(self.model).load(config_weights(cfg))
        classes = extra.get("thing_classes")
        self.thing_classes: Optional[List[str]] = list(classes) if classes is not None else None
        self.aug = inference_augmentation(cfg)  # the test resize
        self.input_format = input_format(cfg)

    def __call__(self, original_image: np.ndarray) -> dict:
        """Predictions for one (H, W, 3) BGR image, at its size."""
        with torch.no_grad():
            if self.input_format == "RGB":
                original_image = original_image[:, :, ::-1]
            height, width = original_image.shape[:2]
            image = augment_image(self.aug, original_image)
            image = torch.as_tensor(image.astype("float32").transpose(2, 0, 1))
            return self.model([{"image": image, "height": height, "width": width}])[0]
