"""The exit statuses of ``train_net.py`` (and :func:`solo_d2.launch`) that cluster
scripts act on, and the errors that end a run with one of them.

=====  ============================================================================
 0     finished
 1     any other error (a traceback says which)
 65    too many unreadable images / annotations (``DATALOADER.MAX_BAD_FILES``); the list
       of files is in the log. Fix the data; a requeue would stop again.
 74    a checkpoint could not be written (disk full, quota, read-only); the previous
       checkpoint is intact. Free space, then ``--resume``.
 75    preempted (``CLUSTER.PREEMPT_SIGNALS``): a checkpoint of the last finished iteration
       was written; requeue with ``--resume``.
 76    another process of the run died or stopped responding (killed, out of memory, lost
       machine); the log names its rank. The last complete checkpoint is usable by
       ``--resume``.
=====  ============================================================================

65, 74 and 75 are sysexits' EX_DATAERR, EX_IOERR and EX_TEMPFAIL; 76 is the next free one.
"""

import logging
import sys

__all__ = [
    "announce",
    "CheckpointWriteError",
    "EXIT_BAD_FILES",
    "EXIT_CHECKPOINT_WRITE",
    "EXIT_PEER_LOST",
    "EXIT_PREEMPTED",
    "RunStopped",
    "TrainingPreempted",
]

EXIT_BAD_FILES = 65
EXIT_CHECKPOINT_WRITE = 74
EXIT_PREEMPTED = 75
EXIT_PEER_LOST = 76


class RunStopped(RuntimeError):
    """An error that ends a run with a documented exit status (``exit_status``) instead of 1.

    Raised on every process of a distributed run together (the processes agree first), so
    that all of them leave at the same point."""

    exit_status = 1


class TrainingPreempted(SystemExit):
    """Training stopped on a preemption signal after a checkpoint was written: exits the
    process with :data:`EXIT_PREEMPTED` unless caught (it is a ``SystemExit``, so
    Detectron2's training loop does not log it as a failure)."""

    def __init__(self, iteration: int, checkpoint: str):
        super().__init__(EXIT_PREEMPTED)
        self.iteration = iteration
        self.checkpoint = checkpoint


class CheckpointWriteError(RunStopped):
    """A checkpoint could not be written; the previous one is intact (exit status 74).
    ``agreed``: every process raises it together."""

    exit_status = EXIT_CHECKPOINT_WRITE

    def __init__(self, message: str, agreed: bool = False):
        super().__init__(message)
        self.agreed = agreed


def announce(logger: logging.Logger, message: str) -> None:
    """Log why a process stops (error level) and make sure it reaches the console: Detectron2
    prints the logs of rank 0 only, so other ranks also write it to stderr."""
    logger.error(message)
    try:
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    except Exception:
        rank = 0
    if rank != 0 or not logger.hasHandlers():
        print(f"[rank {rank}] {message}", file=sys.stderr, flush=True)
