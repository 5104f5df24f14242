"""Export a SOLO-family model to ONNX with its whole post-processing.

The graph is traced (``torch.onnx.export(..., dynamo=False)``, as Detectron2's own
``tools/deploy/export_model.py`` traces) from :class:`~solo_d2.export.graph.SOLOExportModule`.
Height and width are dynamic, and so is the instance count K (0 included).
"""
import json
import logging
import os
import warnings
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .panoptic import export_module

__all__ = ["export_onnx", "export_from_config", "DEFAULT_OPSET", "MIN_OPSET"]

logger = logging.getLogger(__name__)

#: opset written by default: the highest the tracing exporter writes (ONNX Runtime >= 1.14
#: runs it)
DEFAULT_OPSET = 17
#: the graph needs ONNX Trilu (opset 14, Matrix NMS's upper triangle); earlier opsets are refused
MIN_OPSET = 14


def export_onnx(
    model: nn.Module,
    path: str,
    sample_image: Optional[Tensor] = None,
    *,
    opset: int = DEFAULT_OPSET,
    thing_classes: Optional[Sequence[str]] = None,
    input_format: str = "BGR",
) -> str:
    """Write ``model`` as an ONNX graph at ``path`` and return the path.

    Args:
        model: a SOLO-family model (``build_model`` of a solo_d2 config), weights loaded.
        sample_image: (C, H, W) uint8 or float image the graph is traced with; its dtype
            becomes the graph input's. The result does not depend on its content or size (the
            traced code has no data-dependent branches). Default: a 3 x 320 x 320 uint8 zeros.
        opset: ONNX opset, >= MIN_OPSET (14).
        thing_classes, input_format: written into the model's metadata (``thing_classes`` as
            JSON, ``input_format``) for runners.
    Inputs of the graph: ``image`` (C, H, W), any H and W. Outputs: ``masks`` (K, H, W) bool,
    ``scores`` (K,), ``classes`` (K,) int64, ``boxes`` (K, 4) XYXY; for a PanopticSOLO also
    ``sem_seg`` (S+1, H, W) logits, and the merge settings in the metadata
    (:mod:`solo_d2.export.panoptic`: the runner merges).
    """
    import onnx

    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: the SOLO graph needs opset >= {MIN_OPSET}")
    module, output_names, extra_meta = export_module(model)  # checks the model first
    device = model.pixel_mean.device
    if sample_image is None:
        sample_image = torch.zeros((3, 320, 320), dtype=torch.uint8)
    if sample_image.dim() != 3 or sample_image.shape[0] != model.pixel_mean.shape[0]:
        raise ValueError(
            f"sample_image must be (C, H, W) with C = {model.pixel_mean.shape[0]} channels, "
            f"got shape {tuple(sample_image.shape)}"
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    per_instance = {0: "instances"}
    dynamic_axes = {
        "image": {1: "height", 2: "width"},
        "masks": {0: "instances", 1: "height", 2: "width"},
        "scores": per_instance,
        "classes": per_instance,
        "boxes": per_instance,
        "sem_seg": {1: "height", 2: "width"},  # PanopticSOLO's stuff logits
    }
    dynamic_axes = {k: v for k, v in dynamic_axes.items() if k in ("image", *output_names)}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python int it records; the graph's sizes are dynamic
        # by construction and checked against PyTorch by the tests.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        # Notes about constant folding and about advanced indexing with negative indices
        # (the graph's indices are never negative).
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        torch.onnx.export(
            module,
            (sample_image.to(device),),
            path,
            dynamo=False,
            opset_version=opset,
            input_names=["image"],
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
        )
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    meta = {"input_format": input_format, "producer": "solo_d2", **extra_meta}
    if thing_classes is not None:
        meta["thing_classes"] = json.dumps(list(thing_classes))
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, path)
    logger.info(f"wrote {path} (opset {opset})")
    return path


def export_from_config(
    cfg,
    output_dir: str,
    sample_image: Optional[str] = None,
    *,
    opset: int = DEFAULT_OPSET,
    path: Optional[str] = None,
) -> str:
    """``tools/export_model.py`` as a function: build the model of ``cfg`` (a yaml config or
    a LazyConfig) on the CPU, load its weights (MODEL.WEIGHTS / ``train.init_checkpoint``,
    safely, as :class:`~solo_d2.engine.SOLOPredictor` does) and write
    ``output_dir/model.onnx``; returns its path.

    ``sample_image``: an image file to trace with, resized as the test loader resizes it
    (default: a blank square image at the test size; the graph does not depend on it).
    ``path``: the file to write instead of ``output_dir/model.onnx``.
    """
    import numpy as np

    from ..checkpoint.checkpointer import SOLOCheckpointer
    from ..data.image_io import read_image
    from ..data.transforms import augment_image
    from ..engine.configs import build_solo_model, config_weights, input_format, inference_augmentation

    # the graph does not depend on the device it is traced on
    model = build_solo_model(cfg, device="cpu").eval()
    weights = config_weights(cfg)
    if not weights:
        logger.warning("no weights (MODEL.WEIGHTS / train.init_checkpoint empty): exporting an "
                       "UNTRAINED model (random weights)")
    extra = SOLOCheckpointer(model).load(weights)
    fmt = input_format(cfg)
    if sample_image is not None:
        image = read_image(sample_image, format=fmt)
    else:
        image = np.zeros((640, 640, 3), dtype=np.uint8)
    image = augment_image(inference_augmentation(cfg), image)
    sample = torch.as_tensor(image.transpose(2, 0, 1).copy())
    return export_onnx(
        model,
        path or os.path.join(output_dir, "model.onnx"),
        sample,
        opset=opset,
        thing_classes=extra.get("thing_classes"),
        input_format=fmt,
    )
