"""The panoptic training and test mapper: instance masks and the semantic target of an image,
from its COCO panoptic PNG or from Detectron2's separated format."""
import copy
from typing import Any, Dict, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Instances

from .bad_files import BadSampleError
from .image_io import read_image
from .mapper import SOLODatasetMapper, _check_annotation
from .panoptic import PanopticLabels, panoptic_targets, rgb_to_id

__all__ = ["PanopticDatasetMapper"]


class PanopticDatasetMapper(SOLODatasetMapper):
    """:class:`~solo_d2.data.SOLODatasetMapper` (same augmentations, image reading and
    errors) that also gives a training sample its ``"sem_seg"`` (H, W) int64 target, as
    Detectron2's DatasetMapper does for Panoptic FPN. A record is either

    * COCO panoptic (``pan_seg_file_name`` + ``segments_info``, as Detectron2's
      ``load_coco_panoptic_json`` and solo_d2's panoptic datasets give): the id-coded PNG is
      augmented with the image (nearest), then the things' masks become ``instances``
      (``gt_masks`` as BitMasks, ``gt_boxes`` their tight boxes, ``gt_classes``) and
      :func:`~solo_d2.data.panoptic.panoptic_targets` makes the semantic map; or
    * Detectron2's separated format (``annotations`` + ``sem_seg_file_name``).

    A panoptic PNG that cannot be read raises :class:`~solo_d2.data.ImageReadError`; one of
    another size than the image, ids missing from ``segments_info`` or unknown categories
    raise :class:`~solo_d2.data.bad_files.BadSampleError` naming the file (the trainer skips
    and counts both).
    """

    @configurable
    def __init__(self, is_train: bool = True, *, labels: Optional[PanopticLabels] = None,
                 ignore_value: int = 255, **kwargs):
        """
        Args:
            labels: things and stuff of the training data (:class:`PanopticLabels`); needed in
                training.
            ignore_value: semantic label of unlabeled pixels (MODEL.SEM_SEG_HEAD.IGNORE_VALUE).
            kwargs: Detectron2's DatasetMapper arguments.
        """
        super().__init__(is_train, **kwargs)
        if is_train and labels is None:
            raise ValueError("PanopticDatasetMapper needs labels (PanopticLabels) in training")
        self.labels = labels
        self.ignore_value = ignore_value

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        ret = super().from_config(cfg, is_train)
        ret["labels"] = PanopticLabels.from_datasets(cfg.DATASETS.TRAIN) if is_train else None
        ret["ignore_value"] = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
        return ret

    def _read_target(self, d: Dict[str, Any], image: np.ndarray) -> np.ndarray:
        """The record's id map (COCO panoptic) or semantic map (separated), at the image size."""
        name = d["file_name"]
        if "pan_seg_file_name" in d and "segments_info" in d:
            # float32 holds every 24-bit id exactly and goes through every transform (nearest)
            seg = rgb_to_id(read_image(d["pan_seg_file_name"], format="RGB")).astype(np.float32)
            what = d["pan_seg_file_name"]
        elif "sem_seg_file_name" in d:
            seg = read_image(d["sem_seg_file_name"], format="L")[:, :, 0]
            what = d["sem_seg_file_name"]
        else:
            raise BadSampleError(
                f"{name}: a panoptic training record needs pan_seg_file_name and segments_info "
                "(COCO panoptic) or sem_seg_file_name and annotations (Detectron2's separated "
                "format)"
            )
        if seg.shape != image.shape[:2]:
            raise BadSampleError(f"{what}: {seg.shape[1]}x{seg.shape[0]} but its image {name} "
                                 f"is {image.shape[1]}x{image.shape[0]}")
        return seg

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        if not self.is_train:
            d = super().__call__(dataset_dict)
            d.pop("segments_info", None)
            return d
        d = copy.deepcopy(dataset_dict)
        name = d["file_name"]
        image = read_image(name, format=self.image_format)
        try:
            utils.check_image_size(d, image)
        except utils.SizeMismatchError as e:
            raise BadSampleError(f"{name}: {e}") from None
        aug_input = T.AugInput(image, sem_seg=self._read_target(d, image))
        transforms = self.augmentations(aug_input)
        image, seg = aug_input.image, aug_input.sem_seg
        image_shape = image.shape[:2]
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if "segments_info" in d and "pan_seg_file_name" in d:
            masks, classes, sem = panoptic_targets(seg.astype(np.int64), d.pop("segments_info"),
                                                   self.labels,
                                                   self.ignore_value, d.pop("pan_seg_file_name"))
            instances = Instances(image_shape)
            instances.gt_masks = BitMasks(torch.from_numpy(masks))
            instances.gt_boxes = instances.gt_masks.get_bounding_boxes()
            instances.gt_classes = torch.from_numpy(classes)
            d["instances"] = instances
        else:  # separated: instance annotations + stuff PNG (things 0, stuff 1..S)
            sem = seg
            d.pop("sem_seg_file_name")
            for ann in d.get("annotations", []):
                _check_annotation(ann, name, d)
            d.setdefault("annotations", [])
            try:
                self._transform_annotations(d, transforms, image_shape)
            except Exception as e:  # Detectron2's conversion: ValueError, TypeError, ...
                raise BadSampleError(
                    f"an annotation of {name} cannot become a mask: {type(e).__name__}: {e}"
                ) from e
        d["sem_seg"] = torch.as_tensor(np.ascontiguousarray(sem), dtype=torch.long)
        return d
