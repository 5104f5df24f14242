"""Weights files downloaded once into a shared cache: verified, whole or not at all.

* **Where.** ``<cache>/<URL path>``, iopath's layout for Detectron2's downloads, with
  ``<cache>`` iopath's ``get_cache_dir()``: ``$FVCORE_CACHE``, default ``~/.torch/iopath_cache``.
  A file already there is used as it is: that is where to drop a file for a machine without
  network (:func:`cached_path` says where). torch.hub's own cache
  (``$TORCH_HOME/hub/checkpoints/<file name>``, where torchvision and mmdet download to) is
  looked at too.
* **From where.** The URL itself, or ``$SOLO_D2_WEIGHTS_MIRROR/<host>/<URL path>`` when that
  variable names a mirror (a server inside a cluster, any ``http(s)://`` or ``file://`` base).
* **Integrity.** A name ending in ``-<hex>.<ext>`` (mmdet's and torchvision's, torch.hub's
  convention) gives the first hex digits of the file's SHA-256; the download must match them.
  The body goes to ``<file>.part`` and is renamed to ``<file>`` only when whole and verified,
  so no reader ever sees a partial file and a failed download leaves none behind.
* **Several processes** (``--num-gpus N``, machines sharing the cache folder) take a file
  lock (iopath's ``file_lock``) around the download: one downloads, the others wait and find
  the file.
* **Progress**: a bar with size and speed on a terminal (tqdm), else a log line every 5 %.

Every failure is one :class:`WeightsDownloadError` line naming the URL, what went wrong and
the manual way out.
"""
import hashlib
import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from typing import List, Optional
from urllib.parse import urlparse

from iopath.common.file_io import file_lock, get_cache_dir

__all__ = [
    "MIRROR_ENV",
    "WeightsDownloadError",
    "cached_path",
    "expected_hash_prefix",
    "fetch",
    "local_copies",
    "source_url",
]

logger = logging.getLogger(__name__)

MIRROR_ENV = "SOLO_D2_WEIGHTS_MIRROR"
_HASH_RE = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0  # seconds without a byte before a download is given up
_PART = ".part"


class WeightsDownloadError(RuntimeError):
    """A weights file could not be downloaded whole and verified (one line, naming the URL)."""


def cached_path(url: str, cache_dir: Optional[str] = None) -> str:
    """Where the file of ``url`` is kept: ``<cache>/<URL path>`` (iopath's layout)."""
    path = urlparse(url).path.lstrip("/")
    if not path or path.endswith("/"):
        raise WeightsDownloadError(f"{url}: the URL names no file")
    return os.path.join(get_cache_dir(cache_dir), path)


def local_copies(url: str, cache_dir: Optional[str] = None) -> List[str]:
    """Where a copy of ``url``'s file is looked for, in order: the cache, torch.hub's cache."""
    import torch.hub

    name = os.path.basename(urlparse(url).path)
    return [cached_path(url, cache_dir), os.path.join(torch.hub.get_dir(), "checkpoints", name)]


def source_url(url: str) -> str:
    """The URL to fetch: ``url``, or its mirror ``$SOLO_D2_WEIGHTS_MIRROR/<host>/<path>``."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    u = urlparse(url)
    return f"{mirror.rstrip('/')}/{u.netloc}{u.path}"


def expected_hash_prefix(url: str) -> Optional[str]:
    """The SHA-256 prefix a file name carries (``resnet50-0676ba61.pth`` -> ``0676ba61``)."""
    m = _HASH_RE.search(os.path.basename(urlparse(url).path))
    return m.group(1) if m else None


def fetch(url: str, cache_dir: Optional[str] = None) -> str:
    """The local path of ``url``'s file: a copy found by :func:`local_copies`, else downloaded
    (once, under a file lock) into :func:`cached_path`.

    Raises:
        WeightsDownloadError: HTTP error, no connection, a body cut short, or a SHA-256 that
            does not match the name's prefix; nothing is left under the file's name.
    """
    for path in local_copies(url, cache_dir):
        if os.path.isfile(path):
            return path
    dst = cached_path(url, cache_dir)
    with file_lock(dst):
        if not os.path.isfile(dst):  # another process may have finished it while we waited
            _download(url, dst)
    return dst


class _Progress:
    """A tqdm bar on a terminal; otherwise a log line at every 5 % (every 16 MiB when the size
    is unknown)."""

    def __init__(self, name: str, total: Optional[int]):
        self.name, self.total = name, total
        self.start = time.perf_counter()
        self.next_report = 0
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            try:  # a terminal that reports no size (a fresh pty) would get no bar at all
                size = os.get_terminal_size(sys.stderr.fileno())
                cols, rows = size.columns or 80, size.lines or 24
            except OSError:
                cols, rows = 80, 24
            self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=name, file=sys.stderr, ncols=cols, nrows=rows)

    def update(self, done: int, delta: int) -> None:
        if self.bar is not None:
            self.bar.update(delta)
            return
        if done < self.next_report:
            return
        speed = done / max(time.perf_counter() - self.start, 1e-6) / 2**20
        if self.total:
            pct = 100 * done // self.total
            logger.info(f"{self.name}: {pct}% ({done / 2**20:.1f} of {self.total / 2**20:.1f} "
                        f"MiB, {speed:.1f} MiB/s)")
            self.next_report = (pct // 5 + 1) * 5 * self.total // 100
        else:
            logger.info(f"{self.name}: {done / 2**20:.1f} MiB ({speed:.1f} MiB/s)")
            self.next_report = done + 16 * 2**20

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fail(url: str, dst: str, what: str) -> WeightsDownloadError:
    src = source_url(url)
    via = f" (from the mirror {src})" if src != url else ""
    return WeightsDownloadError(
        f"cannot download {url}{via}: {what}. Download it yourself and pass the file's path "
        f"as MODEL.WEIGHTS, or save it as {dst}"
    )


def _receive(src: str, part: str, name: str) -> tuple:
    """Stream ``src`` into ``part``; (bytes received, Content-Length or None, sha256 hex)."""
    request = urllib.request.Request(src, headers={"User-Agent": "solo_d2"})
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        progress = _Progress(name, total)
        sha, done = hashlib.sha256(), 0
        try:
            with open(part, "wb") as f:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    sha.update(chunk)
                    done += len(chunk)
                    progress.update(done, len(chunk))
                f.flush()
                os.fsync(f.fileno())
        except http.client.IncompleteRead as e:
            done += len(e.partial)
            total = total if total is not None else done + (e.expected or 0)
        finally:
            progress.close()
    return done, total, sha.hexdigest()


def _download(url: str, dst: str) -> None:
    """Download ``url`` to ``dst`` through ``dst.part``; verified before the rename."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    part = dst + _PART
    name = os.path.basename(dst)
    src = source_url(url)
    logger.info(f"Downloading {src} to {dst}")
    start = time.perf_counter()
    try:
        try:
            done, total, digest = _receive(src, part, name)
        except urllib.error.HTTPError as e:
            raise _fail(url, dst, f"HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            raise _fail(url, dst, f"cannot connect ({e.reason})") from None
        except (OSError, http.client.HTTPException) as e:  # reset, timeout mid-body, ...
            raise _fail(url, dst, f"the download failed ({type(e).__name__}: {e})") from None
        if total is not None and done != total:
            raise _fail(url, dst, f"the download stopped after {done} of {total} bytes; nothing "
                        "was kept")
        expected = expected_hash_prefix(url)
        if expected is not None and not digest.startswith(expected):
            raise _fail(url, dst, f"the downloaded file's SHA-256 starts with "
                        f"{digest[:len(expected)]}, its name says {expected} (corrupt or "
                        "altered); nothing was kept")
        os.replace(part, dst)
    finally:
        if os.path.exists(part):
            os.remove(part)
    check = f"SHA-256 {digest[:8]}... verified" if expected else "no hash in the name to verify"
    logger.info(f"Downloaded {name}: {done / 2**20:.1f} MiB in {time.perf_counter() - start:.1f} "
                f"s, {check}")
