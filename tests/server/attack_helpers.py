"""Helpers of the hostile-tenant tests (tests/server/test_attack_*.py): a real `deskflow serve`
on the real Redis, workspaces with a key of every role, and a victim's latency probe.

A real process, not a TestClient: a tenant stalling another is about one event loop shared by
the API and the worker, as in production.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from testkit import served_deskflow

ROOT = "attack-root-token"


@contextmanager
def serve(redis_url: str, **env_extra: str) -> Iterator[str]:
    """`deskflow serve` on `redis_url`; yields its base URL."""
    with served_deskflow({"DESKFLOW_REDIS_URL": redis_url, "DESKFLOW_ROOT_TOKEN": ROOT,
                          "DESKFLOW_RATE_LIMIT": "0", **env_extra}, start_s=30) as url:
        yield url


def h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def workspace(c: httpx.Client, name: str) -> dict[str, str]:
    """A new workspace: {"id", "admin", "manager", "developer", "ingest", "viewer"}."""
    r = c.post("/v1/workspaces", json={"name": name}, headers=h(ROOT))
    assert r.status_code == 201, r.text
    keys = {"id": r.json()["id"], "admin": r.json()["admin_key"]}
    for role in ("manager", "developer", "ingest", "viewer"):
        k = c.post("/v1/keys", json={"role": role, "name": role}, headers=h(keys["admin"]))
        assert k.status_code == 201, k.text
        keys[role] = k.json()["key"]
    return keys


class Probe:
    """The victim's latency: GET /v1/rules with its viewer key every 10 ms, in a thread, until
    stopped; `worst` is the slowest answer seen."""

    def __init__(self, url: str, viewer_key: str) -> None:
        self.url, self.key = url, viewer_key
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as c:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                r = c.get("/v1/rules", headers=h(self.key))
                self.latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    self.errors.append(f"{r.status_code} {r.text[:200]}")
                self._stop.wait(0.01)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)


def p90(latencies: list[float]) -> float:
    xs = sorted(latencies)
    return xs[int(len(xs) * 0.9)] if xs else 0.0


def slowdown(url: str, viewer_key: str, attack: Callable[[threading.Event], None], *,
             seconds: float = 5.0, attackers: int = 2) -> tuple[Probe, Probe]:
    """The victim's latency without, then with the attack (`attackers` threads running
    `attack(stop)` until stop is set), measured in the same run on the same server: the
    machine this runs on is shared and loaded, so only the comparison means something."""
    with Probe(url, viewer_key) as quiet:
        time.sleep(seconds)
    stop = threading.Event()
    threads = [threading.Thread(target=attack, args=(stop,), daemon=True) for _ in range(attackers)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    with Probe(url, viewer_key) as loud:
        time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(300)
    return quiet, loud


def stalled(quiet: Probe, loud: Probe) -> bool:
    """The attack slowed the victim down: its p90 more than doubled, by more than 50 ms."""
    return p90(loud.latencies) > 2 * p90(quiet.latencies) + 0.05
