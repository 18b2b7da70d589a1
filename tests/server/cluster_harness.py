"""Real processes for the scale-out and fault tests: a private Redis, `deskflow api` and
`deskflow worker` subprocesses, and a load generator that knows what it was acknowledged.

    with RedisServer() as redis, Service(redis.url, apis=2, workers=3) as svc:
        ws = svc.workspace()                         # (id, admin key)
        load = Load(svc.api_urls, key, tickets=500, per_ticket=40)
        asyncio.run(load.run())
        svc.kill_worker(0); svc.start_worker()

The private Redis (its own port and directory, AOF with appendfsync always) can be killed and
restarted without touching the machine's shared Redis at 127.0.0.1:6379 that other tests use;
with AOF every write acknowledged before the crash is there after it, which is the deployment
the README's guarantees assume.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT_TOKEN = "cluster-root-token"
DESKFLOW = str(Path(sys.executable).parent / "deskflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 20.0,
               proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process for 127.0.0.1:{port} exited ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="deskflow-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--protected-mode", "no", "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)
        return self

    def kill(self) -> None:
        """kill -9: no shutdown, no final save (AOF with fsync always keeps what was acknowledged)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Service:
    def __init__(self, redis_url: str, *, apis: int = 2, workers: int = 3,
                 env: dict[str, str] | None = None) -> None:
        self.redis_url = redis_url
        self.env = {**os.environ, "DESKFLOW_REDIS_URL": redis_url, "DESKFLOW_ROOT_TOKEN": ROOT_TOKEN,
                    "DESKFLOW_SECRETS_KEY": "q5Yk7mQm0b7wV1Wl4v7m4Jg7xWZkq3oQ1u6s1c2d3e4=",
                    "DESKFLOW_RATE_LIMIT": "0", "DESKFLOW_RECLAIM_IDLE_MS": "2000",
                    "DESKFLOW_PARTITIONS": "16", **(env or {})}
        self.n_apis, self.n_workers = apis, workers
        self.apis: list[tuple[int, subprocess.Popen[bytes]]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logdir = tempfile.mkdtemp(prefix="deskflow-procs-")
        self._logs: list[Any] = []

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port, _ in self.apis]

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.logdir, f"{name}.log"), "ab")  # noqa: SIM115 - closed in stop
        self._logs.append(log)
        return subprocess.Popen([DESKFLOW, *args, "--log-level", "warning"], env=self.env,
                                stdout=log, stderr=log)

    def start_api(self, *, wait: bool = True) -> None:
        port = free_port()
        self.apis.append((port, self._spawn(["api", "--port", str(port)], f"api-{port}")))
        if wait:
            _wait_port(port)

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = self._spawn(["worker"], f"worker-{len(self.workers)}")
        self.workers.append(proc)
        return proc

    def kill_worker(self, i: int, sig: int = signal.SIGKILL) -> None:
        proc = self.workers[i]
        proc.send_signal(sig)
        proc.wait(30)

    def live_workers(self) -> list[int]:
        return [i for i, p in enumerate(self.workers) if p.poll() is None]

    def start(self) -> Service:
        """Every process at once, then wait for the APIs' ports (starting them one after the
        other, each waited for, cost a Python start-up per process: seconds on a loaded box)."""
        try:
            for _ in range(self.n_apis):
                self.start_api(wait=False)
            for _ in range(self.n_workers):
                self.start_worker()
            for port, proc in self.apis:
                _wait_port(port, 90.0, proc)   # five Python start-ups at once on a loaded box
        except BaseException:
            self.stop()       # no process outlives a start that failed
            raise
        return self

    def stop(self) -> None:
        procs = [p for _, p in self.apis] + self.workers
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in self._logs:
            log.close()

    def logs(self) -> str:
        out = []
        for name in sorted(os.listdir(self.logdir)):
            with open(os.path.join(self.logdir, name), errors="replace") as fh:
                out.append(f"--- {name}\n{fh.read()[-3000:]}")
        return "\n".join(out)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.logdir, ignore_errors=True)

    def workspace(self) -> tuple[str, str]:
        r = httpx.post(self.api_urls[0] + "/v1/workspaces", json={"name": "load"},
                       headers={"Authorization": f"Bearer {ROOT_TOKEN}"}, timeout=10)
        r.raise_for_status()
        return r.json()["id"], r.json()["admin_key"]


@dataclass
class Load:
    """Sends `per_ticket` events to each of `tickets` tickets, one ticket's events one after the
    other (the next only once the last was acknowledged), many tickets at once, alternating API
    processes. 503s and refused connections are retried with the same event id (idempotent)."""

    urls: list[str]
    key: str
    tickets: int
    per_ticket: int
    concurrency: int = 64
    acked: dict[str, list[str]] = field(default_factory=dict)     # ticket -> event ids, in order
    unavailable: list[tuple[int, str | None]] = field(default_factory=list)  # (status, Retry-After)
    errors: list[str] = field(default_factory=list)
    progress: int = 0

    def event(self, ticket: int, i: int) -> dict[str, Any]:
        tid = f"T-{ticket}"
        return {"id": f"{tid}-e{i}", "type": "ticket.created" if i == 0 else "ticket.updated",
                "occurred_at": "2026-11-23T08:00:00Z",
                "ticket": {"id": tid, "custom": {"seq": i}}}

    async def _post(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
        for attempt in range(600):
            try:
                r = await client.post(url + "/v1/events", json=body)
            except httpx.TransportError as exc:
                self.errors.append(type(exc).__name__)
                await asyncio.sleep(0.1)
                continue
            if r.status_code in (200, 202):
                return
            if r.status_code == 503:
                self.unavailable.append((503, r.headers.get("Retry-After")))
                await asyncio.sleep(min(1.0, float(r.headers.get("Retry-After") or 1)) / 4)
                continue
            raise AssertionError(f"{url}: {r.status_code} {r.text}")
        raise AssertionError(f"event {body['id']} never acknowledged")

    async def run(self) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        headers = {"Authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(headers=headers, timeout=10,
                                     limits=httpx.Limits(max_connections=self.concurrency * 2)) as client:
            async def one_ticket(t: int) -> None:
                async with gate:
                    tid = f"T-{t}"
                    self.acked[tid] = []
                    for i in range(self.per_ticket):
                        body = self.event(t, i)
                        await self._post(client, self.urls[(t + i) % len(self.urls)], body)
                        self.acked[tid].append(body["id"])
                        self.progress += 1

            await asyncio.gather(*(one_ticket(t) for t in range(self.tickets)))


def markers(redis_url: str, workspace: str, *, cluster: bool = False) -> Callable[[str, list[str]], str]:
    """For check_applied's failure message: each event's processed marker in the store (its
    stream entry id and partition, its run, the time of the pass), so the next failure says
    whether the stream held the events out of order (ingest) or they were applied out of order
    (workers)."""
    import orjson
    import redis
    from redis.cluster import RedisCluster

    from server.store import keys as K

    def explain(tid: str, ids: list[str]) -> str:
        r: Any = (RedisCluster.from_url(redis_url, decode_responses=True) if cluster
                  else redis.Redis.from_url(redis_url, decode_responses=True))
        try:
            lines = [f"{tid}'s events in the order acknowledged, as their markers say:"]
            for eid in ids:
                raw = r.get(K.event_marker(workspace, eid))
                m = orjson.loads(raw) if raw else {}
                lines.append(f"  {eid}: entry={m.get('entry')} partition={m.get('partition')} "
                             f"status={m.get('status')} run={m.get('run_id')} at={m.get('at')}")
            return "\n".join(lines)
        except Exception as exc:  # noqa: BLE001 - the report must not hide the failure itself
            return f"(markers of {tid} not read: {exc!r})"
        finally:
            r.close()
    return explain


def check_applied(url: str, key: str, acked: dict[str, list[str]], timeout: float = 120.0,
                  explain: Callable[[str, list[str]], str] | None = None) -> None:
    """Every acknowledged event applied exactly once and in order, read from the tickets' final
    state (version = events applied, custom.seq = the last one) and their run records. The reads
    go 8 at a time (one after the other they were seconds of a quick test on a loaded box).
    `explain(ticket, its acknowledged ids)` (e.g. `markers`) is added to a failure's message."""
    try:
        _check_applied(url, key, acked, timeout)
    except _NotApplied as exc:
        tid = exc.args[0]
        text = str(exc.args[1])
        if explain is not None:
            text += "\n" + explain(tid, acked[tid])
        raise AssertionError(text) from None


class _NotApplied(Exception):
    """(ticket id, what is wrong with it)"""


def _check_applied(url: str, key: str, acked: dict[str, list[str]], timeout: float) -> None:
    h = {"Authorization": f"Bearer {key}"}
    pending = dict(acked)
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers=h, timeout=10) as c, ThreadPoolExecutor(8) as pool:
        def version(tid: str) -> int:
            r = c.get(f"/v1/tickets/{tid}")
            return int(r.json()["version"]) if r.status_code == 200 else -1

        versions: dict[str, int] = {}
        while pending and time.monotonic() < deadline:
            tids = list(pending)
            for tid, v in zip(tids, pool.map(version, tids), strict=True):
                versions[tid] = v
                if v >= len(pending[tid]):
                    del pending[tid]
            if pending:
                time.sleep(0.5)
        if pending:
            tid = next(iter(pending))
            raise _NotApplied(tid, f"{len(pending)} tickets not fully applied, e.g. {tid} "
                                   f"(version {versions.get(tid)} of {len(pending[tid])})")

        def state(tid: str) -> tuple[dict[str, Any], list[str]]:
            ticket = c.get(f"/v1/tickets/{tid}").json()
            runs = c.get(f"/v1/tickets/{tid}/runs", params={"limit": 500}).json()["items"]
            return ticket, [run["event_id"] for run in reversed(runs)]

        for (tid, ids), (ticket, applied) in zip(acked.items(), pool.map(state, list(acked)),
                                                 strict=True):
            if ticket["version"] != len(ids):
                raise _NotApplied(tid, (tid, ticket["version"], len(ids)))
            if ticket["custom"]["seq"] != len(ids) - 1:
                raise _NotApplied(tid, (tid, ticket["custom"]))
            if applied != ids:
                first = next((i for i, (a, b) in enumerate(zip(applied, ids, strict=False))
                              if a != b), min(len(applied), len(ids)))
                raise _NotApplied(tid, f"{tid}: runs {applied} against acknowledged {ids} "
                                       f"(first difference at {first})")
