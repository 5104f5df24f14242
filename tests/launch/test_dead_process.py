"""A dead process does not hang the others (train_net.py as subprocesses, GLOO, a watchdog
beating every 0.5 s with a 5 s timeout):

* srun-style tasks (no common parent watches them): ``kill -9`` of rank 1 -> rank 0 exits
  with status 76 within the bound, naming rank 1; the last complete checkpoint stays usable;
* a frozen rank 1 (SIGSTOP: its sockets stay open, so no collective fails; as a machine that
  drops off the network) -> rank 0's watchdog ends it after the timeout;
* ``--num-gpus 2``: ``kill -9`` of the second process -> the launcher exits 76 naming rank 1.
"""
import os
import signal
import time

import pytest

from conftest import write_toy_coco
from launch_helpers import (
    finish,
    num_gpus,
    kill_group,
    losses,
    output,
    start,
    start_slurm_tasks,
    train_opts,
    wait_for_iteration,
)
from solo_d2.checkpoint.checkpointer import is_run_checkpoint
from solo_d2.utils.exit_status import EXIT_PEER_LOST

PERIOD, TIMEOUT = 0.5, 5.0
WATCH = ["CLUSTER.HEARTBEAT_PERIOD", str(PERIOD), "CLUSTER.DEAD_PROCESS_TIMEOUT", str(TIMEOUT),
         "SOLVER.CHECKPOINT_PERIOD", "2"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return write_toy_coco(str(root), num_images=8), str(root / "images")


def _exit_time(proc, since: float, limit: float) -> float:
    """Seconds from ``since`` until ``proc`` exits (at most ``limit``, else the test fails)."""
    try:
        proc.wait(timeout=limit)
    except Exception:
        kill_group(proc)
        pytest.fail(f"did not exit within {limit} s:\n{output(proc)[-3000:]}")
    return time.monotonic() - since


def _assert_resumable(out):
    last = (out / "last_checkpoint").read_text()
    assert is_run_checkpoint(str(out / last)), last
    assert not list(out.glob("*.incomplete"))


def _signal_srun_rank1(toy, tmp_path, sig: int, limit: float):
    """Two srun-style tasks; ``sig`` to rank 1 after iteration 3. Rank 0's seconds to exit
    (at most ``limit``), its exit status 76 asserted, its log; the checkpoint stays usable."""
    out = tmp_path / "out"
    procs = start_slurm_tasks(tmp_path, train_opts(*toy, out, iters=200, extra=WATCH))
    try:
        wait_for_iteration(out, 3, procs)
        sent = time.monotonic()
        os.kill(procs[1].pid, sig)
        took = _exit_time(procs[0], sent, limit)
    finally:
        for p in procs:
            kill_group(p)
    log = output(procs[0])
    assert procs[0].returncode == EXIT_PEER_LOST, log[-3000:]
    _assert_resumable(out)
    return took, log


def test_killed_srun_task_ends_the_others(toy, tmp_path):
    took, log = _signal_srun_rank1(toy, tmp_path, signal.SIGKILL, TIMEOUT + 2 * PERIOD + 20)
    # GLOO reports the closed connection at once; the watchdog names the rank in 3 beats
    assert took < TIMEOUT + 2 * PERIOD + 5, took
    assert "rank 1 (host " in log and "of 2 processes sent no heartbeat" in log
    assert "continue the run with --resume" in log
    print(f"kill -9 of rank 1 -> rank 0 exited after {took:.1f} s")


def test_frozen_srun_task_ends_the_others_after_the_timeout(toy, tmp_path):
    took, log = _signal_srun_rank1(toy, tmp_path, signal.SIGSTOP, TIMEOUT + 2 * PERIOD + 30)
    assert TIMEOUT - PERIOD <= took < TIMEOUT + 2 * PERIOD + 5, took
    assert f"sent no heartbeat for {TIMEOUT:.0f} s" in log
    print(f"SIGSTOP of rank 1 -> rank 0 exited after {took:.1f} s")


def test_killed_process_of_num_gpus_ends_the_launch(toy, tmp_path):
    out = tmp_path / "out"
    proc = start(tmp_path, [*num_gpus(2), *train_opts(*toy, out, iters=200, extra=WATCH)])
    try:
        wait_for_iteration(out, 3, [proc])
        # the launcher's second child is rank 1 (after a resource tracker, if any)
        children = [int(p) for p in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
        ranks = [c for c in children if "multiprocessing.spawn" in open(f"/proc/{c}/cmdline").read()]
        assert len(ranks) == 2, children
        killed = time.monotonic()
        os.kill(ranks[1], signal.SIGKILL)
        took = _exit_time(proc, killed, TIMEOUT + 2 * PERIOD + 40)
    finally:
        kill_group(proc)
    log = finish(proc, status=EXIT_PEER_LOST)
    assert f"rank 1 (pid {ranks[1]}) was killed by SIGKILL" in log
    assert took < TIMEOUT + 2 * PERIOD + 15, took
    assert max(losses(out)) >= 3
    _assert_resumable(out)
    print(f"kill -9 of rank 1 under --num-gpus -> the launcher exited after {took:.1f} s")
