"""Two workspaces that fill the script pool, and a third (the class of issue 13's finding A5 with
more than one attacker): each workspace may hold only its share of the workers, but two hanging
workspaces held both workers of the default pool of 2, and a third workspace's trivial script
waited the whole queue wait, then failed `busy`. The pool now starts another worker for it, up to
MAX_WORKERS (sandbox/pool.py)."""
from __future__ import annotations

import asyncio
import time

from test_pool_shares import TRIVIAL, HangingServer, _run, hang, hanging, hanging_url  # noqa: F401

from sandbox import Broker, BrokerConfig, ScriptPool, parse_allowlist


def test_two_hanging_workspaces_do_not_starve_a_third(hanging_url: str) -> None:  # noqa: F811
    async def go() -> tuple[list[float], list[object], int]:
        broker = Broker.create()
        config = BrokerConfig(parse_allowlist([hanging_url]))
        try:
            async with ScriptPool(2, broker=broker, queue_timeout_s=3.0) as pool:
                hogs = [asyncio.create_task(_run(pool, ws, hang(hanging_url), config, i))
                        for i in range(2) for ws in ("A1", "A2")]
                await asyncio.sleep(0.5)
                waits, errors = [], []
                for i in range(3):
                    started = time.monotonic()
                    result = await _run(pool, "victim", TRIVIAL, None, i + 1)
                    waits.append(time.monotonic() - started)
                    errors.append(result.error)
                workers = len(pool.pids)
                for h in hogs:
                    h.cancel()
                await asyncio.gather(*hogs, return_exceptions=True)
                return waits, errors, workers
        finally:
            await broker.aclose()

    waits, errors, workers = asyncio.run(go())
    assert errors == [None] * 3, errors
    assert max(waits) < 2.0, waits
    assert workers == 3


def test_extra_workers_idle_for_idle_retire_s_are_stopped(hanging: HangingServer) -> None:  # noqa: F811
    async def go() -> tuple[int, int]:
        broker = Broker.create()
        config = BrokerConfig(parse_allowlist([hanging.url]))
        try:
            async with ScriptPool(2, broker=broker, queue_timeout_s=3.0, idle_retire_s=0.3) as pool:
                hogs = [asyncio.create_task(_run(pool, ws, hang(hanging.url), config, 1))
                        for ws in ("A1", "A2")]
                await asyncio.sleep(0.5)
                assert (await _run(pool, "victim", TRIVIAL, None, 1)).error is None
                grown = len(pool.pids)
                hanging.release()        # the hanging runs end
                await asyncio.gather(*hogs)
                await asyncio.sleep(1.5)
                return grown, len(pool.pids)
        finally:
            await broker.aclose()

    assert asyncio.run(go()) == (3, 2)
