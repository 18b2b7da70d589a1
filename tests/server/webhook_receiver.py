"""A webhook receiver on 127.0.0.1 for the outbox tests: real sockets, scripted answers.

    with Receiver() as rx:                  # rx.url == "http://127.0.0.1:<port>"
        rx.fail_first = 3                   # answer 500 to the first 3 requests
        rx.status = 302                     # or answer every request with this status
        rx.wait_for(1)                      # block until one request was answered 2xx
        rx.requests                         # [Received(path, headers, body, status, at)]
        rx.stop(); rx.start()               # down for a while, then back on the same port
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testkit import SERVE_POLL_S


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    def verify(self, secret: str) -> bool:
        """What a receiver does: recompute the HMAC over the raw body, compare in constant time."""
        want = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, self.headers.get("x-deskflow-signature", ""))


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.fail_first = 0
        self.status = 200
        self.location = "http://127.0.0.1:9/elsewhere"
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            failing = sum(1 for r in self.requests if r.status >= 500) < self.fail_first
            status = 500 if failing else self.status
            self.requests.append(Received(handler.command, handler.path,
                                          {k.lower(): v for k, v in handler.headers.items()},
                                          body, status, time.monotonic()))
        handler.send_response(status)
        if 300 <= status < 400:
            handler.send_header("Location", self.location)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                receiver._answer(self)

            do_PUT = do_PATCH = do_GET = do_DELETE = do_POST

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": SERVE_POLL_S}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ok(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def wait_for(self, n: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.ok()
            if len(got) >= n:
                return got
            time.sleep(0.02)
        raise AssertionError(f"wanted {n} delivered requests, got {len(self.ok())} "
                             f"(all: {[(r.path, r.status) for r in self.requests]})")
