"""What an exported file's precision means, where it is recorded, and whether this CPU has the
arithmetic that makes it pay.

* ``fp32``: the graph of :func:`~solo_d2.export.export_onnx`, as it always was (no precision
  key in its metadata).
* ``bf16``: the same fp32 graph and weights, with ``solo_d2_precision = bf16`` in its
  metadata. bf16 is a way of *running* it: OpenVINO's CPU plugin with its inference-precision
  hint bf16 runs convolutions, matrix products and interpolations in bf16 on CPUs with bf16
  dot products (avx512_bf16, AMX). ONNX Runtime has no bf16 CPU kernels: it runs such a file
  in fp32 (and says so).
* ``int8``: the convolutions of backbone, FPN and heads quantized (QDQ, int8 weights per
  output channel, int8 activations calibrated on the user's images, :mod:`.quantize`); the
  rest of the graph (normalisation, GroupNorm, resizes, the post-processing) stays fp32.
  Both runtimes read it; OpenVINO runs its convolutions on the CPU's int8 dot products
  (avx512_vnni, avx_vnni, AMX).
"""
import json
import os
from typing import Dict, Iterable, List, Optional, Tuple

__all__ = [
    "PRECISIONS",
    "PRECISION_KEY",
    "QUANTIZED_KEY",
    "PrecisionError",
    "UNITS",
    "cpu_flags",
    "precision_units",
    "check_cpu_supports",
    "read_metadata",
    "inspect_file",
    "file_precision",
    "quantized_summary",
]

PRECISIONS = ("fp32", "bf16", "int8")
#: metadata key of the precision a file is meant to run at (absent: fp32)
PRECISION_KEY = "solo_d2_precision"
#: metadata key of an int8 file's description of what was quantized (JSON)
QUANTIZED_KEY = "solo_d2_quantized"

#: /proc/cpuinfo flags of the arithmetic each low precision needs to be worth running
UNITS: Dict[str, tuple] = {
    "int8": ("avx512_vnni", "avx_vnni", "amx_int8"),
    "bf16": ("avx512_bf16", "amx_bf16"),
}


class PrecisionError(ValueError):
    """A precision that cannot be exported or run as asked; the message says why and what to
    do instead (one line)."""


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set:
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read, e.g. not Linux)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def precision_units(precision: str, flags: Optional[Iterable[str]] = None) -> list:
    """The flags of ``precision``'s arithmetic units this CPU has (empty: none)."""
    flags = cpu_flags() if flags is None else set(flags)
    return [f for f in UNITS.get(precision, ()) if f in flags]


def check_cpu_supports(precision: str, flags: Optional[Iterable[str]] = None) -> None:
    """Raise :class:`PrecisionError` when ``precision`` is unknown, or low precision on a CPU
    without its arithmetic units (it would run no faster than fp32, or slower)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision {precision!r} is unknown; expected one of {PRECISIONS}")
    if precision == "fp32":
        return
    flags = cpu_flags() if flags is None else set(flags)
    if not flags:  # cannot tell (not Linux): the measured gain decides
        return
    if not precision_units(precision, flags):
        raise PrecisionError(
            f"{precision} is not worth it on this CPU: it has none of "
            f"{', '.join(UNITS[precision])}, so {precision} runs no faster than fp32 here; "
            "export fp32, or pass --force to write the file for another machine"
        )


def read_metadata(onnx_path: str) -> Dict[str, str]:
    """The ``metadata_props`` of an ONNX file."""
    return inspect_file(onnx_path)[0]


def inspect_file(onnx_path: str) -> Tuple[Dict[str, str], List[str]]:
    """An ONNX file's ``metadata_props``, and the names of its convolutions whose weights
    the graph computes (Decoupled SOLO's mask projections of the candidate rows), which
    OpenVINO's CPU plugin cannot run."""
    import onnx

    if not os.path.isfile(onnx_path):
        raise FileNotFoundError(f"{onnx_path!r} does not exist")
    model = onnx.load(onnx_path, load_external_data=False)
    constants = {i.name for i in model.graph.initializer}
    constants |= {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    produced = {o: n for n in model.graph.node for o in n.output}

    def constant(name: str) -> bool:  # through DequantizeLinear / Identity of a constant
        node = produced.get(name)
        if node is not None and node.op_type in ("DequantizeLinear", "Identity"):
            return constant(node.input[0])
        return name in constants

    dynamic = [n.name for n in model.graph.node if n.op_type == "Conv" and not constant(n.input[1])]
    return {p.key: p.value for p in model.metadata_props}, dynamic


def file_precision(metadata: Dict[str, str]) -> str:
    """The precision a file's metadata records: fp32 when it records none."""
    precision = metadata.get(PRECISION_KEY, "fp32")
    if precision not in PRECISIONS:
        raise PrecisionError(
            f"the file records precision {precision!r}; this solo_d2 knows {PRECISIONS}")
    return precision


def quantized_summary(metadata: Dict[str, str]) -> Optional[dict]:
    """An int8 file's record of what was quantized, else None."""
    text = metadata.get(QUANTIZED_KEY)
    return json.loads(text) if text else None
