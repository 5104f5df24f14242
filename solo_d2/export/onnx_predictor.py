"""``ONNXPredictor``: an exported SOLO graph run by ONNX Runtime, used as ``SOLOPredictor`` is.

The image is resized as the test loader resizes it (``INPUT.MIN_SIZE_TEST``,
``INPUT.MAX_SIZE_TEST``, ``INPUT.RESIZE_BACKEND``, or a LazyConfig's test mapper's
augmentations); the graph returns masks at that size, and
they are resized back to the original image bilinearly (as 0/1 maps, thresholded at 0.5).
PyTorch resizes the mask probabilities instead, so masks at the original size can differ
from ``SOLOPredictor``'s along their borders; at the graph's own input size they are the same.
"""
import json
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from detectron2.structures import Boxes, Instances

from ..data.transforms import augment_image
from ..engine.configs import AnyConfig, input_format, test_augmentation
from ..modeling.postprocess import mask_boxes, resize_maps
from .panoptic import merge_outputs

__all__ = ["ONNXPredictor"]

_NUMPY_TYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}


class ONNXPredictor:
    """``predictor(bgr_image) -> {"instances": Instances}`` for one (H, W, 3) uint8 BGR image,
    with the model exported by :func:`~solo_d2.export.export_onnx` run in ONNX Runtime; a
    PanopticSOLO graph also gives ``"sem_seg"`` and ``"panoptic_seg"``, as the model does.

    Attributes:
        thing_classes: class names stored in the graph's metadata, else None.
        session: the ``onnxruntime.InferenceSession``.
    """

    def __init__(
        self,
        onnx_path: str,
        cfg: AnyConfig,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ):
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx_path, providers=list(providers))
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata: Dict[str, str] = dict(meta)
        classes = meta.get("thing_classes")
        self.thing_classes: Optional[List[str]] = json.loads(classes) if classes else None
        image_input = self.session.get_inputs()[0]
        if image_input.type not in _NUMPY_TYPES:
            raise ValueError(
                f"{onnx_path}: the graph's input is {image_input.type}; a solo_d2 graph takes "
                "a uint8 or float image"
            )
        self.input_name = image_input.name
        self.input_dtype = _NUMPY_TYPES[image_input.type]
        self.aug = test_augmentation(cfg)  # the test resize
        self.input_format = input_format(cfg)

    def run(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """The graph on one (C, H, W) image at its input size: masks (K, H, W) bool, scores
        (K,), classes (K,) int64, boxes (K, 4)."""
        names = [o.name for o in self.session.get_outputs()]
        outputs = self.session.run(None, {self.input_name: image.astype(self.input_dtype)})
        return dict(zip(names, outputs))

    def __call__(self, original_image: np.ndarray) -> Dict[str, Instances]:
        if self.input_format == "RGB":
            original_image = original_image[:, :, ::-1]
        height, width = original_image.shape[:2]
        image = augment_image(self.aug, original_image)
        out = self.run(np.ascontiguousarray(image.transpose(2, 0, 1)))
        masks = torch.from_numpy(out["masks"])
        boxes = torch.from_numpy(out["boxes"])
        if masks.shape[-2:] != (height, width):
            masks = resize_maps(masks.float(), (height, width)) > 0.5
            boxes = mask_boxes(masks)
        result = Instances((height, width))
        result.pred_masks = masks
        result.pred_boxes = Boxes(boxes)
        result.scores = torch.from_numpy(out["scores"])
        result.pred_classes = torch.from_numpy(out["classes"])
        if "sem_seg" not in out:
            return {"instances": result}
        # PanopticSOLO's graph: its stuff logits, merged here as the model merges
        panoptic = merge_outputs(result, torch.from_numpy(out["sem_seg"]), height, width,
                                 self.metadata)
        return {"instances": result, **(panoptic or {})}
