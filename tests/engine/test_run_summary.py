"""The run summary, train_net.py's last line: wall time since the process started and the
training speed (the command-line test is in tests/tools/test_train_net.py)."""
import os
import subprocess
import sys
import time

import pytest
from detectron2.utils.events import EventStorage

from solo_d2.engine import run_summary as rs


def test_summary_line_states_wall_time_iterations_and_speed():
    line = rs.run_summary(581.4, 1800, [0.3, 0.36] * 900)
    assert line == ("Run finished in 9:41 of wall time since the process started (data, "
                    "training and evaluation included); 1800 iterations at 3.03 it/s "
                    "(0.330 s/it)")
    assert rs.run_summary(7.6).startswith("Run finished in 0:08 ")
    assert rs.run_summary(3723, 2, []).startswith("Run finished in 1:02:03 ")
    assert rs.run_summary(3723, 2, []).endswith("included); 2 iterations")  # none timed
    assert rs.run_summary(12.2).endswith("included)")  # --eval-only: no iterations


def test_process_start_time_is_when_the_process_started():
    # the module alone (it needs only the standard library), after 1.5 s of sleep
    load = ("import importlib.util as u, time; time.sleep(1.5); "
            f"s = u.spec_from_file_location('m', {rs.__file__!r}); m = u.module_from_spec(s); "
            "s.loader.exec_module(m); print(m.process_start_time())")
    before = time.time()
    out = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True,
                         check=True, env={**os.environ, rs.START_ENV: "1.0"})
    started = float(out.stdout)
    assert before - 0.1 <= started <= before + 1.0  # before the sleep and the import, not after
    assert abs(rs.process_start_time() - rs.process_start_time()) < 0.05  # stable


def test_spawned_processes_count_from_the_first_start(monkeypatch):
    monkeypatch.setenv(rs.START_ENV, "")  # so that the variable mark_run_start sets is undone
    monkeypatch.delenv(rs.START_ENV)
    start = rs.mark_run_start()
    assert os.environ[rs.START_ENV] == f"{os.getpid()}:{start!r}"
    assert start == pytest.approx(rs.process_start_time(), abs=0.05)
    monkeypatch.setenv(rs.START_ENV, f"{os.getppid()}:1000.5")  # set by the parent process
    assert rs.mark_run_start() == rs.run_start_time() == 1000.5
    # set further up: another run's (a command this process's parent's run started)
    other = max(os.getpid(), os.getppid()) + 1
    monkeypatch.setenv(rs.START_ENV, f"{other}:1000.5")
    assert rs.run_start_time() == pytest.approx(rs.process_start_time(), abs=0.05)
    assert rs.mark_run_start() == pytest.approx(rs.process_start_time(), abs=0.05)
    assert os.environ[rs.START_ENV].startswith(f"{os.getpid()}:")


def test_log_run_summary_reads_the_trainers_iterations_and_step_times(monkeypatch):
    class Trainer:
        start_iter, iter = 5, 12  # resumed at 5, trained up to 12

    trainer = Trainer()
    with EventStorage(5) as trainer.storage:
        for i, t in enumerate([0.5, 0.25, 0.25, 0.5]):  # IterationTimer's "time" after warm-up
            trainer.storage.iter = 8 + i
            trainer.storage.put_scalars(time=t)
    monkeypatch.setenv(rs.START_ENV, f"{os.getpid()}:{time.time() - 65!r}")
    line = rs.log_run_summary(trainer)
    assert line.startswith("Run finished in 1:05 of wall time")
    assert line.endswith("; 7 iterations at 2.67 it/s (0.375 s/it)")
