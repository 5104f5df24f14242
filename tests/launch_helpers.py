"""Running ``train_net.py`` as users launch it, for the cluster tests: ``--num-gpus N``,
``torchrun``, and tasks started with the variables ``srun`` sets, each as subprocesses in
their own process group, with helpers to wait for an iteration and read the results."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import pytest

from conftest import ROOT, TINY_OPTS

BASE = os.path.join(ROOT, "configs", "Base-SOLO.yaml")
TRAIN_NET = os.path.join(ROOT, "train_net.py")
# a stand-in for SLURM's scontrol (show hostnames), first on the PATH of srun-style tasks
FAKE_BIN = os.path.join(ROOT, "tests", "fake_bin")


def train_opts(json_file: str, images: str, out, *, iters: int, ims_per_batch: int = 4,
               extra: Sequence[str] = ()) -> List[str]:
    """The tiny model on a registered COCO json, the same images in the same order on every
    launch (no flips, fixed seed), metrics every iteration, no evaluation."""
    return [
        *TINY_OPTS,
        "INPUT.RANDOM_FLIP", "none", "SEED", "7",
        "DATALOADER.FILTER_EMPTY_ANNOTATIONS", "False",
        "SOLVER.IMS_PER_BATCH", str(ims_per_batch), "SOLVER.BASE_LR", "0.01",
        "SOLVER.MAX_ITER", str(iters), "SOLVER.STEPS", "()", "SOLVER.LOG_PERIOD", "1",
        "SOLVER.CHECKPOINT_PERIOD", "1000", "TEST.EVAL_PERIOD", "0",
        "DATASETS.REGISTER_COCO_INSTANCES", f"[['data', '{json_file}', '{images}']]",
        "DATASETS.TRAIN", "('data',)", "DATASETS.TEST", "()", "OUTPUT_DIR", str(out),
        *extra,
    ]


def num_gpus(n: int) -> List[str]:
    """``--num-gpus n`` on a free port (Detectron2's default port is the same for every run of
    one user: runs of other tests or users on this machine would collide)."""
    return ["--num-gpus", str(n), "--dist-url", "auto"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cwd, args: Sequence[str], env: Optional[Dict[str, str]] = None,
          launcher: Sequence[str] = ()) -> subprocess.Popen:
    """``[launcher...] train_net.py --config-file Base-SOLO.yaml args`` in its own session,
    its output (stdout and stderr) going to a file in ``cwd`` (a pipe nobody reads while the
    test waits would fill up and stop the run): :func:`output` reads it."""
    cmd = [*launcher] if launcher else [sys.executable]
    log = tempfile.NamedTemporaryFile("w+", dir=str(cwd), prefix="train_net.", suffix=".log",
                                      delete=False)
    proc = subprocess.Popen(
        [*cmd, TRAIN_NET, "--config-file", BASE, *args],
        cwd=str(cwd), stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # a process group of its own: a hung run is killed whole
    )
    proc.log_path = log.name
    log.close()
    return proc


def output(proc: subprocess.Popen) -> str:
    with open(proc.log_path) as f:
        return f.read()


def torchrun(nproc: int) -> List[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port())]


def slurm_env(rank: int, ntasks: int, port: int, job_id: int = 4242) -> Dict[str, str]:
    """The variables srun sets for task ``rank`` of a one-machine step of ``ntasks`` tasks."""
    return {
        "SLURM_JOB_ID": str(job_id), "SLURM_JOBID": str(job_id), "SLURM_STEP_ID": "0",
        "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NODEID": "0",
        "SLURM_NTASKS": str(ntasks), "SLURM_NPROCS": str(ntasks),
        "SLURM_STEP_NUM_TASKS": str(ntasks), "SLURM_NNODES": "1", "SLURM_STEP_NUM_NODES": "1",
        "SLURM_TASKS_PER_NODE": str(ntasks), "SLURM_STEP_TASKS_PER_NODE": str(ntasks),
        "SLURM_NODELIST": "localhost", "SLURM_JOB_NODELIST": "localhost",
        "SLURM_STEP_NODELIST": "localhost", "MASTER_PORT": str(port),
        "PATH": FAKE_BIN + os.pathsep + os.environ.get("PATH", ""),
    }


def start_slurm_tasks(cwd, args: Sequence[str], ntasks: int = 2) -> List[subprocess.Popen]:
    port = free_port()
    return [start(cwd, args, env=slurm_env(r, ntasks, port)) for r in range(ntasks)]


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finish(proc: subprocess.Popen, timeout: float = 240, status: int = 0) -> str:
    """The output once the process exits with ``status`` (a tiny run takes 10-20 s)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait()
        pytest.fail(f"train_net.py did not finish in {timeout} s (hung):\n{output(proc)[-4000:]}")
    out = output(proc)
    assert proc.returncode == status, f"exit status {proc.returncode}:\n{out[-4000:]}"
    return out


def finish_all(procs: Sequence[subprocess.Popen], timeout: float = 240,
               status: int = 0) -> List[str]:
    try:
        return [finish(p, timeout, status) for p in procs]
    finally:
        for p in procs:
            kill_group(p)


def metrics(out_dir) -> List[dict]:
    path = os.path.join(str(out_dir), "metrics.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().endswith("}")]


def losses(out_dir) -> Dict[int, Dict[str, float]]:
    """{iteration: {loss_cls, loss_mask, total_loss}} from metrics.json."""
    return {r["iteration"]: {k: r[k] for k in ("loss_cls", "loss_mask", "total_loss")}
            for r in metrics(out_dir) if "loss_cls" in r}


def wait_for_iteration(out_dir, iteration: int, procs: Sequence[subprocess.Popen],
                       timeout: float = 240) -> None:
    """Until metrics.json has ``iteration`` (written after it finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.get("iteration", -1) >= iteration for r in metrics(out_dir)):
            return
        if any(p.poll() is not None for p in procs):
            outs = [output(p)[-3000:] for p in procs if p.poll() is not None]
            pytest.fail(f"the run ended before iteration {iteration}:\n" + "\n".join(outs))
        time.sleep(0.05)
    for p in procs:
        kill_group(p)
    pytest.fail(f"iteration {iteration} not reached in {timeout} s")
