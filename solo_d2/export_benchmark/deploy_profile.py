"""Where a deployed model's time goes, and how close its convolutions come to the CPU's
arithmetic limit.

:func:`openvino_profile` runs a file in OpenVINO with per-layer counters and sums the times
by part of the model (the module scopes torch.onnx records in the node names: backbone
stages, FPN, head branches; the unscoped rest is pre/post-processing; nodes OpenVINO
creates itself, e.g. for GroupNorm or dequantisation, are "runtime-made"). :func:`network_gmacs`
counts the multiply-adds of backbone and head (fvcore), and :func:`arithmetic_limit` is the
peak a CPU reaches on them (cores x MACs per cycle x clock).
"""
import collections
import re
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import nn

__all__ = ["INT8_MACS_PER_CYCLE", "part_of", "openvino_profile", "network_gmacs",
           "cpu_mhz", "arithmetic_limit", "format_profile"]

#: multiply-adds per cycle and core of the CPU's dot-product instructions, by precision,
#: for a core that issues one 512-bit VPDPBUSD (int8, 64 MACs) or VDPBF16PS (bf16, 32 MACs)
#: per cycle, as AMD Zen 4 does (avx512_vnni, avx512_bf16; no AMX); fp32: two 256-bit FMAs
INT8_MACS_PER_CYCLE = {"int8": 64, "bf16": 32, "fp32": 16}


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
    compiled = core.compile_model(path, "CPU", {
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


def cpu_mhz(cpuinfo: str = "/proc/cpuinfo") -> Optional[float]:
    """The clock /proc/cpuinfo reports (nominal on virtual machines), else None."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def arithmetic_limit(threads: int, precision: str, mhz: Optional[float] = None) -> Optional[float]:
    """GMAC/s of ``threads`` cores at :data:`INT8_MACS_PER_CYCLE` and ``mhz`` (default: the
    reported clock); None when the clock is unknown."""
    mhz = mhz or cpu_mhz()
    return None if mhz is None else threads * INT8_MACS_PER_CYCLE[precision] * mhz / 1e3


def format_profile(label: str, prof: Dict[str, Any], gmacs: Dict[str, float], threads: int,
                   precision: str) -> str:
    """Text: where the time goes, and the convolutions' GMAC/s against the limit."""
    parts = ", ".join(f"{k} {v:.3f}" for k, v in prof["parts"].items())
    text = [f"{label}, openvino {precision}, {threads} threads: {prof['total']:.3f} s summed "
            f"over layers; by part (s): {parts}"]
    achieved = gmacs["total"] / max(prof["convolutions"], 1e-9)
    limit = arithmetic_limit(threads, precision)
    line = (f"  {gmacs['total']:.1f} GMACs (backbone+FPN {gmacs['backbone']:.1f}, head "
            f"{gmacs['head']:.1f}) in {prof['convolutions']:.3f} s of convolutions: "
            f"{achieved:.0f} GMAC/s")
    if limit:
        line += (f" = {100 * achieved / limit:.0f} % of the {precision} limit ({threads} cores x "
                 f"{INT8_MACS_PER_CYCLE[precision]} MACs/cycle x {cpu_mhz():.0f} MHz = "
                 f"{limit:.0f} GMAC/s); at that limit the network alone takes "
                 f"{gmacs['total'] / limit:.3f} s")
    return "\n".join(text + [line]) + "\n"
