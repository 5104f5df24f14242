"""Small agreements between the processes of a distributed run: whether any process saw
something (a signal, a failed write), how many things all of them saw, and every process's
list of names. One process (or no process group) answers for itself.

They run on Detectron2's GLOO group (the default group under GLOO, a GLOO side group under
NCCL), so that they cost no GPU synchronisation under NCCL.
"""
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.distributed as dist
from detectron2.utils import comm

__all__ = ["StepVote", "all_gather_objects", "max_over_processes", "sum_over_processes"]


def _all_reduce(values: List[int], op) -> List[int]:
    if comm.get_world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.int64)
    # Detectron2's GLOO group: the default group under GLOO, a GLOO side group under NCCL
    dist.all_reduce(t, op=op, group=comm._get_global_gloo_group())
    return [int(v) for v in t.tolist()]


def max_over_processes(*values: int) -> List[int]:
    """Each of ``values`` maximised over the processes (flags: whether any process has it).
    Every process must call it."""
    return _all_reduce([int(v) for v in values], dist.ReduceOp.MAX)


def sum_over_processes(*counts: int) -> List[int]:
    """Each of ``counts`` summed over the processes. Every process must call it."""
    return _all_reduce([int(c) for c in counts], dist.ReduceOp.SUM)


def all_gather_objects(obj: Any) -> List[Any]:
    """``obj`` of every process, in rank order (picklable objects). Every process must call it."""
    if comm.get_world_size() == 1:
        return [obj]
    return comm.all_gather(obj)


class StepVote:
    """One all-reduce per training step for every hook that must agree across processes (the
    bad-file count, the preemption and failed-write flags): each hook names what it counts
    (:meth:`provide`), and the first of them to ask for an iteration's totals
    (:meth:`totals`) sums every count over the processes at once; the others read them."""

    def __init__(self):
        self._providers: Dict[str, Callable[[], int]] = {}
        self._iteration: Optional[int] = None
        self._totals: Dict[str, int] = {}

    def provide(self, name: str, count: Callable[[], int]) -> None:
        """``count()``: this process's number for ``name``, called once per iteration."""
        self._providers[name] = count

    def totals(self, iteration: int) -> Dict[str, int]:
        """Every provided count summed over the processes, for ``iteration`` (one all-reduce,
        at the first call of the iteration; every process must call it)."""
        if self._iteration != iteration:
            names = sorted(self._providers)
            sums = sum_over_processes(*(self._providers[n]() for n in names))
            self._totals, self._iteration = dict(zip(names, sums)), iteration
        return self._totals
