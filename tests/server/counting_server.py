"""A tiny HTTP server on 127.0.0.1 that counts what it receives (and can answer slowly).

    with CountingServer(delay=5.0) as srv:   # srv.url == "http://127.0.0.1:<port>"
        srv.hits("/script")                   # bodies received on that path, in order

A slow answer waits `delay` seconds or until the `with` block ends, whichever is first: leaving it
answers the calls still waiting at once (and refuses new ones), so a worker draining at the test's
end does not sit out the delay of every call in flight (4.5 s of test_lanes' teardown).
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testkit import SERVE_POLL_S


class CountingServer:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._closing = threading.Event()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def hits(self, path: str) -> list[bytes]:
        with self._lock:
            return [body for p, body in self.received if p.split("?")[0] == path]

    def __enter__(self) -> CountingServer:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with srv._lock:
                    srv.received.append((self.path, body))
                if srv.delay:
                    srv._closing.wait(srv.delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_PUT = do_POST

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever,
                         kwargs={"poll_interval": SERVE_POLL_S}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
