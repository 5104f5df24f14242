"""Weights downloads (solo_d2/checkpoint/download.py) against a real HTTP server on 127.0.0.1:
once into the cache, verified by the name's SHA-256 prefix, one error line and nothing left
behind on failure, one download for several processes, progress on and off a terminal."""
import hashlib
import os
import pty
import re
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import ROOT, capture_logs
from solo_d2.checkpoint.download import MIRROR_ENV, WeightsDownloadError, cached_path, fetch
from weights_server import WeightsServer, files_left_in, refused_url, sha256_name


@pytest.fixture
def server():
    with WeightsServer() as s:
        yield s


def _blob(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def test_downloaded_once_verified_into_the_cache(weights_cache, server):
    data = _blob(3 << 20)
    name = sha256_name("weights/blob_20240101", data)
    url = server.add("/" + name, data)
    path = fetch(url)
    assert path == str(weights_cache / name) == cached_path(url)  # iopath's layout: <cache>/<URL path>
    assert open(path, "rb").read() == data
    assert fetch(url) == path
    assert server.requests["/" + name] == 1
    assert files_left_in(weights_cache) == [name]


def test_a_file_dropped_into_the_cache_or_torch_hub_is_used_offline(weights_cache, tmp_path):
    url = refused_url("/models/resnet18-f37072fd.pth")  # nothing listens there
    dropped = weights_cache / "models" / "resnet18-f37072fd.pth"
    dropped.parent.mkdir(parents=True)
    dropped.write_bytes(b"weights")
    assert fetch(url) == str(dropped)
    dropped.unlink()
    hub = tmp_path / "torch_home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"weights")
    assert fetch(url) == str(hub)


def _wrong_hash(server, data):
    return server.add("/m/solo_20210821-" + "0" * 8 + ".pth", data)


def _missing(server, data):
    return server.url("/m/solo_20210821-2290a6b8.pth")


def _cut(server, data):
    return server.add("/m/" + sha256_name("solo_20210821", data), data, mode="cut")


def _refused(server, data):
    return refused_url("/m/" + sha256_name("solo_20210821", data))


FAILURES = {
    "wrong_hash": (_wrong_hash, r"SHA-256 starts with [0-9a-f]{8}, its name says 00000000"),
    "404": (_missing, r"HTTP 404 Not Found"),
    "cut_off": (_cut, r"the download stopped after 1048576 of 2097152 bytes"),
    "refused": (_refused, r"cannot connect \(.*Connection refused"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_each_failure_is_one_line_and_leaves_nothing(case, weights_cache, server):
    make_url, what = FAILURES[case]
    data = _blob(2 << 20)
    url = make_url(server, data)
    with pytest.raises(WeightsDownloadError) as e:
        fetch(url)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"cannot download {url}: "), msg
    assert re.search(what, msg), msg
    # the manual way out: the file's path as MODEL.WEIGHTS, or where to put it
    assert msg.endswith(f"Download it yourself and pass the file's path as MODEL.WEIGHTS, or "
                        f"save it as {cached_path(url)}"), msg
    assert files_left_in(weights_cache) == []


def test_mirror_serves_the_url_and_the_cache_keeps_the_original_layout(weights_cache, server,
                                                                       monkeypatch):
    data = _blob(1 << 20)
    name = sha256_name("resnet_x", data)
    server.add(f"/download.example.org/models/{name}", data)
    monkeypatch.setenv(MIRROR_ENV, server.base + "/")
    url = f"https://download.example.org/models/{name}"
    path = fetch(url)
    assert path == str(weights_cache / "models" / name)
    assert server.requests[f"/download.example.org/models/{name}"] == 1
    server.files.clear()
    with pytest.raises(WeightsDownloadError, match=re.escape(
            f"cannot download https://download.example.org/models/x-00000000.pth (from the mirror "
            f"{server.base}/download.example.org/models/x-00000000.pth): HTTP 404")):
        fetch("https://download.example.org/models/x-00000000.pth")


def test_progress_is_a_log_line_per_5_percent_off_a_terminal(weights_cache, server, caplog):
    data = _blob(8 << 20)
    url = server.add("/" + sha256_name("big", data), data)
    with capture_logs(caplog, "solo_d2.checkpoint.download"):
        fetch(url)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith(f"Downloading {url} to ")
    pct = [int(m.group(1)) for m in (re.search(r": (\d+)% \(", x) for x in lines) if m]
    # 1 MiB reads of 8 MiB: every read crosses the next 5 % mark
    assert pct == [12, 25, 37, 50, 62, 75, 87, 100], lines
    assert re.search(r"100% \(8\.0 of 8\.0 MiB, [\d.]+ MiB/s\)", lines[-2]), lines
    assert re.match(r"Downloaded big-[0-9a-f]{8}\.pth: 8\.0 MiB in [\d.]+ s, SHA-256 "
                    r"[0-9a-f]{8}\.\.\. verified", lines[-1]), lines


def test_progress_bar_with_size_and_speed_on_a_terminal(weights_cache, server):
    data = _blob(4 << 20)
    url = server.add("/" + sha256_name("tty", data), data, mode="slow", delay=0.005)
    script = f"from solo_d2.checkpoint.download import fetch; fetch({url!r})"
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=child, stdout=child,
                            stderr=child, env={**os.environ, "PYTHONPATH": ROOT})
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=120) == 0, out.decode(errors="replace")[-2000:]
    text = out.decode(errors="replace")
    # tqdm's bar: "<name>: 100%|...| 4.00M/4.00M [00:01<00:00, 3.1MB/s]"
    assert re.search(r"tty-[0-9a-f]{8}\.pth: 100%\|.*\| 4\.00M/4\.00M \[[\d:]+<[\d:]+, "
                     r"[\d.]+[kMG]?B/s\]", text), text[-2000:]


def test_two_processes_at_once_download_once(weights_cache, server, tmp_path):
    """Two processes (two GPUs of one run, or two machines sharing the cache folder) ask for
    the same file at the same moment: one downloads, the other waits and reads the whole file."""
    data = _blob(2 << 20)
    name = sha256_name("shared", data)
    url = server.add("/" + name, data, mode="slow", delay=0.03)  # ~1 s of body
    script = textwrap.dedent(f"""
        import hashlib, os, sys, time
        from solo_d2.checkpoint.download import fetch
        me, other = sys.argv[1], sys.argv[2]
        open(me, "w").close()
        while not os.path.exists(other):  # both imported: start together
            time.sleep(0.01)
        path = fetch({url!r})
        print(path, hashlib.sha256(open(path, "rb").read()).hexdigest())
    """)
    a, b = str(tmp_path / "ready_a"), str(tmp_path / "ready_b")
    env = {**os.environ, "PYTHONPATH": ROOT}
    procs = [subprocess.Popen([sys.executable, "-c", script, x, y], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for x, y in ((a, b), (b, a))]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    lines = {out.strip() for out, _ in outs}
    assert lines == {f"{weights_cache / name} {hashlib.sha256(data).hexdigest()}"}
    assert server.requests["/" + name] == 1
    assert files_left_in(weights_cache) == [name]


def test_a_file_in_the_cache_is_never_partial_while_downloading(weights_cache, server):
    """While the body arrives, only ``<file>.part`` exists; the name appears whole."""
    data = _blob(1 << 20)
    name = sha256_name("growing", data)
    url = server.add("/" + name, data, mode="slow", delay=0.05)
    import threading

    seen = []
    t = threading.Thread(target=fetch, args=(url,))
    t.start()
    while t.is_alive():
        if os.path.exists(weights_cache / name):
            seen.append(os.path.getsize(weights_cache / name))
        time.sleep(0.01)
    t.join()
    assert all(s == len(data) for s in seen)
    assert open(weights_cache / name, "rb").read() == data


def test_a_file_url_mirror_serves_an_offline_cluster(weights_cache, tmp_path, monkeypatch):
    """SOLO_D2_WEIGHTS_MIRROR may be a shared folder laid out as <host>/<URL path>."""
    data = _blob(1 << 20)
    name = sha256_name("resnet_y", data)
    mirrored = tmp_path / "mirror" / "download.pytorch.org" / "models" / name
    mirrored.parent.mkdir(parents=True)
    mirrored.write_bytes(data)
    monkeypatch.setenv(MIRROR_ENV, (tmp_path / "mirror").as_uri())
    path = fetch(f"https://download.pytorch.org/models/{name}")
    assert path == str(weights_cache / "models" / name) and open(path, "rb").read() == data
