"""How far an exported graph's answer is from PyTorch's on the same image: used by
``tools/export_model.py``, the export tests and the export benchmark."""
from dataclasses import dataclass
from typing import Dict

import numpy as np
import torch
from torch import nn

__all__ = ["ParityReport", "compare_outputs", "pytorch_outputs", "check_against_pytorch"]

_RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


@dataclass
class ParityReport:
    """PyTorch vs ONNX Runtime on one image."""

    count_pytorch: int
    count_onnx: int
    #: same classes in the same order (False when the counts differ)
    same_classes: bool
    #: max |score difference| over instances (nan when counts differ or both are 0)
    max_score_diff: float
    #: fraction of equal mask pixels over all instances (1.0 for no instance)
    pixel_agreement: float
    #: max |box coordinate difference| in pixels
    max_box_diff: float
    #: instances whose position differs only because their scores are within
    #: ``tie_tolerance`` of another instance's (the order of near-equal scores is float noise)
    near_tie_swaps: int = 0
    #: PyTorch instances with no ONNX Runtime instance of the same class, a score within
    #: ``tie_tolerance`` and >= 99 % equal mask pixels
    unmatched: int = 0
    #: what ran the exported graph
    runtime: str = "ONNX Runtime"

    def __str__(self) -> str:
        return (
            f"instances: PyTorch {self.count_pytorch}, {self.runtime} {self.count_onnx}; "
            f"same classes and order: {self.same_classes}; max score difference "
            f"{self.max_score_diff:.2e}; mask pixels equal: {100 * self.pixel_agreement:.4f} %; "
            f"max box difference {self.max_box_diff:.1f} px; near-tie swaps "
            f"{self.near_tie_swaps}, unmatched {self.unmatched}"
        )


def pytorch_outputs(model: nn.Module, image: torch.Tensor) -> Dict[str, np.ndarray]:
    """``model`` (eval mode) on one (C, H, W) image, with masks at the image's own size, as
    the graph's outputs: masks, scores, classes, boxes."""
    with torch.no_grad():
        inst = model([{"image": image}])[0]["instances"].to("cpu")
    return {
        "masks": inst.pred_masks.numpy(),
        "scores": inst.scores.numpy(),
        "classes": inst.pred_classes.numpy(),
        "boxes": inst.pred_boxes.tensor.numpy(),
    }


def _match(ref: Dict[str, np.ndarray], got: Dict[str, np.ndarray], tol: float):
    """(swapped, unmatched): each PyTorch instance is matched to an unused ONNX Runtime
    instance of the same class, a score within ``tol`` and >= 99 % equal mask pixels."""
    used = np.zeros(len(got["scores"]), dtype=bool)
    swapped = unmatched = 0
    for i in range(len(ref["scores"])):
        close = np.nonzero(
            ~used
            & (got["classes"] == ref["classes"][i])
            & (np.abs(got["scores"] - ref["scores"][i]) <= tol)
        )[0]
        agree = [(got["masks"][j] == ref["masks"][i]).mean() for j in close]
        if not agree or max(agree) < 0.99:
            unmatched += 1
            continue
        j = close[int(np.argmax(agree))]
        used[j] = True
        swapped += int(j != i)
    return swapped, unmatched


def compare_outputs(
    ref: Dict[str, np.ndarray], got: Dict[str, np.ndarray], tie_tolerance: float = 1e-4
) -> ParityReport:
    """``ref`` (PyTorch) vs ``got`` (ONNX Runtime), both as the graph's named outputs."""
    n_ref, n_got = len(ref["scores"]), len(got["scores"])
    same = n_ref == n_got
    both = same and n_ref > 0
    pixels = (ref["masks"] == got["masks"]).mean() if same and n_ref else (1.0 if same else 0.0)
    return ParityReport(
        count_pytorch=n_ref,
        count_onnx=n_got,
        same_classes=bool(same and np.array_equal(ref["classes"], got["classes"])),
        max_score_diff=float(np.abs(ref["scores"] - got["scores"]).max()) if both else float("nan"),
        pixel_agreement=float(pixels),
        max_box_diff=float(np.abs(ref["boxes"] - got["boxes"]).max()) if both else 0.0,
        **dict(zip(("near_tie_swaps", "unmatched"), _match(ref, got, tie_tolerance))),
    )


def check_against_pytorch(cfg, onnx_path: str, image_path: str) -> ParityReport:
    """The model of ``cfg`` (a yaml config or a LazyConfig; weights from MODEL.WEIGHTS /
    ``train.init_checkpoint``) in PyTorch vs the graph at
    ``onnx_path`` in its default runtime (:class:`~solo_d2.export.ONNXPredictor`), on
    ``image_path`` resized as the test loader resizes it."""
    from ..checkpoint.checkpointer import SOLOCheckpointer
    from ..data.image_io import read_image
    from ..data.transforms import augment_image
    from ..engine.configs import build_solo_model, config_weights, input_format
    from .onnx_predictor import ONNXPredictor

    model = build_solo_model(cfg, device="cpu").eval()
    SOLOCheckpointer(model).load(config_weights(cfg))
    runner = ONNXPredictor(onnx_path, cfg)
    image = read_image(image_path, format=input_format(cfg))
    image = augment_image(runner.aug, image)
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    report = compare_outputs(pytorch_outputs(model, torch.as_tensor(chw)), runner.run(chw))
    report.runtime = _RUNTIME_NAMES[runner.backend.name]
    if runner.backend.precision != "fp32":
        report.runtime += f" ({runner.backend.precision})"
    return report
