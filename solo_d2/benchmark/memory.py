"""Peak memory: the process's RSS high-water mark (CPU) or the CUDA allocator's peak, read
around one phase, and the fresh subprocess each model and phase is measured in (so that the
high-water marks of different models and phases do not mix)."""
import json
import os
import resource
import subprocess
from typing import Any, Dict, List

import torch

__all__ = ["rss_now_mib", "rss_peak_mib", "PhasePeak", "run_worker"]


def rss_now_mib() -> float:
    """This process's current resident set size, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_peak_mib() -> float:
    """This process's RSS high-water mark (VmHWM). Not getrusage's ru_maxrss: that survives
    fork+exec, so a subprocess would report its parent's peak. The kernel folds threads' RSS
    counters into VmHWM lazily, so it can read below the current RSS: the peak is at least that.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return max(int(line.split()[1]) / 1024.0, rss_now_mib())  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class PhasePeak:
    """Memory marks around one phase: created after the model is built, :meth:`result` after
    the phase ran. RSS on every device; on CUDA also the allocator's peak (reset here)."""

    def __init__(self, device: str):
        self.cuda = device == "cuda"
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base_cuda = torch.cuda.memory_allocated() / 2**20
        self.base_rss = rss_now_mib()
        self.base_peak = rss_peak_mib()

    def result(self) -> Dict[str, float]:
        """``rss_after_build_mib``, ``rss_peak_before_phase_mib``, ``rss_peak_mib``,
        ``rss_phase_increase_mib`` (peak over the built model); on CUDA also
        ``cuda_peak_mib`` and ``cuda_phase_increase_mib``."""
        out = {"rss_after_build_mib": self.base_rss, "rss_peak_before_phase_mib": self.base_peak,
               "rss_peak_mib": rss_peak_mib()}
        out["rss_phase_increase_mib"] = out["rss_peak_mib"] - self.base_rss
        if self.cuda:
            out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
            out["cuda_phase_increase_mib"] = out["cuda_peak_mib"] - self.base_cuda
        return out


def run_worker(cmd: List[str], label: str) -> Dict[str, Any]:
    """Run a memory worker command in a fresh process; the JSON object on its last stdout
    line. ``label`` ("model:phase") names it in the error when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker {label} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
