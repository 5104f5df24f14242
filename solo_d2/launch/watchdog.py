"""A heartbeat between the processes of a run, so that one dead process does not leave the
others waiting on their next collective for the process group's timeout (30 minutes).

Every process runs a :class:`PeerWatchdog` thread that, every ``period`` seconds, adds 1 to
its own counter in the run's rendezvous store (torch.distributed's TCPStore). Rank 0 reads
every counter; a process whose counter has not moved for ``timeout`` seconds of rank 0's
clock (no clocks are compared across machines) is dead, killed, or its machine is gone, and
rank 0 writes that verdict into the store. Every other rank reads two keys: rank 0's counter
(rank 0 silent for ``timeout`` seconds is its own verdict) and the verdict. So the store
serves O(world size) reads per period, not one per pair of processes. When the store itself
(run by rank 0, or by torchrun's agent) cannot be reached, every process is on its own. The
watchdog then logs which rank, and ends this process with
:data:`~solo_d2.utils.exit_status.EXIT_PEER_LOST`. The thread beats while the main thread works
(training, a long evaluation on rank 0), so a busy process is never taken for dead.

When a collective fails at once (GLOO reports a peer's closed connection within a second),
the launch asks :meth:`PeerWatchdog.find_dead` which rank it was: counters are watched for a
few periods, and the ranks whose counters stand still are named.
"""
import json
import logging
import os
import socket
import sys
import threading
import time
from datetime import timedelta
from typing import Callable, Dict, List, Optional, Tuple

import torch.distributed as dist

from ..utils.exit_status import EXIT_PEER_LOST, announce

__all__ = ["PeerWatchdog"]

logger = logging.getLogger(__name__)


def _flush_logs() -> None:
    for name in (None, "detectron2", "solo_d2", "fvcore"):
        for handler in logging.getLogger(name).handlers:
            try:
                handler.flush()
            except Exception:  # a handler that cannot flush must not keep us alive
                pass
    sys.stdout.flush()
    sys.stderr.flush()


def _exit_peer_lost(message: str) -> None:
    announce(logger, message)
    _flush_logs()
    os._exit(EXIT_PEER_LOST)


def _client_of(store: dist.Store, timeout: float) -> dist.Store:
    """A connection of our own to ``store`` when it is a TCPStore (the main thread keeps using
    its own), whose requests wait at most ``timeout`` seconds; other stores (FileStore) are
    shared."""
    if isinstance(store, dist.TCPStore):
        client = store.clone()
        client.set_timeout(timedelta(seconds=timeout))
        return client
    return store


class PeerWatchdog:
    """Heartbeats of one process and the watch over the others (see the module docstring).

    Args:
        store: the run's rendezvous store (as ``torch.distributed.rendezvous`` returns it).
        rank, world_size: this process's rank and the number of processes.
        period: seconds between beats.
        timeout: seconds without a beat after which a process is dead.
        on_dead: called with the message when a peer is dead (default: log it and
            ``os._exit(EXIT_PEER_LOST)``).
    """

    def __init__(self, store: dist.Store, rank: int, world_size: int, *, period: float,
                 timeout: float, on_dead: Optional[Callable[[str], None]] = None):
        if period <= 0 or timeout <= period:
            raise ValueError(f"heartbeat period {period} s and timeout {timeout} s: need "
                             "0 < period < timeout")
        self._store = dist.PrefixStore("solo_d2/watchdog", _client_of(store, timeout))
        self._store_addr = (f"{store.host}:{store.port}" if isinstance(store, dist.TCPStore)
                            else type(store).__name__)
        self.rank, self.world_size = rank, world_size
        self.period, self.timeout = period, timeout
        self._on_dead = on_dead or _exit_peer_lost
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._keys = [f"beat/{r}" for r in range(world_size)]
        # rank 0 watches everyone and publishes the verdict; the others watch rank 0
        self.watched = list(range(world_size)) if rank == 0 else [0]
        self._seen: Dict[int, int] = {}
        self._changed: Dict[int, float] = {}
        self._hosts: Dict[int, str] = {}
        self._present: List[int] = []
        self._lock = threading.Lock()  # the thread and find_dead share one store connection

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "PeerWatchdog":
        """Beat once, publish this process's host and pid, and start the thread. Call on every
        process before the first collective that may wait on the others."""
        self._store.set(f"host/{self.rank}", f"host {socket.gethostname()}, pid {os.getpid()}")
        self._beat()
        self._thread = threading.Thread(target=self._run, name="solo_d2-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and watching (this process is leaving; the others have agreed to)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.period + 5)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # -- what the thread does ---------------------------------------------------------
    def _beat(self) -> None:
        with self._lock:
            self._store.add(self._keys[self.rank], 1)

    def _read(self, ranks: Optional[List[int]] = None) -> Dict[int, int]:
        """Counters of ``ranks`` (default: the watched ones) that have beaten at least once
        (one request once all have)."""
        ranks = self.watched if ranks is None else ranks
        with self._lock:
            if any(r not in self._present for r in ranks):
                self._present = [r for r in range(self.world_size) if r in self._present
                                 or (r in ranks and self._store.check([self._keys[r]]))]
            present = [r for r in ranks if r in self._present]
            values = self._store.multi_get([self._keys[r] for r in present]) if present else []
            return {r: int(v) for r, v in zip(present, values)}

    def _verdict(self) -> Optional[Dict]:
        """Rank 0's verdict, once it wrote one: {"ranks": [...], "silent": seconds}."""
        with self._lock:
            if not self._store.check(["verdict"]):
                return None
            return json.loads(self._store.get("verdict"))

    def _observe(self, now: float) -> Tuple[List[int], float]:
        """Update the last-change times of the watched ranks: the ranks found dead (by this
        process, or by rank 0's verdict) and for how long they were silent."""
        counters = self._read()
        for r in self.watched:
            value = counters.get(r, 0)
            if r not in self._changed or value != self._seen.get(r):
                self._seen[r], self._changed[r] = value, now
        dead = [r for r in self.watched
                if r != self.rank and now - self._changed[r] > self.timeout]
        if dead and self.rank == 0:  # the verdict for every other process
            with self._lock:
                self._store.set("verdict", json.dumps({"ranks": dead, "silent": self.timeout}))
        if not dead and self.rank != 0:
            verdict = self._verdict()
            if verdict is not None:
                return verdict["ranks"], verdict["silent"]
        return dead, self.timeout

    def _host(self, rank: int) -> str:
        if rank not in self._hosts:
            try:
                with self._lock:
                    self._hosts[rank] = self._store.get(f"host/{rank}").decode()
            except Exception:
                self._hosts[rank] = "host unknown"
        return self._hosts[rank]

    def describe(self, ranks: List[int], silent_for: float) -> str:
        who = ", ".join(f"rank {r} ({self._host(r)})" for r in ranks)
        return (f"{who} of {self.world_size} processes sent no heartbeat for {silent_for:.0f} s: "
                "it died, was killed (out of memory?), or its machine is unreachable. "
                f"Rank {self.rank} stops now; continue the run with --resume from the last "
                "complete checkpoint.")

    def _store_lost(self, error: BaseException) -> str:
        return (f"rank {self.rank}: the run's rendezvous store at {self._store_addr} (kept by "
                "rank 0's process, or by torchrun's agent on the first machine) cannot be "
                f"reached ({type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}): "
                "rank 0 (or its machine) is gone. Stopping; continue the run with --resume "
                "from the last complete checkpoint.")

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self._beat()
                dead, silent = self._observe(time.monotonic())
            except Exception as e:  # the store is gone with its host
                if not self._stop.wait(min(self.period, 2.0)):  # unless we are leaving too
                    self._on_dead(self._store_lost(e))
                return
            if dead and not self._stop.is_set():
                if self.rank == 0 and len(dead) < self.world_size - 1:
                    # the store may go with rank 0: let the live others read the verdict
                    self._stop.wait(self.period)
                self._on_dead(self.describe(dead, silent))
                return

    # -- asked by the launch when a collective failed ----------------------------------
    def find_dead(self, window: Optional[float] = None) -> Optional[str]:
        """Watch the counters for ``window`` seconds (default: 3 periods) and describe the
        ranks whose counters did not move, or the lost store; ``None`` when all are alive."""
        window = 3 * self.period if window is None else window
        everyone = list(range(self.world_size))
        try:
            start = self._read(everyone)
            time.sleep(window)
            end = self._read(everyone)
        except Exception as e:
            return self._store_lost(e)
        still = [r for r in range(self.world_size)
                 if r != self.rank and start.get(r, 0) == end.get(r, 0)]
        return self.describe(still, window) if still else None
