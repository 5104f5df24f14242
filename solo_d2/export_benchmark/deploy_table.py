"""The deployment table: one model, every runtime and precision, timed side by side.

For each config: the model (random weights calibrated to a realistic candidate count,
:mod:`.calibration`), its image (a synthetic photo of ``image_hw`` resized by the config's own
test resize), and the sides of :data:`DEPLOY_SIDES`: PyTorch fp32 and bf16 (autocast,
MODEL.SOLO.TEST.AMP), and the exported graph at fp32, int8 (:func:`~solo_d2.export.quantize.
quantize_int8`, calibrated on synthetic images) and bf16 in ONNX Runtime and OpenVINO through
:func:`~solo_d2.export.backends.open_backend`, the runtimes ``ONNXPredictor`` uses. All take
the same uint8 image at test scale and return the final masks at its size; they are timed
alternating (drift cancels), with the same number of threads, and reported as ratios against
PyTorch fp32 measured in the same run.
"""
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from solo_d2.data.transforms import augment_image
from solo_d2.engine.configs import AnyConfig, inference_augmentation

from ..benchmark.errors import BenchmarkError
from ..benchmark.inputs import make_image
from ..benchmark.models import amp_cfg, build_ours
from ..benchmark.timing import run_alternating
from .export_latency import calibrate_candidates, timed_end_to_end

__all__ = ["DEPLOY_SIDES", "deploy_input", "build_deploy_runners", "measure_deploy",
           "accuracy_deltas", "format_deploy_table"]

#: the columns of the table: (runtime, precision)
DEPLOY_SIDES = ("pytorch fp32", "pytorch bf16", "onnxruntime fp32", "onnxruntime int8",
                "openvino fp32", "openvino bf16", "openvino int8")
#: synthetic images the benchmark's int8 files are calibrated on
CALIBRATION_SEEDS = (0, 1, 2)


def deploy_input(cfg: AnyConfig, image_hw: Tuple[int, int], seed: int = 0) -> np.ndarray:
    """A synthetic (h, w) photo resized by the config's test resize: (3, H, W) uint8."""
    hwc = make_image(*image_hw, seed=seed).permute(1, 2, 0).numpy().astype(np.uint8)
    return np.ascontiguousarray(augment_image(inference_augmentation(cfg), hwc).transpose(2, 0, 1))


def _pytorch(model: nn.Module, image: torch.Tensor) -> Callable[[], int]:
    def run() -> int:
        with torch.no_grad():
            return len(model([{"image": image}])[0]["instances"])
    return run


def build_deploy_runners(
    cfg: AnyConfig, image: np.ndarray, workdir: str, sides: Sequence[str], threads: int,
    candidates: int, calibration: Sequence[np.ndarray] = (),
) -> Tuple[Dict[str, Callable[[], int]], Dict[str, Any]]:
    """Runners (``run() -> instance count``) of ``sides`` for ``cfg``'s model on ``image``
    (3, H, W) uint8, its files under ``workdir``; and what was set up (candidates reached,
    export and quantization seconds, file sizes)."""
    from solo_d2.export import export_onnx
    from solo_d2.export.backends import installed_backends, open_backend
    from solo_d2.export.low_precision import write_bf16
    from solo_d2.export.quantize import quantize_int8

    unknown = [s for s in sides if s not in DEPLOY_SIDES]
    if unknown:
        raise BenchmarkError(f"unknown side(s) {unknown}; expected some of {DEPLOY_SIDES}")
    missing = sorted({s.split()[0] for s in sides if not s.startswith("pytorch")}
                     - set(installed_backends()))
    if missing:
        raise BenchmarkError(f"runtime(s) {missing} not installed: pip install {' '.join(missing)}")
    torch.set_num_threads(threads)
    model = build_ours(cfg, load_weights=False)
    tensor = torch.from_numpy(image)
    info: Dict[str, Any] = {"candidates": calibrate_candidates(model, tensor, candidates)}
    runners: Dict[str, Callable[[], int]] = {}
    if "pytorch fp32" in sides:
        runners["pytorch fp32"] = _pytorch(model, tensor)
    if "pytorch bf16" in sides:
        bf16 = build_ours(amp_cfg(cfg, "bfloat16"), load_weights=False)
        bf16.load_state_dict(model.state_dict())
        runners["pytorch bf16"] = _pytorch(bf16.eval(), tensor)
    files = {"fp32": os.path.join(workdir, "model_fp32.onnx")}
    start = time.perf_counter()
    export_onnx(model, files["fp32"], tensor)
    info["export_s"] = time.perf_counter() - start
    if any(s.endswith("int8") for s in sides):
        files["int8"] = os.path.join(workdir, "model_int8.onnx")
        start = time.perf_counter()
        quantize_int8(files["fp32"], files["int8"], list(calibration) or [image], progress=False)
        info["quantize_s"] = time.perf_counter() - start
    if "openvino bf16" in sides:
        files["bf16"] = os.path.join(workdir, "model_bf16.onnx")
        write_bf16(files["fp32"], files["bf16"])
    info["file_mib"] = {k: os.path.getsize(p) / 2**20 for k, p in files.items()}
    for side in sides:
        backend, precision = side.split()
        if backend == "pytorch":
            continue
        runner = open_backend(files[precision], backend, threads)
        runners[side] = (lambda r: lambda: len(r.run(image)["scores"]))(runner)
    info["files"] = files
    return {s: runners[s] for s in sides}, info


def measure_deploy(
    cfg: AnyConfig, image_hw: Tuple[int, int], workdir: str, sides: Sequence[str] = DEPLOY_SIDES,
    threads: int = 2, warmup: int = 1, iters: int = 3, candidates: int = 20,
) -> Dict[str, Any]:
    """One row of the table: each side's median seconds (end to end) on ``cfg``'s model,
    its ratio against PyTorch fp32 (when measured), its instance count, and the set-up
    (:func:`build_deploy_runners`)."""
    image = deploy_input(cfg, image_hw)
    calibration = [image] + [deploy_input(cfg, image_hw, s) for s in CALIBRATION_SEEDS[1:]]
    runners, info = build_deploy_runners(cfg, image, workdir, sides, threads, candidates,
                                         calibration)
    instances = {side: run() for side, run in runners.items()}
    times = run_alternating({s: timed_end_to_end(r) for s, r in runners.items()}, warmup, iters)
    entry: Dict[str, Any] = {"input_hw": list(image.shape[1:]), "threads": threads,
                             "times": times, "instances": instances, **info}
    if "pytorch fp32" in times:
        ref = times["pytorch fp32"]["total"]
        entry["speedup_vs_pytorch_fp32"] = {s: ref / t["total"] for s, t in times.items()}
    return entry


def accuracy_deltas(results: Dict[str, Any]) -> Dict[str, float]:
    """side -> mask AP delta against PyTorch fp32 from tools/evaluate_export.py's JSON."""
    return {k: v["delta_mask_ap"] for k, v in results.items()
            if isinstance(v, dict) and "delta_mask_ap" in v}


def format_deploy_table(
    entries: Dict[str, Dict[str, Any]], deltas: Dict[str, Optional[Dict[str, float]]],
) -> str:
    """Markdown: one row per model (``entries``: label -> :func:`measure_deploy` entry), one
    column per side: seconds per image, x-fold speed-up against PyTorch fp32, and the mask AP
    delta against PyTorch fp32 (``deltas``: label -> side -> delta, from a trained model)."""
    sides: List[str] = []
    for e in entries.values():
        sides += [s for s in e["times"] if s not in sides]
    lines = ["| model (input) | " + " | ".join(sides) + " |", "|---" * (len(sides) + 1) + "|"]
    for label, e in entries.items():
        cells = []
        for s in sides:
            if s not in e["times"]:
                cells.append("-")
                continue
            cell = f"{e['times'][s]['total']:.3f} s"
            ratio = e.get("speedup_vs_pytorch_fp32", {}).get(s)
            if ratio is not None and s != "pytorch fp32":
                cell += f" ({ratio:.2f}x)"
            d = (deltas.get(label) or {}).get(s)
            if d is not None:
                cell += f", AP {d:+.2f}"
            cells.append(cell)
        h, w = e["input_hw"]
        lines.append(f"| {label} ({h}x{w}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
