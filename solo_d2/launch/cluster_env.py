"""Where this process sits in a run that a cluster launcher started: ``torchrun`` (or any
launcher that sets torch's ``env://`` variables) or SLURM's ``srun``.

:func:`detect_cluster_env` reads the launcher's variables and returns a
:class:`ClusterEnv` (rank, local rank, sizes, rendezvous address), or ``None`` when this
process was started some other way (``python train_net.py --num-gpus N``), which then keeps
its own launch. ``SOLO_D2_LAUNCHER`` overrides the detection: ``torchrun``, ``slurm`` or
``none`` (ignore both, e.g. a single process inside an ``sbatch`` script).

SLURM, one task per process (``srun --ntasks-per-node=G``):

* rank, size and local rank: ``SLURM_PROCID``, ``SLURM_NTASKS`` (the step's
  ``SLURM_STEP_NUM_TASKS`` when set), ``SLURM_LOCALID``; processes per machine from
  ``SLURM_STEP_TASKS_PER_NODE`` / ``SLURM_TASKS_PER_NODE``, which must be one group
  (``"4"`` or ``"4(x2)"``: the same number on every machine), with ranks in blocks per
  machine (srun's default), as Detectron2's machine-local process group needs;
* rendezvous: ``MASTER_ADDR`` if set, else the first host of ``SLURM_STEP_NODELIST`` /
  ``SLURM_JOB_NODELIST`` / ``SLURM_NODELIST`` as SLURM's own ``scontrol show hostnames``
  expands it; ``MASTER_PORT`` if set, else ``15000 + SLURM_JOB_ID % 10000``.
"""
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Mapping, Optional

__all__ = [
    "ClusterEnv",
    "ClusterEnvError",
    "detect_cluster_env",
    "first_slurm_host",
    "slurm_port",
]

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                  "MASTER_PORT")


class ClusterEnvError(ValueError):
    """The launcher's variables are missing, malformed or inconsistent; the message names them."""


@dataclass(frozen=True)
class ClusterEnv:
    """This process's place in a run started by a cluster launcher."""

    launcher: str  # "torchrun" or "slurm"
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    master_addr: str
    master_port: int

    @property
    def num_machines(self) -> int:
        return self.world_size // self.local_world_size

    @property
    def machine_rank(self) -> int:
        return self.rank // self.local_world_size

    @property
    def init_method(self) -> str:
        """torch.distributed's ``init_method``. torchrun: ``env://``, which also joins the
        store of torchrun's agent when it runs one (TORCHELASTIC_USE_AGENT_STORE)."""
        if self.launcher == "torchrun":
            return "env://"
        host = f"[{self.master_addr}]" if ":" in self.master_addr else self.master_addr
        return f"tcp://{host}:{self.master_port}"

    def describe(self) -> str:
        return (f"{self.launcher}: rank {self.rank} of {self.world_size} (local rank "
                f"{self.local_rank} of {self.local_world_size} on machine {self.machine_rank} "
                f"of {self.num_machines}), rendezvous at {self.master_addr}:{self.master_port}")


def _int(env: Mapping[str, str], name: str) -> int:
    value = env.get(name)
    if value is None:
        raise ClusterEnvError(f"{name} is not set")
    try:
        return int(value)
    except ValueError:
        raise ClusterEnvError(f"{name}={value!r} is not an integer") from None


def _check(env: "ClusterEnv", source: str) -> "ClusterEnv":
    if env.world_size < 1 or not 0 <= env.rank < env.world_size:
        raise ClusterEnvError(f"{source}: rank {env.rank} is not in [0, {env.world_size})")
    if env.local_world_size < 1 or not 0 <= env.local_rank < env.local_world_size:
        raise ClusterEnvError(
            f"{source}: local rank {env.local_rank} is not in [0, {env.local_world_size})")
    if env.world_size % env.local_world_size:
        raise ClusterEnvError(
            f"{source}: {env.world_size} processes in all are not a multiple of "
            f"{env.local_world_size} per machine; Detectron2's machine-local process group "
            "needs the same number of processes on every machine")
    if env.rank % env.local_world_size != env.local_rank:
        raise ClusterEnvError(
            f"{source}: rank {env.rank} has local rank {env.local_rank}, but with "
            f"{env.local_world_size} processes per machine the ranks of one machine must be "
            "consecutive (rank = machine * processes per machine + local rank); with srun "
            "use the default block distribution (-m block)")
    if not 0 < env.master_port < 65536:
        raise ClusterEnvError(f"{source}: port {env.master_port} is not in 1..65535")
    return env


def _torchrun_env(env: Mapping[str, str]) -> ClusterEnv:
    missing = [v for v in _TORCHRUN_VARS if not env.get(v)]
    if missing:
        raise ClusterEnvError(
            f"RANK and WORLD_SIZE are set (a torchrun launch), but {', '.join(missing)} "
            "are not; torchrun sets all of " + ", ".join(_TORCHRUN_VARS))
    return _check(ClusterEnv(
        "torchrun", _int(env, "RANK"), _int(env, "LOCAL_RANK"), _int(env, "WORLD_SIZE"),
        _int(env, "LOCAL_WORLD_SIZE"), env["MASTER_ADDR"], _int(env, "MASTER_PORT"),
    ), "torchrun")


def _slurm_env(env: Mapping[str, str]) -> ClusterEnv:
    ntasks_var = "SLURM_STEP_NUM_TASKS" if env.get("SLURM_STEP_NUM_TASKS") else "SLURM_NTASKS"
    world = _int(env, ntasks_var)
    rank, local_rank = _int(env, "SLURM_PROCID"), _int(env, "SLURM_LOCALID")
    per_node_var = next((v for v in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE")
                         if env.get(v)), None)
    if per_node_var is None:
        local_world = world  # one machine
    else:
        # SLURM writes equal counts as one group, "4(x2)"; "4(x2),3" or "5,3" differ
        same = re.fullmatch(r"\s*(\d+)(?:\(x\d+\))?\s*", env[per_node_var])
        if not same:
            raise ClusterEnvError(
                f"SLURM: {per_node_var}={env[per_node_var]!r} starts different numbers of "
                "tasks on the machines; Detectron2's machine-local process group needs the "
                "same number on each (srun --ntasks-per-node)")
        local_world = int(same.group(1))
    if env.get("MASTER_ADDR"):
        addr = env["MASTER_ADDR"]
    else:
        list_var = next((v for v in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST",
                                     "SLURM_NODELIST") if env.get(v)), None)
        if list_var is None:
            raise ClusterEnvError("SLURM: none of SLURM_STEP_NODELIST, SLURM_JOB_NODELIST, "
                                  "SLURM_NODELIST is set, and MASTER_ADDR is not either")
        addr = first_slurm_host(env[list_var], list_var, env.get("PATH"))
    port = _int(env, "MASTER_PORT") if env.get("MASTER_PORT") else slurm_port(env)
    return _check(ClusterEnv("slurm", rank, local_rank, world, local_world, addr, port),
                  "SLURM")


def slurm_port(env: Mapping[str, str]) -> int:
    """The rendezvous port of a SLURM job without ``MASTER_PORT``: ``15000 + job id % 10000``
    (below Linux's ephemeral ports, the same on every task of the job)."""
    return 15000 + _int(env, "SLURM_JOB_ID") % 10000


def detect_cluster_env(env: Optional[Mapping[str, str]] = None) -> Optional[ClusterEnv]:
    """This process's :class:`ClusterEnv` under torchrun or srun, else ``None``.

    torchrun is recognised by ``RANK`` and ``WORLD_SIZE``; SLURM by ``SLURM_PROCID`` with
    more than one task in the step (a one-task step is an ordinary single process).
    torchrun's variables win when both are present (torchrun started inside srun).
    Raises :class:`ClusterEnvError` when the variables are incomplete or inconsistent.
    """
    env = os.environ if env is None else env
    choice = env.get("SOLO_D2_LAUNCHER", "auto").strip().lower() or "auto"
    if choice not in ("auto", "torchrun", "slurm", "none"):
        raise ClusterEnvError(
            f"SOLO_D2_LAUNCHER={choice!r}; expected auto, torchrun, slurm or none")
    if choice == "none":
        return None
    if choice == "torchrun" or (choice == "auto" and "RANK" in env and "WORLD_SIZE" in env):
        return _torchrun_env(env)
    if choice == "slurm":
        return _slurm_env(env)
    if choice == "auto" and "SLURM_PROCID" in env:
        tasks = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1"
        if tasks.isdigit() and int(tasks) > 1:
            return _slurm_env(env)
    return None


def first_slurm_host(nodelist: str, source: str = "node list",
                     path: Optional[str] = None) -> str:
    """The first host of a SLURM node list (``"gpu[07-08]"`` -> ``"gpu07"``), as SLURM's
    ``scontrol show hostnames`` expands it on every SLURM machine (``scontrol`` looked up
    in ``path``, default ``$PATH``)."""
    scontrol = shutil.which("scontrol", path=path)
    if scontrol is None:
        raise ClusterEnvError(
            f"SLURM: {source}={nodelist!r} needs SLURM's scontrol to name the rendezvous host, "
            "and it is not on PATH; set MASTER_ADDR to the first host")
    proc = subprocess.run([scontrol, "show", "hostnames", nodelist], capture_output=True,
                          text=True, timeout=60)
    hosts = proc.stdout.split()
    if proc.returncode != 0 or not hosts:
        raise ClusterEnvError(
            f"SLURM: scontrol show hostnames {nodelist!r} ({source}) failed: "
            f"{(proc.stderr.strip() or 'no host named').splitlines()[-1]}")
    return hosts[0]
