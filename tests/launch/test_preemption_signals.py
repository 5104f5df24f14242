"""solo_d2.launch.preemption_signals: a preemption signal sent to a whole process group (as
schedulers send it) is noted by the training process, and the data workers of a loader made
to spare them (fork or spawn, through a real DataLoader) ignore it instead of dying of it."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from solo_d2.launch.preemption_signals import parse_signals

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    import torch.utils.data as data
    from solo_d2.launch.preemption_signals import PreemptionSignals, spare_workers

    class Slow(data.Dataset):
        def __len__(self):
            return 1000
        def __getitem__(self, i):
            time.sleep(0.05)
            return os.getpid()

    if __name__ == "__main__":
        method = sys.argv[1]
        catcher = PreemptionSignals(["SIGTERM", "SIGUSR1"])
        assert catcher.catch()
        loader = spare_workers(data.DataLoader(Slow(), num_workers=2, batch_size=None,
                                               multiprocessing_context=method),
                               ["SIGTERM", "SIGUSR1"])
        it = iter(loader)
        workers = {next(it) for _ in range(6)}
        os.killpg(os.getpgid(0), signal.SIGTERM)   # the whole group, as a scheduler
        os.killpg(os.getpgid(0), signal.SIGUSR1)
        time.sleep(1.0)
        more = [next(it) for _ in range(6)]        # the workers still deliver
        catcher.release(ignore_further=True)
        os.kill(os.getpid(), signal.SIGTERM)       # ignored from now on
        time.sleep(0.2)
        print("RESULT", sorted(catcher.received), len(workers), len(more), flush=True)
        # no longer caught: the workers end on SIGTERM again (as multiprocessing's exit
        # handler and torch's loader stop them)
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline and any(os.path.exists(f"/proc/{p}/status") and
                                              "zombie" not in open(f"/proc/{p}/status").read()
                                              for p in workers):
            time.sleep(0.1)
        print("WORKERS ENDED", time.time() < deadline, flush=True)
""")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_group_signal_is_noted_and_spares_the_data_workers(tmp_path, method):
    script = tmp_path / "catch.py"
    script.write_text(SCRIPT)
    r = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True,
                       timeout=120, start_new_session=True, cwd=str(tmp_path), env=os.environ)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "RESULT ['SIGTERM', 'SIGUSR1'] 2 6" in r.stdout, r.stdout + r.stderr[-2000:]
    assert "WORKERS ENDED True" in r.stdout, r.stdout + r.stderr[-2000:]


def test_unknown_signal_names_are_refused():
    assert parse_signals(["sigterm", "SIGUSR1"]) == [signal.SIGTERM, signal.SIGUSR1]
    for bad in ("SIGKILL", "SIGNOPE"):
        with pytest.raises(ValueError, match="CLUSTER.PREEMPT_SIGNALS"):
            parse_signals([bad])
