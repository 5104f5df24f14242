"""Catching preemption signals in the training process without letting them kill its data
workers.

Schedulers send SIGTERM (SLURM: also SIGUSR1 as a warning) to every process of a job, the
DataLoader workers included. A worker that dies of it makes the loader raise in the middle of
an iteration ("DataLoader worker ... is killed by signal: Terminated", measured here), before
any checkpoint. So:

* :class:`PreemptionSignals` installs handlers that only note the signals (the training loop
  looks at them after each iteration), and says so in a flag in shared memory that the
  workers read;
* the workers of a loader passed through :func:`spare_workers` are started with those signals
  blocked (the training process blocks them while its loader starts them; a child inherits
  the signal mask, with fork and through exec with spawn; a signal to the training process
  in that instant waits, it is not lost). Their ``worker_init_fn`` installs a handler (torch's
  worker installs its own for SIGTERM) and unblocks them: the handler ignores a signal while
  the flag says the training process catches it, and otherwise ends the worker as torch's
  does, so that the training process can still stop its workers with SIGTERM when it exits.
"""
import contextlib
import multiprocessing
import os
import signal
import threading
from typing import Any, Iterator, List, Optional, Sequence

__all__ = ["PreemptionSignals", "parse_signals", "spare_workers"]

# 1 while this process catches preemption signals; in shared memory, read by the data workers
# (created on first use, before any worker that reads it starts)
_catching: Optional[Any] = None


def _catching_flag():
    global _catching
    if _catching is None:
        _catching = multiprocessing.RawValue("b", 0)
    return _catching


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
        _catching_flag().value = 1
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
        _catching_flag().value = 0


@contextlib.contextmanager
def _blocked(signals: Sequence[int]) -> Iterator[None]:
    """Block ``signals`` in this thread (the children it starts inherit the mask)."""
    if not signals or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _InWorker:
    """The workers' handler: ignore the signal while the training process catches it (it
    stops after its iteration; keep loading until then), else end quietly, as torch's worker
    on its parent's SIGTERM."""

    def __init__(self, catching):
        self.catching = catching

    def __call__(self, signum: int, frame) -> None:
        if not self.catching.value:
            os._exit(0)


class _SpareThenInit:
    """A DataLoader ``worker_init_fn``: handle ``signals`` in the worker (see the module
    docstring) and unblock them, then call ``init`` (Detectron2's seeding). Picklable, for
    spawned workers (the flag travels as shared memory)."""

    def __init__(self, signals: Sequence[int], init: Optional[Any], catching):
        self.signals = [int(s) for s in signals]
        self.init = init
        self.catching = catching

    def __call__(self, worker_id: int) -> None:
        handler = _InWorker(self.catching)
        for s in self.signals:
            signal.signal(s, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, self.signals)
        if self.init is not None:
            self.init(worker_id)


class _StartsWorkersBlocked:
    """``loader`` whose iteration starts its workers with the signals blocked: the first
    batch is taken with them blocked (torch's loader starts its workers on ``iter``,
    Detectron2's grouped one on the first ``next``). Length and attributes are the loader's."""

    def __init__(self, loader: Any, signals: Sequence[int]):
        self.loader, self.signals = loader, list(signals)

    def __iter__(self) -> Iterator[Any]:
        with _blocked(self.signals):
            it = iter(self.loader)
            first = next(it, _END)
        if first is _END:
            return
        yield first
        yield from it

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.loader, name)


_END = object()


def spare_workers(loader: Any, names: Sequence[str]) -> Any:
    """The loader ``loader`` (a torch DataLoader, or Detectron2's AspectRatioGroupedDataset
    around one) whose worker processes ignore the signals ``names`` while the training
    process catches them (see the module docstring). A loader without workers is returned as
    it is."""
    signals = parse_signals(names)
    inner: Optional[Any] = loader
    while inner is not None and not hasattr(inner, "multiprocessing_context"):
        inner = getattr(inner, "dataset", None)
    if not signals or inner is None or getattr(inner, "num_workers", 0) <= 0:
        return loader
    inner.worker_init_fn = _SpareThenInit(signals, inner.worker_init_fn, _catching_flag())
    return _StartsWorkersBlocked(loader, signals)
