"""Starting a run and ending it on purpose: processes spawned here or by torchrun / srun, the
watchdog over dead processes, preemption signals, the agreed stop (statuses: utils/exit_status)."""
from .agreed_stop import AgreedStopHook
from .launch import create_ddp_model, launch

__all__ = ["AgreedStopHook", "create_ddp_model", "launch"]
