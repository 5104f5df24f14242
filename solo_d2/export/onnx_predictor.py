"""``ONNXPredictor``: an exported SOLO graph run by ONNX Runtime or OpenVINO
(:mod:`.backends`), used as ``SOLOPredictor`` is.

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
from ..engine.configs import AnyConfig, input_format, inference_augmentation
from ..layers.postprocess import mask_boxes, resize_maps
from .backends import open_backend
from .panoptic import merge_outputs

__all__ = ["ONNXPredictor", "outputs_to_instances"]


def outputs_to_instances(out: Dict[str, np.ndarray], height: int, width: int) -> Instances:
    """The graph's outputs (masks at its input size) as ``Instances`` at (height, width): the
    0/1 masks resized bilinearly and thresholded at 0.5, their boxes recomputed."""
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
    return result


class ONNXPredictor:
    """``predictor(bgr_image) -> {"instances": Instances}`` for one (H, W, 3) uint8 BGR image,
    with the model exported by :func:`~solo_d2.export.export_onnx` (any precision) run in
    ``backend`` ("onnxruntime" or "openvino"; default: the fastest installed one for the
    file's precision, :func:`~solo_d2.export.backends.default_backend`) on ``threads``
    threads (default: every core). A PanopticSOLO graph also gives ``"sem_seg"`` and
    ``"panoptic_seg"``, as the model does.

    Attributes:
        thing_classes: class names stored in the graph's metadata, else None.
        backend: the :class:`~solo_d2.export.backends.Backend` that runs the graph.
        session: ONNX Runtime's ``InferenceSession`` (None with OpenVINO).
    """

    def __init__(
        self,
        onnx_path: str,
        cfg: AnyConfig,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        backend: Optional[str] = None,
        threads: Optional[int] = None,
    ):
        self.backend = open_backend(onnx_path, backend, threads, providers=providers)
        self.session = getattr(self.backend, "session", None)
        classes = self.backend.metadata.get("thing_classes")
        self.metadata: Dict[str, str] = dict(self.backend.metadata)
        self.thing_classes: Optional[List[str]] = json.loads(classes) if classes else None
        self.input_dtype = self.backend.input_dtype
        self.aug = inference_augmentation(cfg)  # the test resize
        self.input_format = input_format(cfg)

    def run(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """The graph on one (C, H, W) image at its input size: masks (K, H, W) bool, scores
        (K,), classes (K,) int64, boxes (K, 4)."""
        return self.backend.run(image)

    def __call__(self, original_image: np.ndarray) -> Dict[str, Instances]:
        if self.input_format == "RGB":
            original_image = original_image[:, :, ::-1]
        height, width = original_image.shape[:2]
        image = augment_image(self.aug, original_image)
        out = self.run(np.ascontiguousarray(image.transpose(2, 0, 1)))
        result = outputs_to_instances(out, height, width)
        if "sem_seg" not in out:
            return {"instances": result}
        # PanopticSOLO's graph: its stuff logits, merged here as the model merges
        panoptic = merge_outputs(result, torch.from_numpy(out["sem_seg"]), height, width,
                                 self.metadata)
        return {"instances": result, **(panoptic or {})}
