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
  ``SLURM_STEP_TASKS_PER_NODE`` / ``SLURM_TASKS_PER_NODE`` (``"4(x2)"``) and checked to be
  the same on every machine, with ranks in blocks per machine (srun's default), as
  Detectron2's machine-local process group needs;
* rendezvous: ``MASTER_ADDR`` if set, else the first host of ``SLURM_STEP_NODELIST`` /
  ``SLURM_JOB_NODELIST`` / ``SLURM_NODELIST`` (expanded here: ``scontrol`` is not needed);
  ``MASTER_PORT`` if set, else ``15000 + SLURM_JOB_ID % 10000``.
"""
import os
import re
from dataclasses import dataclass
from typing import List, Mapping, Optional

__all__ = [
    "ClusterEnv",
    "ClusterEnvError",
    "detect_cluster_env",
    "expand_nodelist",
    "parse_tasks_per_node",
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
        counts = set(parse_tasks_per_node(env[per_node_var]))
        if len(counts) != 1:
            raise ClusterEnvError(
                f"SLURM: {per_node_var}={env[per_node_var]!r} starts different numbers of "
                "tasks on the machines; Detectron2's machine-local process group needs the "
                "same number on each (srun --ntasks-per-node)")
        local_world = counts.pop()
    if env.get("MASTER_ADDR"):
        addr = env["MASTER_ADDR"]
    else:
        list_var = next((v for v in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST",
                                     "SLURM_NODELIST") if env.get(v)), None)
        if list_var is None:
            raise ClusterEnvError("SLURM: none of SLURM_STEP_NODELIST, SLURM_JOB_NODELIST, "
                                  "SLURM_NODELIST is set, and MASTER_ADDR is not either")
        addr = expand_nodelist(env[list_var])[0]
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


def _split_top_level(text: str) -> List[str]:
    """Split at the commas outside brackets: "a[1,2],b" -> ["a[1,2]", "b"]."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ClusterEnvError(f"node list {text!r}: ']' without '['")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ClusterEnvError(f"node list {text!r}: '[' without ']'")
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


def _expand_range(item: str, whole: str) -> List[str]:
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", item.strip())
    if not m:
        raise ClusterEnvError(f"node list {whole!r}: {item!r} is not a number or a range a-b")
    lo, hi = m.group(1), m.group(2) or m.group(1)
    if int(hi) < int(lo):
        raise ClusterEnvError(f"node list {whole!r}: range {item!r} goes backwards")
    width = len(lo)  # "01-10" keeps two digits, as SLURM does
    return [str(v).zfill(width) for v in range(int(lo), int(hi) + 1)]


def _expand_host(pattern: str, whole: str) -> List[str]:
    m = re.search(r"\[([^\[\]]*)\]", pattern)
    if not m:
        return [pattern]
    head, tail = pattern[: m.start()], pattern[m.end():]
    values = [v for item in m.group(1).split(",") for v in _expand_range(item, whole)]
    return [h for v in values for h in _expand_host(f"{head}{v}{tail}", whole)]


def expand_nodelist(nodelist: str) -> List[str]:
    """The hosts of a SLURM node list, in order: ``"node[01-03,07],gpu5"`` ->
    ``["node01", "node02", "node03", "node07", "gpu5"]``; several bracket groups in one name
    multiply (``"r[1-2]n[1-2]"`` -> r1n1, r1n2, r2n1, r2n2)."""
    hosts = [h for part in _split_top_level(nodelist) for h in _expand_host(part, nodelist)]
    if not hosts:
        raise ClusterEnvError(f"node list {nodelist!r} names no host")
    return hosts


def parse_tasks_per_node(text: str) -> List[int]:
    """Tasks on each machine from SLURM's compressed form: ``"4(x2),3"`` -> ``[4, 4, 3]``."""
    counts = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if not m:
            raise ClusterEnvError(f"tasks per node {text!r}: cannot read {part!r}")
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts
