"""The training and test mapper: Detectron2's DatasetMapper with the SOLO resize backend and
solo_d2's image reader (16-bit images, errors that name the file)."""
import copy
from typing import Any, Dict

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .image_io import read_image
from .transforms import apply_resize_backend

__all__ = ["SOLODatasetMapper"]


class SOLODatasetMapper(DatasetMapper):
    """Detectron2's :class:`~detectron2.data.DatasetMapper` (same arguments, outputs and
    config keys, ``INPUT.CROP`` included), whose ResizeShortestEdge follows
    ``INPUT.RESIZE_BACKEND`` and whose images are read by :func:`~solo_d2.data.image_io.read_image`.

    Images without annotations (negatives, or crowd-only ones) come out in training as
    ``Instances`` with no objects; Detectron2 then sets no ``gt_masks`` and the model
    trains them as negatives.
    """

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        ret = super().from_config(cfg, is_train)
        ret["augmentations"] = apply_resize_backend(ret["augmentations"], cfg.INPUT.RESIZE_BACKEND)
        return ret

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        """As Detectron2's, without semantic segmentation and precomputed proposals (SOLO uses
        neither)."""
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict
