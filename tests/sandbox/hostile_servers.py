"""Hostile HTTP servers on 127.0.0.1 for the broker tests: real sockets, in a thread.

    with Slowloris(interval=1.0) as slow:    # slow.url; answers headers, then one body byte a second
        slow.open                            # connections it still holds (the client did not close)
    with Slowloris(mode="headers") as slow:  # the status line and headers one byte a second
    with Reflector() as echo:                # echo.url + "/?dialect=D": the Authorization token
                                             # written back in JSON dialect D (see DIALECTS)
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.parse
from typing import Any


class _Server:
    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.open = 0
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                self.open += 1
                self.accepted += 1
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.handle(conn, head.decode("latin-1"))
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.open -= 1

    def handle(self, conn: socket.socket, head: str) -> None:
        raise NotImplementedError


class Slowloris(_Server):
    """Answers, then dribbles: one byte every `interval` seconds for `total` bytes. A client whose
    timeout is per read never times out; a closed connection is seen at the next byte (EPIPE)."""

    def __init__(self, *, interval: float = 1.0, total: int = 600, mode: str = "body") -> None:
        super().__init__()
        self.interval, self.total, self.mode = interval, total, mode

    def handle(self, conn: socket.socket, head: str) -> None:
        headers = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {self.total}\r\n\r\n").encode()
        if self.mode == "body":
            conn.sendall(headers)
            dribble = b"x" * self.total
        else:
            dribble = headers + b"x" * self.total
        for i in range(len(dribble)):
            if self._stop.wait(self.interval):
                return
            conn.sendall(dribble[i:i + 1])


def _u(text: str, upper: bool = False) -> str:
    """Every character as a \\u escape (astral ones as a surrogate pair)."""
    units = text.encode("utf-16-be", "surrogatepass")
    out = "".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))
    return out.upper().replace("\\U", "\\u") if upper else out


def _mixed(text: str) -> str:
    return "".join(f"\\u{ord(c):04X}" if i % 3 == 0 and ord(c) < 0x10000 else
                   ("\\/" if c == "/" else json.dumps(c)[1:-1]) for i, c in enumerate(text))


# dialect -> how the token is written into the JSON document {"token": ...}
DIALECTS = {
    "plain": lambda t: json.dumps(t, ensure_ascii=False)[1:-1],
    "ascii": lambda t: json.dumps(t)[1:-1],
    "slash": lambda t: json.dumps(t)[1:-1].replace("/", "\\/"),
    "u-lower": lambda t: _u(t),
    "u-upper": lambda t: _u(t, upper=True),
    "mixed": _mixed,
    "urlencoded": lambda t: urllib.parse.quote(t, safe=""),
    "urlencoded-lower": lambda t: urllib.parse.quote(t, safe="").lower(),
    "base64": lambda t: base64.b64encode(b"pre:" + t.encode()).decode(),
    "base64url": lambda t: base64.urlsafe_b64encode(b"x" + t.encode()).decode(),
    "hex": lambda t: t.encode().hex(),
    "html": lambda t: "".join(f"&#x{ord(c):X};" for c in t),
}


class Reflector(_Server):
    """Writes the request's Bearer token back, in the JSON dialect the query names; also in a
    response header (`X-Echo`, URL-encoded)."""

    def handle(self, conn: socket.socket, head: str) -> None:
        line, *rest = head.split("\r\n")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(line.split(" ")[1]).query)
        token = ""
        for h in rest:
            if h.lower().startswith("authorization: bearer "):
                token = h.split(" ", 2)[2]
        dialect = query.get("dialect", ["plain"])[0]
        body = ('{"token": "' + DIALECTS[dialect](token) + '", "ok": true}').encode()
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     f"X-Echo: {urllib.parse.quote(token, safe='')}\r\nConnection: close\r\n\r\n".encode() + body)
        time.sleep(0.05)
