"""Helpers every test directory shares: a free port, and waiting with a deadline instead of a sleep.

tests/ is on sys.path (its conftest.py is in a folder that is no package), so any test module can
`from testkit import free_port, wait_until, wait_for_port`. They are safe under pytest-xdist:
a port comes from the kernel (bind to port 0), never from a number a test picked.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis

from server.settings import Settings

T = TypeVar("T")

REDIS = "redis://127.0.0.1:6379"
_LOCK = "deskflow-test:db-lock"
_dbs = itertools.cycle(range(1, 12))


ROOT_TOKEN = "test-root-token"
# How long a `deskflow` subprocess may take to start listening before a test calls it hung: a
# hang guard, not a bound (on 2 loaded cores, with xdist workers beside it, a start took 13 s).
START_S = 60.0

# How often a test's HTTP server thread (socketserver's serve_forever) looks for shutdown(): its
# default, 0.5 s, was what every stop of a test server waited (0.5 s of each test_webhooks test).
# Pass it as `serve_forever(poll_interval=SERVE_POLL_S)`.
SERVE_POLL_S = 0.01


class ShiftedClock:
    """The worker's clock for tests (`create_app(worker_clock=...)`): the real time plus an offset
    that only `advance(s)` changes. It keeps moving like the real clock (so event times the API
    stamps and the worker's "now" stay in step), and a test jumps it past a timer's due time
    instead of sleeping until then."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def service_settings(redis_url: str | None) -> Settings:
    """The service settings of the `settings` fixture: the embedded store (None) or that Redis,
    4 partitions, short reclaim and block times so a test's worker is quick to start and stop."""
    return Settings(redis_url=redis_url, data_file=None, root_token=ROOT_TOKEN, partitions=4,
                    reclaim_idle_ms=1500, block_ms=100, wait_timeout_s=10)


@contextlib.contextmanager
def claim_redis_db() -> Iterator[str]:
    """A Redis DB of 1-11 that no other test holds, also across concurrent pytest runs (xdist
    workers, other engineers' runs) on one machine: a lock key in the DB itself (SET NX EX), set
    again in the same MULTI as the FLUSHDB; flushed (the lock with it) on the way out. DB 0 is
    nobody's test data, DB 12 is the ingest benchmark's. The `redis_url` fixture is this."""
    deadline = time.monotonic() + 120
    token = f"{os.getpid()}-{time.monotonic_ns()}"
    while True:
        db = next(_dbs)
        r = redis.Redis.from_url(f"{REDIS}/{db}")
        if r.set(_LOCK, token, nx=True, ex=600):
            break
        r.close()
        if time.monotonic() > deadline:
            raise RuntimeError("no free Redis test DB (1-11) within 120 s")
        time.sleep(0.05)
    try:
        with r.pipeline(transaction=True) as p:
            p.flushdb()
            p.set(_LOCK, token, ex=600)
            p.execute()
        yield f"{REDIS}/{db}"
    finally:
        r.flushdb()  # also drops the lock
        r.close()


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


def wait_answering(url: str, *, path: str = "/healthz", proc: Any = None, timeout: float = START_S,
                   log: Callable[[], str] | None = None, what: str = "deskflow",
                   any_status: bool = False) -> None:
    """Return once GET `url + path` answers 200 (any status with `any_status`). `proc` (a Popen)
    is polled on every try, so a server that exits fails at once, with `log()` (its output's
    tail) in the message, not at the deadline. The one start-up wait of the tests and benches
    that run `deskflow` as a process."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + path, timeout=1).status_code == 200 or any_status:
                return
        except httpx.TransportError:
            pass
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode}) before {path} answered"
                                 + (f": {log()}" if log is not None else ""))
        assert time.monotonic() < deadline, f"{what}: {path} did not answer within {timeout} s"
        time.sleep(0.05)


@contextlib.contextmanager
def served_deskflow(env: dict[str, str], *, start_s: float = START_S) -> Iterator[str]:
    """`deskflow serve` (API and worker in one process) as a subprocess with `env` added to this
    process's environment; yields its base URL once /healthz answers, stops it after."""
    import subprocess
    import sys


    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(url, proc=proc, timeout=start_s, what="deskflow serve")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def ticks_beside(work: Callable[[], Any], slice_s: float) -> tuple[int, int, float]:
    """Run `work` in a thread while this thread spins: (slices of `slice_s` inside the work's run
    in which this thread ran Python, slices inside it, the work's seconds). A work that holds
    the GIL leaves this thread none of them; one that gives it up, most."""
    import threading

    span: list[float] = []

    def run() -> None:
        span.append(time.perf_counter())
        work()
        span.append(time.perf_counter())

    th = threading.Thread(target=run)
    slices: set[int] = set()
    th.start()
    while th.is_alive():
        slices.add(int(time.perf_counter() / slice_s))
    th.join()
    start, end = span
    inside = range(int(start / slice_s) + 1, int(end / slice_s))
    return len(slices.intersection(inside)), len(inside), end - start
