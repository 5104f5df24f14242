"""Stopping on purpose, all processes together, after a finished iteration:

* **preemption**: on a preemption signal (SIGTERM, SLURM's SIGUSR1 warning;
  ``CLUSTER.PREEMPT_SIGNALS``), every process finishes the iteration it is in, rank 0 writes
  a checkpoint of that iteration (the checkpointer's atomic write), and all processes exit
  with :data:`~solo_d2.exit_status.EXIT_PREEMPTED` (75). ``--resume`` continues from the next
  iteration with the same weights, optimizer, scheduler and iteration counter.
* **a checkpoint rank 0 could not write** (disk full): Detectron2 saves on rank 0 alone, so
  the checkpointer keeps the error (``defer_write_errors``) and here every process raises
  :class:`~solo_d2.checkpoint.checkpointer.CheckpointWriteError` (exit status 74) together.

The signal handler only notes the signal. After every iteration the processes agree (one
all-reduce of two flags) whether any of them got a signal or failed a write, so that all stop
after the same iteration even when the signal reached them at different moments, or only
some of them. A signal that arrives again while the checkpoint is written is logged and
ignored; the write is atomic, so even a SIGKILL then leaves the previous checkpoint whole.
"""
import logging
import os
import signal
import threading
from typing import Dict, List, Sequence

from detectron2.engine import HookBase

from ..checkpoint.checkpointer import CheckpointWriteError
from ..distributed import max_over_processes
from ..exit_status import EXIT_PREEMPTED, TrainingPreempted

__all__ = ["AgreedStopHook", "parse_signals"]

logger = logging.getLogger(__name__)


def parse_signals(names: Sequence[str]) -> Sequence[signal.Signals]:
    """Signal names ("SIGTERM", "SIGUSR1", ...) as signals; an unknown name is an error."""
    out = []
    for name in names:
        sig = getattr(signal, str(name).upper(), None)
        if not isinstance(sig, signal.Signals) or sig in (signal.SIGKILL, signal.SIGSTOP):
            raise ValueError(f"CLUSTER.PREEMPT_SIGNALS: {name!r} is not a signal that can be "
                             "caught; expected names such as SIGTERM, SIGUSR1, SIGUSR2")
        out.append(sig)
    return out


class AgreedStopHook(HookBase):
    """Stop every process after the same iteration, on a preemption signal (with a checkpoint)
    or on a checkpoint that rank 0 could not write.

    Args:
        checkpointer: the trainer's :class:`~solo_d2.checkpoint.SOLOCheckpointer`, built with
            ``defer_write_errors=True``; ``save`` is called on every process (rank 0 writes).
        signals: names of the signals that mean preemption (empty: signals keep their
            default action).

    Place it after the LR scheduler and checkpoint hooks, so that the state it saves is the
    state after the iteration. The handlers are installed for the training loop (main
    thread only) and the previous ones restored after the last iteration, so that a signal
    during the final evaluation ends the process as usual (``model_final.pth`` is written).
    """

    def __init__(self, checkpointer, signals: Sequence[str] = ("SIGTERM", "SIGUSR1")):
        self.checkpointer = checkpointer
        self.signals = parse_signals(signals)
        self.received: List[str] = []  # names of the signals, in order of arrival
        self._reported = 0
        self._previous: Dict[signal.Signals, object] = {}

    def _on_signal(self, signum: int, frame) -> None:
        # Only note it: logging (stream writes) is not safe inside a signal handler.
        self.received.append(signal.Signals(signum).name)

    def _report_signals(self, during: str) -> None:
        for name in self.received[self._reported:]:
            if self._reported == 0:
                logger.warning(f"Got {name} {during}: stopping after this iteration with a "
                               f"checkpoint and exit status {EXIT_PREEMPTED} (requeue with "
                               "--resume)")
            else:
                logger.warning(f"Got {name} again {during}: ignored, already stopping (the "
                               "checkpoint write is atomic)")
            self._reported += 1

    def before_train(self) -> None:
        if not self.signals:
            return
        if threading.current_thread() is not threading.main_thread():
            logger.warning("Training runs outside the main thread: preemption signals cannot be "
                           "caught there and end the process as usual")
            return
        self._previous = {s: signal.signal(s, self._on_signal) for s in self.signals}

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _raise_write_error(self) -> None:
        raise CheckpointWriteError(
            self.checkpointer.write_error
            or "Rank 0 could not write a checkpoint (its log says why); every process stops. "
            "The previous checkpoint is intact.",
            agreed=True,
        )

    def after_step(self) -> None:
        iteration = self.trainer.iter
        self._report_signals(f"during iteration {iteration}")
        signalled, failed = max_over_processes(bool(self.received),
                                               bool(self.checkpointer.write_error))
        if failed:
            self._raise_write_error()
        if iteration >= self.trainer.max_iter - 1:
            self._restore()  # the loop is over
        if not signalled:
            return
        name = f"model_{iteration:07d}"
        self.checkpointer.save(name, iteration=iteration)
        self._report_signals("while the checkpoint was written")
        if max_over_processes(bool(self.checkpointer.write_error))[0]:
            self._raise_write_error()
        path = os.path.join(self.checkpointer.save_dir, f"{name}.pth")
        cause = self.received[0] if self.received else "a signal to another process"
        logger.warning(f"Preempted ({cause}): iteration {iteration} is in {path}; exiting with "
                       f"status {EXIT_PREEMPTED}. Continue with --resume.")
        self._restore()
        raise TrainingPreempted(iteration, path)

    def after_train(self) -> None:
        self._restore()
