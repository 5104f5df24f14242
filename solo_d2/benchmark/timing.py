"""Timing primitives: a phase clock with device synchronisation, autocast, alternating
repeated runs (median phase times) and what autograd keeps for backward."""
import contextlib
import statistics
import time
from typing import Any, Callable, Dict, Iterator, List

import torch
from torch import nn

from solo_d2.layers.precision import amp_dtype, autocast_for

__all__ = ["PhaseTimes", "PhaseClock", "autocast", "run_alternating", "saved_for_backward_mib"]

# phase name -> seconds, in the order the phases ran
PhaseTimes = Dict[str, float]


class PhaseClock:
    """Wall-clock phases with device synchronisation at each boundary."""

    def __init__(self, device: str):
        self.cuda = device == "cuda"
        self.times: PhaseTimes = {}

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def start(self) -> None:
        self._sync()
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        """Add the time since the last boundary to phase ``name``; a new boundary."""
        self._sync()
        t = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + t - self._t
        self._t = t

    @contextlib.contextmanager
    def lap_after(self, module: nn.Module, name: str) -> Iterator[None]:
        """While active, :meth:`lap` ``name`` each time ``module``'s forward returns: a phase
        boundary inside a call that runs ``module`` (e.g. the backbone in ``forward_head``)."""
        handle = module.register_forward_hook(lambda *_: self.lap(name))
        try:
            yield
        finally:
            handle.remove()


def autocast(device: str, amp: str) -> contextlib.AbstractContextManager:
    """Autocast to ``amp`` ("bfloat16" or "float16", MODEL.SOLO.TEST.AMP's names); a no-op
    for "" (fp32, or the model's own MODEL.SOLO.TEST.AMP where it reads it)."""
    return autocast_for(device, amp_dtype(amp, "--amp"))


def run_alternating(
    fns: Dict[str, Callable[[], PhaseTimes]], warmup: int, iters: int
) -> Dict[str, Dict[str, Any]]:
    """Call each fn once per round, alternating the order every round (drift cancels).

    Returns, per fn, the median of each phase over the ``iters`` timed rounds (after
    ``warmup`` untimed ones), ``"total"`` (median of the per-round sums) and ``"all_totals"``
    (each timed round's sum, rounded to 0.1 ms).
    """
    samples: Dict[str, List[PhaseTimes]] = {k: [] for k in fns}
    for it in range(warmup + iters):
        order = list(fns) if it % 2 == 0 else list(fns)[::-1]
        for k in order:
            t = fns[k]()
            if it >= warmup:
                samples[k].append(t)
    out = {}
    for k, ts in samples.items():
        phases = list(ts[0])
        med: Dict[str, Any] = {p: statistics.median(t[p] for t in ts) for p in phases}
        med["total"] = statistics.median(sum(t.values()) for t in ts)
        med["all_totals"] = [round(sum(t.values()), 4) for t in ts]
        out[k] = med
    return out


def saved_for_backward_mib(fn: Callable[[], Any]) -> float:
    """MiB of the distinct tensor storages (weights included) that autograd keeps for backward
    while ``fn()`` runs; the result is dropped. Tensors saved inside torch.utils.checkpoint
    regions are not seen, so use it where there are none (backbone+FPN)."""
    storages: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values()) / 2**20
