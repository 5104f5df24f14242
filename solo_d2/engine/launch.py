"""Multi-process launch and DistributedDataParallel for models on the CPU as well as on GPUs.

Detectron2's ``launch`` chooses its backend by whether CUDA exists, and its
``create_ddp_model`` passes ``device_ids=[local_rank]``, which DistributedDataParallel refuses
for a CPU model. Here the backend follows the model's device (``MODEL.DEVICE``): CUDA models
go through Detectron2's own launch unchanged; CPU models get GLOO, no device ids, and the
machine's cores shared between the processes of one machine.
"""
import gc
import logging
import os
from datetime import timedelta
from typing import Any, Callable, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import create_ddp_model as d2_create_ddp_model
from detectron2.engine import launch as d2_launch
from detectron2.engine.launch import DEFAULT_TIMEOUT, _find_free_port
from detectron2.utils import comm
from torch import nn

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
) -> None:
    """Run ``main_func(*args)`` in ``num_processes_per_machine`` processes on each machine.

    The arguments are those of Detectron2's ``launch`` (``--num-gpus`` is the number of
    processes per machine), plus ``device``, the model's device (``cfg.MODEL.DEVICE``).
    On "cuda" this is Detectron2's launch. On "cpu" the processes join a GLOO process group
    and each uses ``cpu_count // num_processes_per_machine`` threads (at least one; unless
    ``OMP_NUM_THREADS`` is set), so that the processes of one machine do not oversubscribe
    its cores.
    """
    if num_processes_per_machine < 1 or num_machines < 1:
        raise ValueError(
            f"--num-gpus ({num_processes_per_machine}) and --num-machines ({num_machines}) "
            "must be at least 1"
        )
    if not 0 <= machine_rank < num_machines:
        raise ValueError(f"--machine-rank {machine_rank} must be in [0, {num_machines})")
    if torch.device(device).type == "cuda":
        d2_launch(main_func, num_processes_per_machine, num_machines, machine_rank, dist_url,
                  args=tuple(args), timeout=timeout)
        return
    world_size = num_machines * num_processes_per_machine
    if world_size == 1:
        main_func(*args)
        return
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url auto works on one machine; give tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    mp.start_processes(
        _cpu_worker,
        nprocs=num_processes_per_machine,
        args=(main_func, world_size, num_processes_per_machine, machine_rank, dist_url,
              tuple(args), timeout),
        daemon=False,
    )


def _cpu_worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_processes_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: Sequence[Any],
    timeout: timedelta,
) -> None:
    if "OMP_NUM_THREADS" not in os.environ:  # the user's setting wins, as with torchrun
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_processes_per_machine))
    rank = machine_rank * num_processes_per_machine + local_rank
    try:
        dist.init_process_group(
            backend="gloo", init_method=dist_url, world_size=world_size, rank=rank,
            timeout=timeout,
        )
    except Exception:
        logger.error(f"Process group URL: {dist_url}")
        raise
    comm.create_local_process_group(num_processes_per_machine)
    comm.synchronize()
    main_func(*args)
    _leave_process_group()


def _leave_process_group() -> None:
    """Leave together and release every process group before the interpreter exits.

    A GLOO group still alive at interpreter exit can abort the process ("terminate called
    without an active exception", SIGABRT; 1 to 13 runs in 100 of a 2-process launch here),
    and Detectron2's ``comm`` keeps the machine-local group and the group of its object
    gathers (behind ``lru_cache``), so ``destroy_process_group`` alone does not free them.
    """
    comm.synchronize()
    dist.destroy_process_group()
    comm._LOCAL_PROCESS_GROUP = None
    comm.create_local_process_group.cache_clear()
    comm._get_global_gloo_group.cache_clear()
    gc.collect()  # models, DDP reducers and loaders of main_func that hold a group in a cycle


def create_ddp_model(model: nn.Module, **kwargs: Any) -> nn.Module:
    """Detectron2's ``create_ddp_model`` (the model itself in a single process) for a model
    on any device: a CPU model is wrapped without ``device_ids``."""
    if comm.get_world_size() > 1 and next(model.parameters()).device.type != "cuda":
        kwargs.setdefault("device_ids", None)
    return d2_create_ddp_model(model, **kwargs)
