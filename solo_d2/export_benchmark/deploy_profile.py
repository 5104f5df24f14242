"""Where a deployed model's time goes, and how close its convolutions come to the CPU's
arithmetic limit.

:func:`openvino_profile` runs a file in OpenVINO with per-layer counters and sums the times
by part of the model (the module scopes torch.onnx records in the node names: backbone
stages, FPN, head branches; the unscoped rest is pre/post-processing; nodes OpenVINO
creates itself, e.g. for GroupNorm or dequantisation, are "runtime-made"). :func:`network_gmacs`
counts the multiply-adds of backbone and head (fvcore), and :func:`conv_ceiling` measures
the rate OpenVINO reaches on ideal int8 convolutions on this CPU, the limit to compare with.
"""
import collections
import re
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import nn

from ..export.openvino_compile import compile_model

__all__ = ["part_of", "openvino_profile", "network_gmacs", "conv_ceiling", "format_profile"]

#: the ideal convolution of :func:`conv_ceiling`: (channels, height, width, layers); 256
#: channels at 1/8 of 800 x 1333, the shape of SOLOv2's FPN and head convolutions
CEILING_CONV = (256, 100, 168, 4)


def part_of(node_name: str) -> str:
    """The part of the model an OpenVINO node belongs to, from its (ONNX) name."""
    p = node_name.split("/")
    if node_name.startswith("/backbone/bottom_up/") and len(p) > 3:
        return f"backbone {p[3]}"
    if node_name.startswith("/backbone/"):
        return "FPN"
    if node_name.startswith("/head/") and len(p) > 3 and p[2][:1].islower():
        branch = re.sub(r"_\d+$", "", p[2].split(".")[0])  # kernel_convs.0_1 -> kernel_convs
        return f"head {branch}"
    if node_name.startswith("/head/"):
        return "head other"  # the head's own ops (grid resizes, coordinates), reorders
    if node_name.startswith("/"):
        return "pre/post-processing"
    return "runtime-made"


def openvino_profile(path: str, image: np.ndarray, threads: int, precision: str = "f32",
                     runs: int = 2) -> Dict[str, Any]:
    """Seconds per part (:func:`part_of`) and per layer type of one run of the file at
    ``path`` in OpenVINO (inference precision hint ``precision``), after ``runs - 1``
    warm-up runs; ``"convolutions"``: seconds in convolution kernels."""
    import openvino as ov

    core = ov.Core()
    compiled = compile_model(core, path, {
        "INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    for _ in range(runs):
        request.infer({0: image})
    parts: Dict[str, float] = collections.defaultdict(float)
    kinds: Dict[str, float] = collections.defaultdict(float)
    for p in request.get_profiling_info():
        seconds = p.real_time.total_seconds()
        parts[part_of(p.node_name)] += seconds
        kinds[p.node_type] += seconds
    return {"parts": dict(sorted(parts.items(), key=lambda kv: -kv[1])),
            "layer_types": dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:8]),
            "convolutions": kinds.get("Convolution", 0.0), "total": sum(parts.values())}


def network_gmacs(model: nn.Module, image: torch.Tensor) -> Dict[str, float]:
    """Multiply-adds (1e9) of backbone (with FPN) and head on ``image`` (C, H, W) padded as
    the model pads it; the post-processing's few are not counted."""
    from fvcore.nn import FlopCountAnalysis

    with torch.no_grad():
        x = model.preprocess_image([{"image": image}]).tensor
        backbone = FlopCountAnalysis(model.backbone, x)
        feats = model.backbone(x)
        head = FlopCountAnalysis(model.head, ([feats[f] for f in model.head_in_features],))
        out = {}
        for name, fca in (("backbone", backbone), ("head", head)):
            fca.unsupported_ops_warnings(False)
            fca.uncalled_modules_warnings(False)
            out[name] = fca.total() / 1e9
    out["total"] = out["backbone"] + out["head"]
    return out


class _ConvStack(nn.Module):
    """``layers`` 3x3 convolutions + ReLU of ``channels`` channels on a (C, H, W) input, in a
    ``backbone`` scope so that :func:`~solo_d2.export.quantize_int8` quantizes them."""

    def __init__(self, channels: int, layers: int):
        super().__init__()
        self.backbone = nn.Sequential(*[m for _ in range(layers) for m in (
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x[None])


def conv_ceiling(threads: int, workdir: str, runs: int = 7) -> Dict[str, float]:
    """GMAC/s that OpenVINO reaches on this CPU, int8, on :data:`CEILING_CONV`: dense 3x3
    convolutions with no other op between them, quantized as the models are. That is the
    practical arithmetic limit for the models' convolutions (the CPU's clock and dot-product
    width behind it are not visible from a virtual machine); median of ``runs``."""
    import statistics
    import time

    import openvino as ov

    from ..export.quantize import quantize_int8

    c, h, w, layers = CEILING_CONV
    fp32, int8 = f"{workdir}/conv_ceiling.onnx", f"{workdir}/conv_ceiling.int8.onnx"
    x = torch.rand(c, h, w)
    torch.onnx.export(_ConvStack(c, layers).eval(), (x,), fp32, dynamo=False, opset_version=17,
                      input_names=["image"])
    quantize_int8(fp32, int8, [x.numpy()], progress=False)
    compiled = compile_model(ov.Core(), int8, {
        "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    request.infer({0: x.numpy()})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        request.infer({0: x.numpy()})
        times.append(time.perf_counter() - start)
    gmacs = layers * c * c * 9 * h * w / 1e9
    return {"gmacs": gmacs, "seconds": statistics.median(times),
            "gmac_per_s": gmacs / statistics.median(times)}


def format_profile(label: str, prof: Dict[str, Any], gmacs: Dict[str, float], threads: int,
                   ceiling: Optional[Dict[str, float]] = None) -> str:
    """Text: where the int8 time goes, and the convolutions' GMAC/s against ``ceiling``
    (:func:`conv_ceiling`)."""
    parts = ", ".join(f"{k} {v:.3f}" for k, v in prof["parts"].items())
    text = [f"{label}, openvino int8, {threads} threads: {prof['total']:.3f} s summed "
            f"over layers; by part (s): {parts}"]
    achieved = gmacs["total"] / max(prof["convolutions"], 1e-9)
    line = (f"  {gmacs['total']:.1f} GMACs (backbone+FPN {gmacs['backbone']:.1f}, head "
            f"{gmacs['head']:.1f}) in {prof['convolutions']:.3f} s of convolutions: "
            f"{achieved:.0f} GMAC/s")
    if ceiling:
        c, h, w, layers = CEILING_CONV
        line += (f" = {100 * achieved / ceiling['gmac_per_s']:.0f} % of the {threads}-thread "
                 f"int8 ceiling measured in this run ({ceiling['gmac_per_s']:.0f} GMAC/s on "
                 f"{layers} dense 3x3 convolutions, {c} channels, {h}x{w}); at that ceiling the "
                 f"convolutions alone take {gmacs['total'] / ceiling['gmac_per_s']:.3f} s")
    return "\n".join(text + [line]) + "\n"
