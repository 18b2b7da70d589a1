"""Pool fairness (issue 13, finding A5): one workspace's hanging runs may hold only its share of
the workers; another workspace's trivial script is served at once, and a run that finds no worker
within the queue wait fails `busy`, never `sandbox_crash`."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from testkit import SERVE_POLL_S

from sandbox import Broker, BrokerConfig, Limits, ScriptPool, parse_allowlist
from sandbox.shares import Shares

TRIVIAL = "def run(event, ticket, ctx):\n    return {'add_tags': ['served']}\n"


def hang(url: str) -> str:
    return f"def run(event, ticket, ctx):\n    ctx.http.get({url!r}, timeout=30)\n    return None\n"


class _Hanging(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.release.wait(60)   # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:
        pass


class HangingServer:
    """A real local server that accepts each request and never answers, until release()."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Hanging)
        self.server.release = threading.Event()  # type: ignore[attr-defined]
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": SERVE_POLL_S}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def release(self) -> None:
        self.server.release.set()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()


@pytest.fixture
def hanging_url(hanging: HangingServer) -> str:
    return hanging.url


def _run(pool: ScriptPool, workspace: str, source: str, config: BrokerConfig | None, version: int,
         limits: Limits | None = None) -> Any:
    return pool.run(f"{workspace}/s", version, source, {"type": "ticket.created"},
                    {"id": "T-1", "tags": [], "custom": {}}, {"workspace": workspace, "vars": {}},
                    limits or Limits(wall_s=30, http_timeout_s=30), config)


def test_a_hanging_workspace_does_not_starve_another(hanging_url: str) -> None:
    """Finding A5 as reported: four 30 s runs calling a hanging URL, then another workspace's
    trivial script. Before: it waited 35 s, then failed sandbox_crash."""
    async def go() -> None:
        broker = Broker.create()
        config = BrokerConfig(parse_allowlist([hanging_url]))
        async with ScriptPool(2, broker=broker, queue_timeout_s=1.0) as pool:
            assert pool.workspace_share == 1
            hogs = [asyncio.create_task(_run(pool, "attacker", hang(hanging_url), config, i))
                    for i in range(4)]
            await asyncio.sleep(0.5)
            for i in range(3):
                started = time.monotonic()
                result = await _run(pool, "victim", TRIVIAL, None, i + 1)
                assert result.error is None, result.error
                assert result.updates == {"add_tags": ["served"]}
                assert time.monotonic() - started < 2.0
            # The attacker's excess runs waited in its own queue and were told to try again.
            await asyncio.sleep(1.0)
            waited = [h for h in hogs if h.done()]
            assert len(waited) == 3
            assert all(h.result().error["code"] == "busy" for h in waited)
            assert "try again" in waited[0].result().error["message"]
            assert pool.stats()["errors"].get("sandbox_crash") is None
            for h in hogs:
                h.cancel()
            await asyncio.gather(*hogs, return_exceptions=True)
        await broker.aclose()

    asyncio.run(go())


def test_a_workspace_queue_serves_its_runs_in_turn_within_the_wait() -> None:
    async def go() -> None:
        async with ScriptPool(2, workspace_share=1, queue_timeout_s=20) as pool:
            slow = "def run(event, ticket, ctx):\n    n = 0\n    for i in range(300000):\n        n += i\n    return {'add_tags': ['done']}\n"
            results = await asyncio.gather(*(_run(pool, "acme", slow, None, 1) for _ in range(4)))
            assert [r.error for r in results] == [None] * 4
            assert pool.stats()["waiting"] == 0

    asyncio.run(go())


def test_busy_is_a_run_error_code() -> None:
    from sandbox import RUN_ERROR_CODES
    assert "busy" in RUN_ERROR_CODES


def test_shares_round_robin_and_bounded_wait() -> None:
    async def go() -> None:
        shares: Shares[str] = Shares(1)
        for w in ("w1", "w2"):
            shares.give(w)
        assert shares.try_take("a") == "w1"
        assert shares.try_take("a") is None            # at its share, though w2 is idle
        assert shares.try_take("b") == "w2"
        waiting_a = asyncio.create_task(shares.take("a", 5))
        waiting_c = asyncio.create_task(shares.take("c", 5))
        await asyncio.sleep(0)
        shares.finish("a", "w1")        # a is back under its share, but c has waited too
        assert await waiting_a == "w1"   # a's queue came first
        shares.finish("b", "w2")
        assert await waiting_c == "w2"
        assert await shares.take("c", 0.05) is None   # c is at its share: bounded wait -> busy
        assert shares.waiters == 0
        cancelled = asyncio.create_task(shares.take("d", 5))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        assert shares.waiters == 0

    asyncio.run(go())
