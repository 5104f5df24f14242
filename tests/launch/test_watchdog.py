"""solo_d2.launch.watchdog.PeerWatchdog on a real TCPStore: a process that stops beating is
named within the timeout, a live one never is, and a store that goes away (with rank 0) is
noticed. (The launches that use it are tested in test_dead_process.py.)"""
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import torch.distributed as dist

from launch_helpers import free_port
from solo_d2.launch.watchdog import PeerWatchdog


class _Verdicts:
    def __init__(self):
        self.messages, self.times = [], []
        self.event = threading.Event()

    def __call__(self, message):
        self.messages.append(message)
        self.times.append(time.monotonic())
        self.event.set()


def _store(port, master):
    return dist.TCPStore("127.0.0.1", port, 2 if master else None, is_master=master,
                         timeout=timedelta(seconds=10), wait_for_workers=False)


def test_a_silent_process_is_named_within_the_timeout_and_live_ones_never():
    port = free_port()
    master = _store(port, True)
    verdicts = _Verdicts()
    w0 = PeerWatchdog(master, 0, 2, period=0.1, timeout=1.0, on_dead=verdicts).start()
    w1 = PeerWatchdog(_store(port, False), 1, 2, period=0.1, timeout=1.0,
                      on_dead=verdicts).start()
    try:
        time.sleep(2.0)  # twice the timeout with both beating: no verdict
        assert verdicts.messages == []
        assert w0.find_dead(window=0.5) is None
        stopped = time.monotonic()
        w1.stop()  # rank 1 falls silent (as a killed or frozen process)
        assert verdicts.event.wait(5.0), "rank 1's silence was not noticed"
        took = verdicts.times[0] - stopped
        # silent for the timeout, counted from its last beat (up to one period before the
        # stop) and seen at the next check (up to a period later), plus scheduling slack
        assert 1.0 - 0.1 - 0.05 <= took <= 1.0 + 2 * 0.1 + 0.3, took
        assert verdicts.messages[0].startswith("rank 1 (host ")
        assert "of 2 processes sent no heartbeat" in verdicts.messages[0]
        assert "--resume" in verdicts.messages[0]
        assert "rank 1" in w0.find_dead(window=0.3)
    finally:
        w0.stop()
        w1.stop()


def test_rank_0_watches_everyone_and_tells_the_others():
    # three processes: rank 0 reads every counter, ranks 1 and 2 read only rank 0's and the
    # verdict (reads per period grow with the world size, not with its square)
    port = free_port()
    stores = [dist.TCPStore("127.0.0.1", port, 3 if r == 0 else None, is_master=r == 0,
                            timeout=timedelta(seconds=10), wait_for_workers=False)
              for r in range(3)]
    verdicts = [_Verdicts() for _ in range(3)]
    dogs = [PeerWatchdog(stores[r], r, 3, period=0.1, timeout=1.0, on_dead=verdicts[r]).start()
            for r in range(3)]
    try:
        assert [d.watched for d in dogs] == [[0, 1, 2], [0], [0]]
        time.sleep(1.5)
        assert all(v.messages == [] for v in verdicts)
        stopped = time.monotonic()
        dogs[2].stop()  # rank 2 falls silent
        assert verdicts[1].event.wait(5.0), "rank 1 was not told of rank 2's silence"
        # rank 0's verdict (as in the two-process test), read by rank 1 a period later
        took = verdicts[1].times[0] - stopped
        assert 1.0 - 0.1 - 0.05 <= took <= 1.0 + 3 * 0.1 + 0.3, took
        assert verdicts[1].messages[0].startswith("rank 2 (host ")
        assert "Rank 1 stops now" in verdicts[1].messages[0]
        assert verdicts[0].event.wait(5.0)  # rank 0 waits a period for the others to read
        assert verdicts[0].messages[0].startswith("rank 2 (host ")
    finally:
        for d in dogs:
            d.stop()


def test_losing_the_store_with_rank_0_is_noticed():
    port = free_port()
    # the store's server in another process, as rank 0 keeps it
    server = subprocess.Popen([sys.executable, "-c", (
        "import time, datetime, torch.distributed as d;"
        f"s = d.TCPStore('127.0.0.1', {port}, 2, True, datetime.timedelta(seconds=30), False);"
        "time.sleep(60)")])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = _store(port, False)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        verdicts = _Verdicts()
        w1 = PeerWatchdog(client, 1, 2, period=0.1, timeout=30.0, on_dead=verdicts).start()
        server.kill()
        server.wait()
        assert verdicts.event.wait(10.0), "the lost store was not noticed"
        assert "cannot be reached" in verdicts.messages[0]
        assert "rank 0 (or its machine) is gone" in verdicts.messages[0]
        w1.stop()
    finally:
        server.kill()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="0 < period < timeout"):
        PeerWatchdog(dist.HashStore(), 0, 1, period=5.0, timeout=5.0)
