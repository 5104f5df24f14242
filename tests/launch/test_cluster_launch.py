"""Launching train_net.py the way clusters do, as subprocesses on the CPU (GLOO):

* ``torchrun --nproc_per_node 2`` and two tasks with the variables ``srun`` sets are one
  2-process training each, with the per-iteration losses and final weights of
  ``--num-gpus 2`` (measured: bit for bit);
* Detectron2's ``comm`` (rank, machine-local rank and size) is set up under both, also for
  srun tasks on 2 "machines";
* ``--num-gpus`` that disagrees with torchrun's processes is a one-line error;
* SIGTERM to every process of a ``--num-gpus 2`` run (data workers included) at a random
  iteration: exit status 75, a checkpoint of the iteration the processes were in, and
  ``--resume`` reaches the final weights and losses of an uninterrupted run (the training
  sampler continues where it stopped);
* SIGUSR1 (SLURM's warning) to one task only: both stop after the same iteration.
"""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from conftest import write_toy_coco
from launch_helpers import (
    free_port,
    finish,
    num_gpus,
    finish_all,
    losses,
    slurm_env,
    start,
    start_slurm_tasks,
    torchrun,
    train_opts,
    wait_for_iteration,
)
from solo_d2.checkpoint.checkpointer import is_run_checkpoint
from solo_d2.utils.exit_status import EXIT_PREEMPTED

ITERS = 8


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return write_toy_coco(str(root), num_images=8), str(root / "images")


@pytest.fixture(scope="module")
def reference(toy, tmp_path_factory):
    """An uninterrupted ``--num-gpus 2`` run: its output folder."""
    cwd = tmp_path_factory.mktemp("reference")
    finish(start(cwd, [*num_gpus(2), *train_opts(*toy, cwd / "out", iters=ITERS)]))
    return cwd / "out"


def _weights(out_dir):
    return torch.load(os.path.join(str(out_dir), "model_final.pth"), weights_only=True)["model"]


def _assert_same_run(out_dir, reference):
    assert losses(out_dir) == losses(reference)  # every iteration, every loss, exactly
    assert sorted(losses(reference)) == list(range(ITERS))
    a, b = _weights(out_dir), _weights(reference)
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0.0


def test_torchrun_is_one_training_like_num_gpus(toy, reference, tmp_path):
    log = finish(start(tmp_path, train_opts(*toy, tmp_path / "out", iters=ITERS),
                       launcher=torchrun(2)))
    assert "World size: 2" in log  # Detectron2's default_setup, on rank 0
    _assert_same_run(tmp_path / "out", reference)


def test_srun_tasks_are_one_training_like_num_gpus(toy, reference, tmp_path):
    finish_all(start_slurm_tasks(tmp_path, train_opts(*toy, tmp_path / "out", iters=ITERS)))
    _assert_same_run(tmp_path / "out", reference)


PLACES = textwrap.dedent("""
    import json, sys
    from detectron2.utils import comm
    from solo_d2.engine import launch

    def main(prefix):
        with open(f"{prefix}.{comm.get_rank()}", "w") as f:
            json.dump([comm.get_rank(), comm.get_world_size(), comm.get_local_rank(),
                       comm.get_local_size()], f)

    if __name__ == "__main__":
        launch(main, 1, args=(sys.argv[1],), device="cpu")
""")


def _places(prefix, n):
    return [json.load(open(f"{prefix}.{r}")) for r in range(n)]


def test_detectron2_comm_knows_each_process_place(tmp_path):
    script = tmp_path / "places.py"
    script.write_text(PLACES)
    run = dict(cwd=str(tmp_path), capture_output=True, text=True, timeout=240)
    r = subprocess.run([*torchrun(2), str(script), str(tmp_path / "torchrun")], **run)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _places(tmp_path / "torchrun", 2) == [[0, 2, 0, 2], [1, 2, 1, 2]]
    # 2 srun tasks, one per machine (both "machines" are this one)
    port, procs = free_port(), []
    for rank in range(2):
        env = {**os.environ, **slurm_env(rank, 2, port), "SLURM_LOCALID": "0",
               "SLURM_NODEID": str(rank), "SLURM_NNODES": "2",
               "SLURM_STEP_TASKS_PER_NODE": "1(x2)", "SLURM_TASKS_PER_NODE": "1(x2)",
               "SLURM_STEP_NODELIST": "localhost,localhost"}
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path / "srun")],
                                      env=env, cwd=str(tmp_path)))
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    assert _places(tmp_path / "srun", 2) == [[0, 2, 0, 1], [1, 2, 0, 1]]


def test_num_gpus_disagreeing_with_torchrun_is_an_error(toy, tmp_path):
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}
    log = finish(start(tmp_path, ["--num-gpus", "4", *train_opts(*toy, tmp_path, iters=1)],
                       env=env), status=2)
    assert ("solo_d2 launch: error: --num-gpus 4, but torchrun started this run with 2 "
            "processes on this machine") in log
    assert "leave --num-gpus out (or give 2)" in log
    # under srun, the same
    log = finish(start(tmp_path, ["--num-gpus", "3", *train_opts(*toy, tmp_path, iters=1)],
                       env=slurm_env(0, 2, 29999)), status=2)
    assert "--num-gpus 3, but slurm started this run with 2 processes" in log


def test_sigterm_stops_with_a_checkpoint_and_resume_finishes_the_same_run(toy, reference,
                                                                          tmp_path):
    out = tmp_path / "out"
    at = random.randint(1, ITERS - 4)
    # with a data worker per process: the signal goes to every process of the group, as
    # schedulers send it, and must not kill the workers mid-iteration
    args = [*num_gpus(2), *train_opts(*toy, out, iters=ITERS,
                                      extra=["DATALOADER.NUM_WORKERS", "1"])]
    proc = start(tmp_path, args)
    wait_for_iteration(out, at, [proc])
    signalled = time.time()
    os.killpg(proc.pid, signal.SIGTERM)
    log = finish(proc, status=EXIT_PREEMPTED)
    exited = time.time()
    stopped = max(losses(out))
    assert at <= stopped <= at + 3, (at, stopped)  # the iteration the processes were in
    name = f"model_{stopped:07d}.pth"
    assert (out / "last_checkpoint").read_text() == name
    assert is_run_checkpoint(str(out / name))
    ckpt = torch.load(out / name, weights_only=True)
    assert ckpt["iteration"] == stopped and ckpt["trainer"]["iteration"] == stopped
    assert "LRScheduler" in ckpt["trainer"]["hooks"]  # the scheduler's state
    assert f"Preempted (SIGTERM): iteration {stopped} is in {out / name}" in log
    print(f"SIGTERM to the process group of --num-gpus 2 (1 data worker each) -> checkpoint "
          f"on disk after {os.path.getmtime(out / name) - signalled:.1f} s, exit 75 after "
          f"{exited - signalled:.1f} s")
    assert "killed by signal" not in log and "exited unexpectedly" not in log

    # resumed without data workers (they change nothing in the data order; this saves their
    # start-up), as the reference ran
    log = finish(start(tmp_path, ["--resume", *num_gpus(2),
                                  *train_opts(*toy, out, iters=ITERS)]))
    assert f"Starting training from iteration {stopped + 1}" in log
    _assert_same_run(out, reference)


def test_a_signal_to_one_srun_task_stops_both_after_the_same_iteration(toy, tmp_path):
    out = tmp_path / "out"
    procs = start_slurm_tasks(tmp_path, train_opts(*toy, out, iters=40))
    wait_for_iteration(out, 2, procs)
    signalled = time.monotonic()
    procs[1].send_signal(signal.SIGUSR1)  # SLURM's warning signal, to rank 1 alone
    logs = finish_all(procs, status=EXIT_PREEMPTED)
    print(f"SIGUSR1 to srun task 1 -> both exited 75 after {time.monotonic() - signalled:.1f} s")
    stopped = max(losses(out))
    assert stopped < 39
    assert (out / "last_checkpoint").read_text() == f"model_{stopped:07d}.pth"
    # rank 0 never got the signal but stopped after the same iteration and wrote it
    assert f"Preempted (a signal to another process): iteration {stopped}" in logs[0]
