"""Stopping on purpose, all processes together, after a finished iteration:

* **preemption**: on a preemption signal (SIGTERM, SLURM's SIGUSR1 warning;
  ``CLUSTER.PREEMPT_SIGNALS``), every process finishes the iteration it is in, rank 0 writes
  a checkpoint of that iteration (the checkpointer's atomic write), and all processes exit
  with :data:`~solo_d2.utils.exit_status.EXIT_PREEMPTED` (75). ``--resume`` continues from the next
  iteration with the same weights, optimizer, scheduler and iteration counter.
* **a checkpoint rank 0 could not write** (disk full): Detectron2 saves on rank 0 alone, so
  the checkpointer keeps the error (``defer_write_errors``) and here every process raises
  :class:`~solo_d2.checkpoint.checkpointer.CheckpointWriteError` (exit status 74) together.

Signals are only noted (:class:`~solo_d2.launch.preemption_signals.PreemptionSignals`; the
trainer's data workers ignore them). After every iteration the processes agree (one
all-reduce of two flags) whether any of them got a signal or failed a write, so that all
stop after the same iteration even when the signal reached them at different moments, or
only some of them. A signal that arrives again while the checkpoint is written is logged and
ignored; the write is atomic, so even a SIGKILL then leaves the previous checkpoint whole.
"""
import logging
import os
from typing import Optional, Sequence

from detectron2.engine import HookBase

from ..config import CLUSTER_DEFAULTS
from ..utils.comm import StepVote, max_over_processes
from ..utils.exit_status import EXIT_PREEMPTED, CheckpointWriteError, TrainingPreempted
from .preemption_signals import PreemptionSignals, parse_signals

__all__ = ["AgreedStopHook", "parse_signals"]

logger = logging.getLogger(__name__)


class AgreedStopHook(HookBase):
    """Stop every process after the same iteration, on a preemption signal (with a checkpoint)
    or on a checkpoint that rank 0 could not write.

    Args:
        checkpointer: the trainer's :class:`~solo_d2.checkpoint.SOLOCheckpointer`, built with
            ``defer_write_errors=True``; ``save`` is called on every process (rank 0 writes).
        signals: names of the signals that mean preemption (empty: signals keep their
            default action).
        vote: the step's all-reduce shared with the other hooks that agree every step (the
            trainer's :class:`~solo_d2.utils.comm.StepVote`); by default its own.

    Place it after the LR scheduler and checkpoint hooks, so that the state it saves is the
    state after the iteration. The signals are caught during the training loop (main thread
    only) and given back after the last iteration, so that a signal during the final
    evaluation ends the process as usual (``model_final.pth`` is written); after a preemption
    checkpoint further signals are ignored, so that the process exits with status 75.
    """

    def __init__(self, checkpointer,
                 signals: Sequence[str] = CLUSTER_DEFAULTS["preempt_signals"],
                 vote: Optional[StepVote] = None):
        self.checkpointer = checkpointer
        self.catcher = PreemptionSignals(signals)
        self._reported = 0
        self.vote = vote or StepVote()
        self.vote.provide("signalled", lambda: bool(self.received))
        self.vote.provide("write_failed", lambda: bool(self.checkpointer.write_error))

    @property
    def received(self):
        return self.catcher.received

    def _report_signals(self, during: str) -> None:
        for name in self.catcher.received[self._reported:]:
            if self._reported == 0:
                logger.warning(f"Got {name} {during}: stopping after this iteration with a "
                               f"checkpoint and exit status {EXIT_PREEMPTED} (requeue with "
                               "--resume)")
            else:
                logger.warning(f"Got {name} again {during}: ignored, already stopping (the "
                               "checkpoint write is atomic)")
            self._reported += 1

    def before_train(self) -> None:
        if self.catcher.signals and not self.catcher.catch():
            logger.warning("Training runs outside the main thread: preemption signals cannot be "
                           "caught there and end the process as usual")

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
        totals = self.vote.totals(iteration)
        signalled, failed = totals["signalled"], totals["write_failed"]
        if failed:
            self._raise_write_error()
        if not signalled:
            if iteration >= self.trainer.max_iter - 1:
                self.catcher.release()  # the loop is over
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
        self.catcher.release(ignore_further=True)
        raise TrainingPreempted(iteration, path)

    def after_train(self) -> None:
        self.catcher.release()
