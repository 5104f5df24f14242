"""The training and test mapper: Detectron2's DatasetMapper with the SOLO resize backend,
solo_d2's image reader (16-bit images, errors that name the file), and annotations checked
before they are rasterised."""
import copy
from typing import Any, Dict

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .bad_files import BadSampleError
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

    A file that cannot be read raises :class:`~solo_d2.data.ImageReadError`; an image whose
    size differs from its record, or an annotation that cannot become a mask, raises
    :class:`~solo_d2.data.bad_files.BadSampleError` naming the file (the trainer skips and
    counts both: :mod:`solo_d2.data.bad_files`). Polygon points and boxes must be finite and
    lie within one image size of the image: pycocotools rasterises a NaN or huge coordinate
    by allocating without bound (measured: killed for memory), and Detectron2 would drop a
    NaN box without a word.
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
        name = dataset_dict["file_name"]
        image = read_image(name, format=self.image_format)
        try:
            utils.check_image_size(dataset_dict, image)
        except utils.SizeMismatchError as e:
            raise BadSampleError(f"{name}: {e}") from None
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            for ann in dataset_dict["annotations"]:
                _check_annotation(ann, name, dataset_dict)
            try:
                self._transform_annotations(dataset_dict, transforms, image_shape)
            except Exception as e:  # Detectron2's conversion: ValueError, TypeError, ...
                raise BadSampleError(
                    f"an annotation of {name} cannot become a mask: {type(e).__name__}: {e}"
                ) from e
        return dataset_dict


def _check_annotation(ann: Dict[str, Any], name: str, record: Dict[str, Any]) -> None:
    """Finite polygon points and box, polygons within one image size of the image (see the
    class)."""
    if ann.get("iscrowd", 0):
        return  # crowd regions are not trained
    h, w = record.get("height"), record.get("width")
    ident = f"annotation {ann.get('id', '(no id)')} of {name}"
    fields = []
    segm = ann.get("segmentation")
    if isinstance(segm, list):
        fields += [("segmentation", poly) for poly in segm]
    if ann.get("bbox") is not None:
        fields.append(("bbox", ann["bbox"]))
    for field, coords in fields:
        try:
            values = np.asarray(coords, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise BadSampleError(f"{ident}: {field} must be numbers, got {str(coords)[:60]}") from None
        if not np.isfinite(values).all():
            raise BadSampleError(f"{ident}: {field} has non-finite coordinates "
                                 f"({values[~np.isfinite(values)][0]})")
        if h and w and field == "segmentation" and len(values) >= 2:
            xs, ys = values[0::2], values[1::2]
            if xs.min() < -w or xs.max() > 2 * w or ys.min() < -h or ys.max() > 2 * h:
                raise BadSampleError(
                    f"{ident}: polygon points reach x {xs.min():g}..{xs.max():g}, y "
                    f"{ys.min():g}..{ys.max():g}, more than one image size outside the "
                    f"{w}x{h} image")
