"""Helpers every test directory shares: a free port, and waiting with a deadline instead of a sleep.

tests/ is on sys.path (its conftest.py is in a folder that is no package), so any test module can
`from testkit import free_port, wait_until, wait_for_port`. They are safe under pytest-xdist:
a port comes from the kernel (bind to port 0), never from a number a test picked.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick, so two concurrent
    tests do not get the same one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port(taken: set[int] | frozenset[int] = frozenset()) -> int:
    """A free port whose cluster bus port (+10000) is free and valid too: an ephemeral port above
    55535 would put the bus past 65535 and redis-server would refuse to start."""
    rnd = random.Random()
    while True:
        port = rnd.randrange(20000, 30000)
        if port in taken or port + 10000 in taken:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue


def wait_until(fetch: Callable[[], T], ok: Callable[[T], bool] = bool, *, timeout: float = 10.0,
               interval: float = 0.02, what: str = "the condition") -> T:
    """Call `fetch` until `ok(value)`; return that value. Fails (AssertionError naming `what` and
    the last value) after `timeout` seconds. The wait is as short as the behaviour allows."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {timeout} s; last: {value!r}"
        time.sleep(interval)


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 30.0,
                  alive: Callable[[], bool] | None = None, what: str = "the server") -> None:
    """Return once `host:port` accepts a TCP connection. `alive` (e.g. `lambda: proc.poll() is
    None`) is checked on every try, so a server that died fails at once, not at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            pass
        assert alive is None or alive(), f"{what} exited before it listened on {host}:{port}"
        assert time.monotonic() < deadline, f"{what} did not listen on {host}:{port} within {timeout} s"
        time.sleep(0.02)
