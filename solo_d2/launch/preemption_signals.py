"""Catching preemption signals in the training process without letting them kill its data
workers.

Schedulers send SIGTERM (SLURM: also SIGUSR1 as a warning) to every process of a job, the
DataLoader workers included. A worker that dies of it makes the loader raise in the middle of
an iteration ("DataLoader worker ... is killed by signal: Terminated", measured here), before
any checkpoint. So:

* :class:`PreemptionSignals` installs handlers that only note the signals (the training loop
  looks at them after each iteration);
* the data workers of a loader passed through :func:`spare_workers` ignore them *while
  their training process catches them*: they start with them ignored (the parent ignores them
  for the instant of the start; the child inherits that, with fork and through exec with
  spawn), then their ``worker_init_fn`` installs a handler (torch's worker installs its own
  for SIGTERM) that ignores the signal when the parent catches it (Linux:
  ``/proc/<parent>/status``, ``SigCgt``) and otherwise ends the worker as torch's does - so
  that the parent can still stop its workers with SIGTERM when it exits.

A signal that reaches the training process in the instant its workers start is lost; the
workers of the training loader start once, at the first iteration.
"""
import multiprocessing
import multiprocessing.context as mp_context
import os
import signal
import threading
from typing import Any, List, Optional, Sequence

__all__ = ["PreemptionSignals", "parse_signals", "spare_workers"]

#: signals that data workers started through spare_workers' contexts ignore
_worker_signals: List[signal.Signals] = []


def parse_signals(names: Sequence[str]) -> List[signal.Signals]:
    """Signal names ("SIGTERM", "SIGUSR1", ...) as signals; an unknown name is an error."""
    out = []
    for name in names:
        sig = getattr(signal, str(name).upper(), None)
        if not isinstance(sig, signal.Signals) or sig in (signal.SIGKILL, signal.SIGSTOP):
            raise ValueError(f"CLUSTER.PREEMPT_SIGNALS: {name!r} is not a signal that can be "
                             "caught; expected names such as SIGTERM, SIGUSR1, SIGUSR2")
        out.append(sig)
    return out


class PreemptionSignals:
    """The preemption signals of one training loop: :meth:`catch`, :attr:`received`,
    :meth:`release`. Only the main thread can catch signals; elsewhere nothing is caught."""

    def __init__(self, names: Sequence[str]):
        self.signals = parse_signals(names)
        self.received: List[str] = []  # names, in order of arrival
        self._previous = {}

    @property
    def catching(self) -> bool:
        return bool(self._previous)

    def _note(self, signum: int, frame) -> None:
        # Only note it: logging (stream writes) is not safe inside a signal handler.
        self.received.append(signal.Signals(signum).name)

    def catch(self) -> bool:
        """Start catching; False (and nothing changed) outside the main thread."""
        if not self.signals or threading.current_thread() is not threading.main_thread():
            return False
        self._previous = {s: signal.signal(s, self._note) for s in self.signals}
        return True

    def release(self, ignore_further: bool = False) -> None:
        """Stop catching: give the signals back their previous handlers, or ignore them (a
        process leaving after its preemption checkpoint must exit with its status, not die
        of a late second signal)."""
        if not self.catching:
            return
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_IGN if ignore_further else handler)
        self._previous = {}


def _starting_ignored(start):
    def wrapped(self) -> None:
        if not _worker_signals or threading.current_thread() is not threading.main_thread():
            return start(self)
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in _worker_signals}
        try:
            return start(self)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    return wrapped


# Module-level classes: a spawned child unpickles its Process object by class name.
class _ForkProcess(mp_context.ForkProcess):
    start = _starting_ignored(mp_context.ForkProcess.start)


class _SpawnProcess(mp_context.SpawnProcess):
    start = _starting_ignored(mp_context.SpawnProcess.start)


class _ForkServerProcess(mp_context.ForkServerProcess):
    start = _starting_ignored(mp_context.ForkServerProcess.start)


class _ForkContext(mp_context.ForkContext):
    Process = _ForkProcess


class _SpawnContext(mp_context.SpawnContext):
    Process = _SpawnProcess


class _ForkServerContext(mp_context.ForkServerContext):
    Process = _ForkServerProcess


_CONTEXTS = {"fork": _ForkContext, "spawn": _SpawnContext, "forkserver": _ForkServerContext}


def _parent_catches(signum: int) -> bool:
    """Whether this process's parent has a handler for ``signum`` (Linux /proc; False when it
    cannot be read)."""
    try:
        with open(f"/proc/{os.getppid()}/status") as f:
            caught = next(line for line in f if line.startswith("SigCgt:"))
        return bool(int(caught.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, StopIteration, ValueError, IndexError):
        return False


def _in_worker(signum: int, frame) -> None:
    if _parent_catches(signum):
        return  # the training process stops after its iteration; keep loading until then
    os._exit(0)  # as torch's worker on its parent's SIGTERM: quietly


class _SpareThenInit:
    """A DataLoader ``worker_init_fn``: handle ``signals`` in the worker (see the module
    docstring), then call ``init`` (Detectron2's seeding). Picklable, for spawned workers."""

    def __init__(self, signals: Sequence[int], init: Optional[Any]):
        self.signals = [int(s) for s in signals]
        self.init = init

    def __call__(self, worker_id: int) -> None:
        for s in self.signals:
            signal.signal(s, _in_worker)
        if self.init is not None:
            self.init(worker_id)


def spare_workers(loader: Any, names: Sequence[str]) -> Any:
    """Make the worker processes of ``loader`` (a torch DataLoader, or Detectron2's
    AspectRatioGroupedDataset around one) ignore the signals ``names`` while their parent
    catches them (see the module docstring); returns ``loader``. Nothing changes for a loader
    without workers."""
    signals = parse_signals(names)
    inner: Optional[Any] = loader
    while inner is not None and not hasattr(inner, "multiprocessing_context"):
        inner = getattr(inner, "dataset", None)
    if not signals or inner is None or getattr(inner, "num_workers", 0) <= 0:
        return loader
    _worker_signals[:] = sorted(set(_worker_signals) | set(signals))
    current = inner.multiprocessing_context or multiprocessing.get_context()
    context = _CONTEXTS.get(current.get_start_method())
    if context is not None and not isinstance(current, tuple(_CONTEXTS.values())):
        inner.multiprocessing_context = context()
    inner.worker_init_fn = _SpareThenInit(signals, inner.worker_init_fn)
    return loader
