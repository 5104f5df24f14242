"""A real HTTP server on 127.0.0.1, in a thread, for the weights-download tests: it serves
files from memory, counts the requests per path, and can cut a body short or send it slowly."""
import collections
import hashlib
import http.server
import socket
import os
import threading
import time
from typing import Dict, List, Tuple


def sha256_name(stem: str, data: bytes, ext: str = ".pth") -> str:
    """``<stem>-<first 8 hex digits of the SHA-256>.pth``: mmdet's and torchvision's naming."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}{ext}"


def files_left_in(root) -> List[str]:
    """Files under ``root`` (relative, sorted) but empty ``.lock`` files: iopath's file locks
    stay, as Detectron2's own downloads leave them."""
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if not (f.endswith(".lock") and os.path.getsize(p) == 0):
                out.append(os.path.relpath(p, root))
    return sorted(out)


def refused_url(path: str = "/x-00000000.pth") -> str:
    """A URL on 127.0.0.1 where nothing listens (the connection is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


class WeightsServer:
    """``with WeightsServer() as server: server.add("/a/b.pth", data); server.url("/a/b.pth")``.

    Modes of a file: "ok"; "cut" (announces the full Content-Length, sends half, closes);
    "slow" (the body in 64 KiB pieces, ``delay`` seconds apart). ``requests[path]`` counts GETs.
    """

    def __init__(self) -> None:
        self.files: Dict[str, Tuple[bytes, str, float]] = {}
        self.requests: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with server._lock:
                    server.requests[self.path] += 1
                if self.path not in server.files:
                    self.send_error(404, "Not Found")
                    return
                data, mode, delay = server.files[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "cut":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                step = 1 << 16 if mode == "slow" else len(data)
                for i in range(0, len(data), step):
                    self.wfile.write(data[i:i + step])
                    if mode == "slow":
                        time.sleep(delay)

            def log_message(self, *args) -> None:  # quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, data: bytes, mode: str = "ok", delay: float = 0.0) -> str:
        """Serve ``data`` at ``path``; returns its URL."""
        assert mode in ("ok", "cut", "slow"), mode
        self.files[path] = (data, mode, delay)
        return self.url(path)

    def __enter__(self) -> "WeightsServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
