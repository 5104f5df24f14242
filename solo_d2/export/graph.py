"""The exported computation: one image in, final instances out, as a module ONNX can trace.

``SOLOExportModule`` runs exactly what :class:`~solo_d2.modeling.SOLO` runs at inference
(``forward_head`` then ``predict_image``: the same functions, not a copy), for a batch of one
image whose masks are returned at the image's own size.
"""
from typing import Tuple

from torch import Tensor, nn

from ..layers.blocks import DeformConv
from ..modeling import SOLO

__all__ = ["SOLOExportModule", "check_exportable", "OUTPUT_NAMES"]

#: the graph's outputs, in order
OUTPUT_NAMES = ("masks", "scores", "classes", "boxes")


def check_exportable(model: nn.Module) -> None:
    """Raise a ValueError naming what stops ``model`` from exporting to ONNX."""
    if not isinstance(model, SOLO):
        raise ValueError(f"ONNX export takes a SOLO-family model, got {type(model).__name__}")
    if any(isinstance(m, DeformConv) for m in model.modules()):
        raise ValueError(
            "models with deformable convolutions (MODEL.SOLO.DCN_TYPE or "
            "MODEL.SOLO.MASK_FEAT.DCN_TYPE set) do not export: torchvision's deform_conv2d has "
            "no ONNX form that ONNX Runtime's CPU provider runs"
        )


class SOLOExportModule(nn.Module):
    """``forward(image) -> (masks, scores, classes, boxes)`` for one image.

    Input: ``image`` (C, H, W), uint8 or float, in the model's INPUT.FORMAT channel order and
    before normalisation, as Detectron2 models take it; any H and W.
    Outputs (K >= 0 instances, by decreasing score): masks (K, H, W) bool, scores (K,) float,
    classes (K,) int64, boxes (K, 4) float XYXY (the tight boxes of the masks).
    """

    def __init__(self, model: SOLO):
        super().__init__()
        check_exportable(model)
        self.model = model
        self.eval()

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        model = self.model
        images, cls_logits, mask_inputs = model.forward_head([{"image": image.float()}])
        probs = [p[0] for p in model.category_probs(cls_logits)]
        return model.predict_image(probs, mask_inputs, 0, images.image_sizes[0], None)
