"""What the benchmark prints: the machine, per-phase time tables, the memory table, progress."""
import os
import platform
import sys
import time
from typing import Any, Dict, List, Tuple

import torch

__all__ = ["BF16_FLAGS", "cpu_flags", "cpu_flags_text", "machine_info", "format_table", "peak_keys", "format_memory_table", "log"]


#: /proc/cpuinfo flags that decide low-precision speed: bf16 dot products (AVX-512), the AMX
#: matrix units (bf16, int8 tiles), fp16 arithmetic
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16", "amx_fp16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> Dict[str, bool]:
    """Whether the CPU reports each of :data:`BF16_FLAGS` (all False where unreadable)."""
    flags: set = set()
    try:
        with open(cpuinfo) as f:
            for ln in f:
                if ln.startswith("flags"):
                    flags = set(ln.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {name: name in flags for name in BF16_FLAGS}


def cpu_flags_text(info: Dict[str, Any]) -> str:
    """'avx512_bf16 yes, amx_bf16 no, ...' from :func:`machine_info`'s ``cpu_flags``."""
    return ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["cpu_flags"].items())


def machine_info(device: str) -> Dict[str, Any]:
    """Python, torch, CPU (model name from /proc/cpuinfo and its bf16 / AMX flags), core and
    thread counts, load, GPU."""
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg": list(os.getloadavg()),
        "cpu_flags": cpu_flags(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def format_table(title: str, results: Dict[str, Dict[str, float]], phases: List[str]) -> str:
    """Seconds per phase for each side, and each other side's time over ours (markdown)."""
    sides = list(results)
    others = [s for s in sides if s != "ours"] if "ours" in sides else []
    lines = [f"### {title}", "",
             "| phase | " + " | ".join([f"{s} (s)" for s in sides] + [f"{s}/ours" for s in others])
             + " |",
             "|---" * (len(sides) + len(others) + 1) + "|"]
    for p in phases + ["total"]:
        row = [f"{results[s][p]:.3f}" for s in sides]
        row += [f"{results[s][p] / max(results['ours'][p], 1e-9):.2f}x" for s in others]
        lines.append(f"| {p} | " + " | ".join(row) + " |")
    ips = " / ".join(f"{s} {1.0 / results[s]['total']:.3f}" for s in sides)
    lines += ["", f"images/s: {ips}", ""]
    return "\n".join(lines)


def peak_keys(device: str) -> Tuple[str, str]:
    """The memory report's (peak, increase over the built model) keys on ``device``: the
    CUDA allocator's on CUDA, the process RSS's on CPU."""
    if device == "cuda":
        return "cuda_peak_mib", "cuda_phase_increase_mib"
    return "rss_peak_mib", "rss_phase_increase_mib"


def format_memory_table(
    mem: Dict[str, Dict[str, Any]], ratios: Dict[str, Dict[str, Dict[str, float]]],
    phases: List[str], device: str,
) -> str:
    """Peak and increase per "model:phase" (markdown), then per phase ours over each other
    model (``ratios``: other -> phase -> {"peak", "increase"})."""
    key, inc = peak_keys(device)
    lines = ["### peak memory (fresh process per model and phase)", "",
             f"| model:phase | peak {key} | increase over built model (MiB) |",
             "|---|---|---|"]
    for k, v in mem.items():
        lines.append(f"| {k} | {v[key]:.0f} | {v[inc]:.0f} |")
    for phase in phases:
        for other, per_phase in ratios.items():
            if phase in per_phase:
                r = per_phase[phase]
                lines.append(f"\n{phase}: ours/{other} peak {r['peak']:.2f}x, "
                             f"increase {r['increase']:.2f}x")
    return "\n".join(lines) + "\n"


def log(msg: str) -> None:
    """A progress line on stderr: ``[benchmark HH:MM:SS] msg``."""
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
