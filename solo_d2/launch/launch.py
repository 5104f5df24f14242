"""One way in for every launch: ``--num-gpus`` (processes spawned here), ``torchrun`` and
SLURM's ``srun`` (processes started by the launcher), on CPUs (GLOO) and GPUs (NCCL).

* Detectron2's ``launch`` spawns processes itself and ignores torchrun's and SLURM's
  variables; here, when :func:`~solo_d2.launch.cluster_env.detect_cluster_env` finds them,
  this process *is* one rank: it joins the run's process group (``env://`` for torchrun,
  the first host of the node list for SLURM) and spawns nothing.
* The backend follows the model's device (``MODEL.DEVICE``): GLOO with no device ids for
  CPU models (Detectron2 picks NCCL whenever CUDA exists, and its ``create_ddp_model``
  passes device ids that DistributedDataParallel refuses for a CPU model), NCCL otherwise.
* Every rank runs a :class:`~solo_d2.launch.watchdog.PeerWatchdog`: a dead process ends the
  others within ``dead_process_timeout`` seconds, naming its rank (exit status 76).
* Runs that stop on purpose end every process with the same documented status
  (:mod:`solo_d2.utils.exit_status`); the spawning parent forwards preemption signals to its
  processes and exits with their status.
"""
import gc
import logging
import os
import signal
import sys
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import create_ddp_model as d2_create_ddp_model
from detectron2.engine.launch import DEFAULT_TIMEOUT, _find_free_port
from detectron2.utils import comm
from torch import nn

from ..config import CLUSTER_DEFAULTS
from ..utils.exit_status import EXIT_PEER_LOST, RunStopped, TrainingPreempted, announce
from .cluster_env import ClusterEnv, ClusterEnvError, detect_cluster_env
from .preemption_signals import parse_signals
from .watchdog import PeerWatchdog, _exit_peer_lost, _flush_logs

__all__ = ["launch", "create_ddp_model"]

logger = logging.getLogger(__name__)


def launch(
    main_func: Callable[..., Any],
    num_processes_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: Optional[str] = None,
    args: Sequence[Any] = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
    device: str = "cuda",
    *,
    heartbeat_period: float = CLUSTER_DEFAULTS["heartbeat_period"],
    dead_process_timeout: float = CLUSTER_DEFAULTS["dead_process_timeout"],
    preempt_signals: Sequence[str] = CLUSTER_DEFAULTS["preempt_signals"],
) -> None:
    """Run ``main_func(*args)`` in every process of the run.

    The first arguments are those of Detectron2's ``launch`` (``--num-gpus`` is the number of
    processes per machine), plus:

    Args:
        device: the model's device (``cfg.MODEL.DEVICE``); "cpu" runs GLOO and gives each of
            a machine's processes its share of the cores (unless ``OMP_NUM_THREADS`` is set).
        timeout: the process group's timeout (``CLUSTER.COLLECTIVE_TIMEOUT``).
        heartbeat_period, dead_process_timeout: the watchdog's beat and the silence after
            which a process is dead (``CLUSTER.HEARTBEAT_PERIOD``, ``CLUSTER.DEAD_PROCESS_TIMEOUT``).
        preempt_signals: signals the spawning parent forwards to its processes
            (``CLUSTER.PREEMPT_SIGNALS``; the trainer's hook acts on them).

    Under torchrun or srun (see :mod:`~solo_d2.launch.cluster_env`), this process is one rank
    and ``num_processes_per_machine`` / ``num_machines`` / ``machine_rank`` must be left at
    their defaults or agree with the launcher's; ``dist_url`` is not used.
    Exits the process with a status of :mod:`solo_d2.utils.exit_status` when the run stops on
    purpose (preempted, bad files, checkpoint not written, a process lost).
    """
    if not 0 < heartbeat_period < dead_process_timeout:
        raise ValueError(f"CLUSTER.HEARTBEAT_PERIOD ({heartbeat_period} s) must be above 0 and "
                         f"below CLUSTER.DEAD_PROCESS_TIMEOUT ({dead_process_timeout} s)")
    parse_signals(preempt_signals)
    try:
        cluster = detect_cluster_env()
        if cluster is not None:
            _check_arguments_agree(cluster, num_processes_per_machine, num_machines, machine_rank)
    except ClusterEnvError as e:
        print(f"solo_d2 launch: error: {e}", file=sys.stderr)
        sys.exit(2)
    watch = dict(timeout=timeout, heartbeat_period=heartbeat_period,
                 dead_process_timeout=dead_process_timeout, device=device)
    if cluster is not None:
        logger.info(f"Started by {cluster.describe()}")
        if cluster.world_size == 1:
            _run_single(main_func, args)
            return
        run_rank(main_func, args, rank=cluster.rank, local_rank=cluster.local_rank,
                 world_size=cluster.world_size, local_world_size=cluster.local_world_size,
                 init_method=cluster.init_method,
                 threads_shared_by=_processes_sharing_cores(cluster), started_by_launcher=True,
                 **watch)
        return
    if num_processes_per_machine < 1 or num_machines < 1:
        raise ValueError(
            f"--num-gpus ({num_processes_per_machine}) and --num-machines ({num_machines}) "
            "must be at least 1"
        )
    if not 0 <= machine_rank < num_machines:
        raise ValueError(f"--machine-rank {machine_rank} must be in [0, {num_machines})")
    world_size = num_machines * num_processes_per_machine
    if world_size == 1:
        _run_single(main_func, args)
        return
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url auto works on one machine; give tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    context = mp.start_processes(
        _spawned_worker,
        nprocs=num_processes_per_machine,
        args=(main_func, tuple(args), world_size, num_processes_per_machine, machine_rank,
              dist_url, watch),
        daemon=False,
        join=False,
    )
    with _forwarding(preempt_signals, context.pids()):
        _join(context, machine_rank * num_processes_per_machine)


def _check_arguments_agree(cluster: ClusterEnv, per_machine: int, machines: int,
                           machine_rank: int) -> None:
    """torchrun / srun decide the processes; command-line values must agree or be defaults."""
    given = [("--num-gpus", per_machine, 1, cluster.local_world_size,
              "processes on this machine"),
             ("--num-machines", machines, 1, cluster.num_machines, "machines"),
             ("--machine-rank", machine_rank, 0, cluster.machine_rank, "as this machine's rank")]
    for flag, value, default, actual, what in given:
        if value not in (default, actual):
            raise ClusterEnvError(
                f"{flag} {value}, but {cluster.launcher} started this run with {actual} {what} "
                f"({cluster.describe()}). Under {cluster.launcher} every process is one rank "
                f"and nothing is spawned again: leave {flag} out (or give {actual}).")


def _processes_sharing_cores(cluster: ClusterEnv) -> int:
    """SLURM binds each task to its own cores (--cpus-per-task); otherwise the processes of a
    machine share the cores this process may run on."""
    if cluster.launcher == "slurm" and os.environ.get("SLURM_CPUS_PER_TASK"):
        return 1
    return cluster.local_world_size


def _run_single(main_func: Callable[..., Any], args: Sequence[Any]) -> None:
    try:
        main_func(*args)
    except RunStopped as e:
        announce(logger, str(e))
        _flush_logs()
        sys.exit(e.exit_status)


def _spawned_worker(local_rank: int, main_func, args, world_size: int, per_machine: int,
                    machine_rank: int, dist_url: str, watch: dict) -> None:
    run_rank(main_func, args, rank=machine_rank * per_machine + local_rank,
             local_rank=local_rank, world_size=world_size, local_world_size=per_machine,
             init_method=dist_url, threads_shared_by=per_machine, **watch)


def _select_gpu(local_rank: int, local_world_size: int, one_visible_ok: bool) -> None:
    """GPU ``local_rank``; or GPU 0 when a cluster launcher shows each process one GPU
    (srun --gpus-per-task 1, torchrun --virtual-local-rank)."""
    count = torch.cuda.device_count()
    if count == 1 and one_visible_ok:
        torch.cuda.set_device(0)
    elif local_rank < count:
        torch.cuda.set_device(local_rank)
    else:
        raise RuntimeError(
            f"MODEL.DEVICE is cuda with {local_world_size} processes on this machine, but "
            f"{count} GPUs are visible (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): one GPU per process needed")


def run_rank(main_func: Callable[..., Any], args: Sequence[Any], *, rank: int, local_rank: int,
             world_size: int, local_world_size: int, init_method: str, device: str,
             timeout: timedelta, heartbeat_period: float, dead_process_timeout: float,
             threads_shared_by: int = 1, started_by_launcher: bool = False) -> None:
    """Join the run as ``rank``, run ``main_func(*args)`` under the watchdog, leave.

    Ends the process with the run's exit status when it stops on purpose, and with
    :data:`~solo_d2.utils.exit_status.EXIT_PEER_LOST` when another process died.
    """
    cuda = torch.device(device).type == "cuda"
    if cuda:
        _select_gpu(local_rank, local_world_size, one_visible_ok=started_by_launcher)
    elif "OMP_NUM_THREADS" not in os.environ:  # the user's setting wins, as with torchrun
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(max(1, (cores or 1) // threads_shared_by))
    try:
        store, _, _ = next(dist.rendezvous(init_method, rank=rank, world_size=world_size,
                                           timeout=timeout))
        store.set_timeout(timeout)
        dist.init_process_group("nccl" if cuda else "gloo", store=store, rank=rank,
                                world_size=world_size, timeout=timeout)
    except Exception:
        logger.error(f"Rank {rank} of {world_size} could not join the run at {init_method}")
        raise
    comm.create_local_process_group(local_world_size)
    watchdog = PeerWatchdog(store, rank, world_size, period=heartbeat_period,
                            timeout=dead_process_timeout).start()
    comm.synchronize()
    status = 0
    try:
        main_func(*args)
    except TrainingPreempted as e:
        status = e.code
    except RunStopped as e:
        if not getattr(e, "agreed", True):  # this process alone: the others cannot meet it
            announce(logger, str(e))
            watchdog.stop()
            _flush_logs()
            os._exit(e.exit_status)
        logger.error(str(e))  # every process stops with it; rank 0 prints it
        status = e.exit_status
    except (KeyboardInterrupt, SystemExit):
        watchdog.stop()
        raise
    except BaseException:
        # A collective that failed at once (GLOO: "Connection closed by peer") or hung up to
        # the timeout means another process is gone: name it rather than show the traceback
        # of the collective that noticed.
        dead = watchdog.find_dead()
        if dead:
            logger.exception("The error that showed it:")
            _exit_peer_lost(dead)
        watchdog.stop()
        raise
    _leave_process_group(watchdog)
    if status:
        _flush_logs()
        sys.exit(status)


def _leave_process_group(watchdog: Optional[PeerWatchdog] = None) -> None:
    """Leave together and release every process group before the interpreter exits.

    A GLOO group still alive at interpreter exit can abort the process ("terminate called
    without an active exception", SIGABRT; 1 to 13 runs in 100 of a 2-process launch here),
    and Detectron2's ``comm`` keeps the machine-local group and the group of its object
    gathers (behind ``lru_cache``), so ``destroy_process_group`` alone does not free them.
    The watchdog stops after the last barrier: until then every process is known alive.
    """
    comm.synchronize()
    if watchdog is not None:
        watchdog.stop()
    dist.destroy_process_group()
    comm._LOCAL_PROCESS_GROUP = None
    comm.create_local_process_group.cache_clear()
    comm._get_global_gloo_group.cache_clear()
    gc.collect()  # models, DDP reducers and loaders of main_func that hold a group in a cycle


@contextmanager
def _forwarding(signal_names: Sequence[str], pids: Sequence[int]) -> Iterator[None]:
    """While spawned processes run: pass the preemption signals this (parent) process gets on
    to them, instead of dying and leaving them orphaned."""
    signums = parse_signals(signal_names)

    def forward(signum, frame):
        print(f"solo_d2 launch: got {signal.Signals(signum).name}, passing it to processes "
              f"{list(pids)}", file=sys.stderr, flush=True)
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, forward) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _join(context, first_rank: int) -> None:
    """Wait for the spawned processes; exit with the status of a run that stopped on purpose
    (all processes share it), or name the process that died."""
    try:
        while not context.join(grace_period=10):
            pass
    except mp.ProcessExitedException as e:
        rank = first_rank + e.error_index
        if e.signal_name:
            _flush_logs()
            print(f"solo_d2 launch: rank {rank} (pid {e.error_pid}) was killed by "
                  f"{e.signal_name} (out of memory?); the other processes were stopped. "
                  "Continue with --resume from the last complete checkpoint.", file=sys.stderr)
            sys.exit(EXIT_PEER_LOST)
        sys.exit(e.exit_code)


def create_ddp_model(model: nn.Module, **kwargs: Any) -> nn.Module:
    """Detectron2's ``create_ddp_model`` (the model itself in a single process) for a model
    on any device: a CPU model is wrapped without ``device_ids``, a GPU model with its own
    device (which is GPU 0 when each process sees one GPU, not its local rank)."""
    if comm.get_world_size() > 1:
        device = next(model.parameters()).device
        kwargs.setdefault("device_ids", [device.index] if device.type == "cuda" else None)
    return d2_create_ddp_model(model, **kwargs)
