"""The last line of a ``train_net.py`` run: its wall time since the process started (imports,
data generation, model building, training and evaluation included) and the training speed.

    [12/05 10:41:07 detectron2]: Run finished in 9:41 of wall time since the process started
    (data, training and evaluation included); 1800 iterations at 3.10 it/s (0.323 s/it)

The speed is Detectron2's own measure (``IterationTimer``: each step, data loading included,
from the third on), read from the trainer's event storage; the wall time counts
from the start of the first process, so that processes spawned by ``--num-gpus`` count their
parent's start-up too (:data:`START_ENV`).
"""
import logging
import os
import time
from typing import Optional, Sequence

__all__ = ["START_ENV", "process_start_time", "run_start_time", "mark_run_start", "run_summary",
           "log_run_summary"]

#: environment variable holding the first process's pid and start (``"<pid>:<seconds since the
#: epoch>"``); set by :func:`mark_run_start`, read by that process and the processes it spawns
#: (a value inherited from further up belongs to another run: a command started by a run)
START_ENV = "SOLO_D2_RUN_START"

_IMPORTED_AT = time.time()  # the fallback start where /proc is not there


def process_start_time() -> float:
    """When this process started (seconds since the epoch): from /proc (Linux), else when this
    module was imported."""
    try:
        with open("/proc/self/stat") as f:
            # field 22, after the parenthesised command name: start in clock ticks after boot
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


def _run_start_from_env() -> Optional[float]:
    """:data:`START_ENV`'s start where this process or its parent set it, else None."""
    pid, _, start = os.environ.get(START_ENV, "").partition(":")
    try:
        return float(start) if int(pid) in (os.getpid(), os.getppid()) else None
    except ValueError:
        return None


def run_start_time() -> float:
    """The run's start: :data:`START_ENV` where the run's first process set it (this process
    or the one that spawned it), else this process's start."""
    start = _run_start_from_env()
    return process_start_time() if start is None else start


def mark_run_start() -> float:
    """Make this process's start the run's (:data:`START_ENV`, unless the process that spawned
    this one set it), for the processes it spawns; called by a command line's ``__main__``."""
    if _run_start_from_env() is None:
        os.environ[START_ENV] = f"{os.getpid()}:{process_start_time()!r}"
    return run_start_time()


def _duration(seconds: float) -> str:
    """"9:41", "1:02:03" (hours only when there are any)."""
    hours, rest = divmod(round(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def run_summary(wall_seconds: float, iterations: Optional[int] = None,
                step_seconds: Sequence[float] = ()) -> str:
    """The summary line: the wall time, and for a training run its ``iterations`` and their
    speed over the timed ``step_seconds`` (none timed: the iterations only)."""
    line = (f"Run finished in {_duration(wall_seconds)} of wall time since the process started "
            "(data, training and evaluation included)")
    if iterations is None:
        return line
    line += f"; {iterations} iterations"
    total = float(sum(step_seconds))
    if total > 0:
        line += f" at {len(step_seconds) / total:.2f} it/s ({total / len(step_seconds):.3f} s/it)"
    return line


def log_run_summary(trainer=None, logger: Optional[logging.Logger] = None) -> str:
    """Log (Detectron2's logger) and return :func:`run_summary` for the run so far; with a
    trainer that has trained, its iterations and step times."""
    wall = time.time() - run_start_time()
    iterations, steps = None, ()
    storage = getattr(trainer, "storage", None)
    if trainer is not None and storage is not None:
        iterations = trainer.iter - trainer.start_iter
        if "time" in storage.histories():
            steps = [v for v, _ in storage.history("time").values()]
    line = run_summary(wall, iterations, steps)
    (logger or logging.getLogger("detectron2")).info(line)
    return line
