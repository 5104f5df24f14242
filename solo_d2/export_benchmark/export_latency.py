"""ONNX Runtime vs PyTorch on the same model, weights and image: latency and agreement.

The model is exported with :func:`solo_d2.export.export_onnx`; both sides take the same uint8
image at test scale and return the final masks at its size (the whole pipeline from
normalisation to Matrix NMS and the full-size masks). Random weights are calibrated first
(:mod:`.calibration`) so that a chosen number of candidates reaches the post-processing.
"""
import os
import time
from typing import Any, Callable, Dict

import torch
from torch import nn

from ..benchmark.calibration import adjust_masks, calibrate, shift_cls_bias
from ..benchmark.timing import run_alternating

__all__ = ["calibrate_candidates", "measure_onnx_vs_pytorch", "timed_end_to_end"]


def calibrate_candidates(model: nn.Module, image: torch.Tensor, candidates: int) -> int:
    """Make a randomly initialised ``model`` give about ``candidates`` candidates on
    ``image`` with realistic masks, in place; returns the count reached."""
    shifts, counts, (kind, value) = calibrate(model, image.float(), {"n": candidates})
    shift_cls_bias(model, shifts["n"])
    adjust_masks(model, kind, value)
    return counts["n"]


def timed_end_to_end(fn: Callable[[], Any]) -> Callable[[], Dict[str, float]]:
    """``fn`` as a runner of :func:`~.timing.run_alternating`: its seconds as one phase."""
    def run() -> Dict[str, float]:
        start = time.perf_counter()
        fn()
        return {"end_to_end": time.perf_counter() - start}

    return run


def measure_onnx_vs_pytorch(
    model: nn.Module, image: torch.Tensor, workdir: str, warmup: int = 1, iters: int = 3
) -> Dict[str, Any]:
    """Export ``model`` into ``workdir``, check ONNX Runtime against PyTorch on ``image``
    (C, H, W) uint8, and time both, alternating, with the same number of threads.

    Returns ``{"parity": ParityReport fields, "pytorch": {...}, "onnxruntime": {...},
    "ratio_pytorch_over_ort": float, "export_s": float}``; times in seconds.
    """
    import onnxruntime as ort

    from ..export import compare_outputs, export_onnx, pytorch_outputs

    start = time.perf_counter()
    path = export_onnx(model, os.path.join(workdir, "model.onnx"), image)
    export_s = time.perf_counter() - start
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"image": image.numpy()}
    names = [o.name for o in session.get_outputs()]
    report = compare_outputs(pytorch_outputs(model, image), dict(zip(names, session.run(None, feed))))

    def pytorch() -> None:
        with torch.no_grad():
            model([{"image": image}])

    res = run_alternating(
        {"pytorch": timed_end_to_end(pytorch), "onnxruntime": timed_end_to_end(lambda: session.run(None, feed))},
        warmup,
        iters,
    )
    return {
        "parity": vars(report),
        "pytorch": res["pytorch"],
        "onnxruntime": res["onnxruntime"],
        "ratio_pytorch_over_ort": res["pytorch"]["total"] / res["onnxruntime"]["total"],
        "export_s": export_s,
        "onnx_mib": os.path.getsize(path) / 2**20,
    }
