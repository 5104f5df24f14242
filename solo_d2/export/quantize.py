"""int8 quantization of an exported SOLO graph: its convolutions, nothing else.

ONNX Runtime's static quantization (``quantize_static``) writes QDQ pairs
(QuantizeLinear -> DequantizeLinear) around the quantized convolutions: weights int8 per
output channel (symmetric), activations uint8 per tensor, ranges calibrated (min/max) on the
user's images; a convolution's output stays fp32 (the next convolution quantizes its own
input). The file keeps the fp32 graph's input, outputs, names, dtypes and dynamic
sizes; ONNX Runtime and OpenVINO both read it (OpenVINO fuses each QDQ pair into an int8
convolution on the CPU's VNNI / AMX units).

What is quantized (:func:`quantizable_convs`): every ``Conv`` node of the backbone, FPN and
head (node names under ``/backbone/`` and ``/head/``) whose weight is a constant of the file.
What stays fp32: normalisation and padding, GroupNorm, ReLU, the resizes, the category
sigmoid and point NMS, the dynamic parts computed from candidates (SOLOv2's kernel conv
evaluated at the candidate cells and its dynamic mask convolution, both matrix products of
the graph; vanilla SOLO's and Decoupled SOLO's mask projections of the candidate cells),
mask scoring, Matrix NMS, the masks' upsampling and thresholding: every op that is not a
convolution, and the convolutions whose weights the graph computes.
"""
import json
import logging
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from .precision import PRECISION_KEY, QUANTIZED_KEY

__all__ = ["NETWORK_SCOPES", "quantizable_convs", "quantize_int8"]

logger = logging.getLogger(__name__)

#: node-name prefixes of the network (the module scopes torch.onnx records); the rest of the
#: graph (names without a module scope) is pre- and post-processing
NETWORK_SCOPES = ("/backbone/", "/head/")


def _resolve_constant_identities(model) -> int:
    """Inputs that name an ``Identity`` of a constant read the constant itself, in place;
    returns how many were rewired. (torch.onnx writes one initializer for equal parameters,
    e.g. FPN biases that are all zero, and Identity nodes for the others; a quantizer only
    folds a bias it sees as a constant.)"""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias = {n.output[0]: n.input[0] for n in graph.node
             if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs}
    rewired = 0
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
                rewired += 1
    dead = [n for n in graph.node if n.op_type == "Identity" and n.output[0] in alias]
    for node in dead:
        graph.node.remove(node)
    return rewired


def _quiet_preprocess_advice(record: logging.LogRecord) -> bool:
    """Drops ONNX Runtime's advice to run its pre-processing script (its shape inference and
    graph optimisations do not apply to what is quantized here: convolutions whose batch
    norms torch.onnx already folded)."""
    return "pre-processing" not in record.getMessage()


def quantizable_convs(model) -> List[str]:
    """Names of the ``Conv`` nodes of backbone, FPN and head with constant weights, in graph
    order (see the module docstring for what is left out and why)."""
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type == "Conv" and n.name.startswith(NETWORK_SCOPES) and n.input[1] in inits]


def _reader(input_name: str, images: Sequence[np.ndarray], progress: bool):
    """ONNX Runtime's CalibrationDataReader over preprocessed images, with a progress bar."""
    from onnxruntime.quantization import CalibrationDataReader
    from tqdm import tqdm

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.bar = tqdm(total=len(images), desc="calibrating int8", unit="img",
                            disable=not progress)
            self.it: Iterator[np.ndarray] = iter(images)

        def get_next(self) -> Optional[Dict[str, np.ndarray]]:
            image = next(self.it, None)
            if image is None:
                self.bar.close()
                return None
            self.bar.update(1)
            return {input_name: image}

    return Reader()


def quantize_int8(
    fp32_path: str,
    out_path: str,
    images: Sequence[np.ndarray],
    *,
    symmetric_activations: bool = False,
    quantize_outputs: bool = False,
    exclude: Sequence[str] = (),
    progress: bool = True,
) -> Dict[str, object]:
    """Write the int8 version of the fp32 graph at ``fp32_path`` to ``out_path``, calibrated
    on ``images`` ((C, H, W) arrays as the graph takes them); return what was quantized
    (also stored in the file's metadata under ``solo_d2_quantized``).

    Args:
        symmetric_activations: activations int8 with zero point 0; by default uint8 with a
            zero point, which keeps all 8 bits for the non-negative ReLU outputs most
            convolutions read (symmetric int8 spends one on a sign they never have: on the
            quick-start SOLOv2 it loses 0.19 mask AP where uint8 loses 0.16, with 80 % instead
            of 91 % of instances identical; docs/DEPLOYMENT.md), at the same speed.
        quantize_outputs: also round each convolution's output to int8 (a QDQ pair after it),
            as ONNX Runtime does by default; off, a convolution's output stays fp32 until the
            next convolution quantizes its input (the category logits, read by the sigmoid
            that makes the scores, are never rounded to int8).
        exclude: node names (or name prefixes) of convolutions to keep in fp32.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not images:
        raise ValueError("int8 calibration needs at least one image")
    model = onnx.load(fp32_path)
    _resolve_constant_identities(model)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    nodes = [n for n in quantizable_convs(model) if not n.startswith(tuple(exclude) or ("\0",))]
    if not nodes:
        raise ValueError(f"{fp32_path}: no convolution to quantize")
    reader = _reader(model.graph.input[0].name, images, progress)
    meta = {p.key: p.value for p in model.metadata_props}
    act = QuantType.QInt8 if symmetric_activations else QuantType.QUInt8
    root = logging.getLogger()
    root.addFilter(_quiet_preprocess_advice)
    try:
        quantize_static(
            model, out_path, reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=act,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],
            nodes_to_quantize=nodes,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={
                "ActivationSymmetric": symmetric_activations,
                "WeightSymmetric": True,
                "OpTypesToExcludeOutputQuantization": [] if quantize_outputs else ["Conv"],
            },
        )
    finally:
        root.removeFilter(_quiet_preprocess_advice)
    summary = {
        "quantized_convs": len(nodes),
        "convs": len(convs),
        "float_convs": [c for c in convs if c not in nodes],
        "weights": "int8, per output channel, symmetric",
        "activations": ("int8, per tensor, symmetric" if symmetric_activations
                        else "uint8, per tensor, with zero point"),
        "outputs": "int8" if quantize_outputs else "fp32",
        "calibration": f"min/max over {len(images)} images",
        "calibration_images": len(images),
    }
    quantized = onnx.load(out_path)
    meta.update({p.key: p.value for p in quantized.metadata_props})
    meta.update({PRECISION_KEY: "int8", QUANTIZED_KEY: json.dumps(summary)})
    del quantized.metadata_props[:]
    for key, value in meta.items():
        quantized.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(quantized)
    onnx.save(quantized, out_path)
    logger.info(f"int8: quantized {len(nodes)} of {len(convs)} convolutions, calibrated on "
                f"{len(images)} images")
    return summary
