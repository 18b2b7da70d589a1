"""A workspace whose rules cannot be compiled waits; nobody else does (server/rulecache.py).

Before, a bucket source whose compile process failed (it stopped, used its 10 s of CPU, or refused
a source over its size limit) was compiled in the worker instead: one C call holding the GIL for
as long as it took (20 s and more for the sources two red-team rounds built, while every other
workspace's requests timed out), and a compile that raised dropped each of the workspace's events
as a bug. Now the failure is that workspace's state: its events stay pending and are applied, in
order and once, when a retry (backed off) compiles; the others' events go on."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import orjson
import pytest
from test_rule_compile_counts import _counting_compiles, _dense, _put_all

import server.rulecache as rc
from server.checkpool import CheckTimeout, CheckUnavailable
from server.metrics import METRICS
from server.rulecache import RuleCache, RulesUnavailable
from server.settings import Settings
from server.store import catalog, events
from server.store import keys as K
from server.store.connect import close_store, open_store
from server.worker import Worker

pytestmark = pytest.mark.anyio

BIG = 300   # dense rules: a bucket source past INLINE_SOURCE_BYTES, so compiled in a process


def _hit(i: int) -> dict[str, Any]:
    return {"subject": " ".join(f"w{i}x{j:02d}" for j in range(20))}


def _failures(reason: str) -> float:
    return METRICS.rule_compile_failures.labels(reason)._value.get()  # type: ignore[no-any-return]


class _Away:
    """The cache's compile process, failing with `error` while `failing` is set."""

    def __init__(self, cache: RuleCache, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
        self.tries: list[str] = []
        self.failing, self.error, self._sent = True, error, cache._away.run
        monkeypatch.setattr(cache._away, "run", self.run)

    async def run(self, workspace: str, op: str, *args: Any) -> Any:
        self.tries.append(workspace)
        if self.failing:
            raise self.error
        return await self._sent(workspace, op, *args)


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rc, "RETRY_FIRST_S", 0.2)
    monkeypatch.setattr(rc, "RETRY_MAX_S", 0.4)


async def test_a_failed_compile_process_makes_the_workspace_wait_not_the_worker(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    here = _counting_compiles(monkeypatch)
    store = await open_store(settings)
    cache = RuleCache(store)
    away = _Away(cache, monkeypatch, CheckUnavailable("The check process stopped (EOFError); retry."))
    before = _failures("unavailable")
    try:
        ws, _ = await catalog.create_workspace(store, "failing")
        other, _ = await catalog.create_workspace(store, "other")
        await _put_all(store, ws["id"], [_dense(i) for i in range(BIG)])
        await _put_all(store, other["id"], [_dense(i, 2) for i in range(3)])
        with pytest.raises(RulesUnavailable) as failed:
            await cache.get(ws["id"])
        assert here == [], "the failed source was compiled in the worker"
        assert away.tries == [ws["id"]] and failed.value.failures == 1
        assert "compile process" in failed.value.reason and "EOFError" in failed.value.reason
        assert cache.unavailable() == {ws["id"]: failed.value.reason}
        assert _failures("unavailable") == before + 1
        # until its retry time, asked again it fails at once: no compile, no process asked
        with pytest.raises(RulesUnavailable):
            await cache.get(ws["id"])
        assert away.tries == [ws["id"]] and cache.compiles == 1
        # another workspace compiles meanwhile (a small set: here)
        assert (await cache.get(other["id"])).evaluate({"type": "ticket.updated"}, {"subject": "w1x00 w1x01"}
                                                      ).matched == ["d0001"]
        # past the retry time, still failing: backed off further
        await asyncio.sleep(failed.value.retry_at - asyncio.get_running_loop().time())
        with pytest.raises(RulesUnavailable) as again:
            await cache.get(ws["id"])
        assert again.value.failures == 2 and again.value.retry_at - failed.value.retry_at > 0.2
        # the process back: the next retry compiles there, and the state is gone
        away.failing = False
        await asyncio.sleep(again.value.retry_at - asyncio.get_running_loop().time())
        ruleset = await cache.get(ws["id"])
        assert ruleset.evaluate({"type": "ticket.updated"}, _hit(9)).matched == ["d0009"]
        assert cache.unavailable() == {} and len(here) == 1 and here[0] <= rc.INLINE_SOURCE_BYTES
    finally:
        await cache.aclose()
        await close_store(store)


async def test_a_compile_past_its_cpu_time_is_named_and_an_edit_is_tried_at_once(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    here = _counting_compiles(monkeypatch)
    monkeypatch.setattr(rc, "RETRY_FIRST_S", 30.0)   # nothing here waits for a retry time
    monkeypatch.setattr(rc, "RETRY_MAX_S", 60.0)
    store = await open_store(settings)
    cache = RuleCache(store)
    away = _Away(cache, monkeypatch, CheckTimeout("over time"))
    before = _failures("timeout")
    try:
        ws, _ = await catalog.create_workspace(store, "slow")
        await _put_all(store, ws["id"], [_dense(i) for i in range(BIG)])
        with pytest.raises(RulesUnavailable) as failed:
            await cache.get(ws["id"])
        assert "CPU time limit" in failed.value.reason and _failures("timeout") == before + 1
        # the manager edits the rules (a new revision): compiled again at once, not at the retry
        away.failing = False
        await catalog.put_rule(store, ws["id"], _dense(7, 19))
        ruleset = await cache.get(ws["id"])
        assert ruleset.evaluate({"type": "ticket.updated"}, {"subject": _hit(7)["subject"][:-6]}
                                ).matched == ["d0007"]
        assert here == [] and away.tries == [ws["id"]] * 2 and cache.unavailable() == {}
    finally:
        await cache.aclose()
        await close_store(store)


async def test_a_compile_that_raises_holds_the_workspaces_events_instead_of_dropping_them(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only the process: any failure of the compile itself (here the code generator raising
    MemoryError) is the workspace's state, retried."""
    import rules.codegen as codegen

    store = await open_store(settings)
    cache = RuleCache(store)
    real, failing = codegen.compile_bucket, [True]

    def compile_bucket(source: str) -> Any:
        if failing[0]:
            raise MemoryError()
        return real(source)

    monkeypatch.setattr(rc, "compile_bucket", compile_bucket)
    try:
        ws, _ = await catalog.create_workspace(store, "raises")
        await _put_all(store, ws["id"], [_dense(i, 2) for i in range(8)])
        with pytest.raises(RulesUnavailable) as failed:
            await cache.get(ws["id"])
        assert failed.value.reason.startswith("MemoryError")
        failing[0] = False
        await asyncio.sleep(failed.value.retry_at - asyncio.get_running_loop().time())
        assert (await cache.get(ws["id"])).evaluate({"type": "ticket.updated"}, {"subject": "w5x00 w5x01"}
                                                   ).matched == ["d0005"]
    finally:
        await cache.aclose()
        await close_store(store)


def _event(eid: str, tid: str, subject: str) -> dict[str, Any]:
    return {"id": eid, "type": "ticket.updated", "occurred_at": "2026-11-23T08:00:00Z",
            "ticket": {"id": tid, "subject": subject}}


async def _statuses(store: Any, ws: str, ids: list[str]) -> list[str | None]:
    raws = await store.redis.mget([K.event_marker(ws, i) for i in ids])
    return [orjson.loads(r)["status"] if r else None for r in raws]


async def _until_processed(store: Any, ws: str, ids: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while set(await _statuses(store, ws, ids)) != {"processed"}:
        assert time.monotonic() < deadline, await _statuses(store, ws, ids)
        await asyncio.sleep(0.02)


async def test_a_worker_holds_the_failing_workspaces_events_and_applies_the_others(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """One partition, two workspaces: the one whose compile fails has its events wait, pending
    (none dropped or counted failed); the other's events are applied meanwhile; once its compile
    succeeds, the waiting events are applied once each, in order per ticket."""
    here = _counting_compiles(monkeypatch)
    settings = replace(settings, partitions=1)
    store = await open_store(settings)
    worker = Worker(store=store, name="w")
    away = _Away(worker.applier.rules, monkeypatch, CheckUnavailable("stopped"))
    failed_before = sum(METRICS.events_failed.labels(t)._value.get()
                        for t in ("ticket.updated", "other"))
    task = asyncio.create_task(worker.run())
    try:
        big, _ = await catalog.create_workspace(store, "big")
        small, _ = await catalog.create_workspace(store, "small")
        await _put_all(store, big["id"], [_dense(i) for i in range(BIG)])
        await _put_all(store, small["id"], [_dense(i, 2) for i in range(3)])
        await events.ensure_groups(store)
        held = [f"b{i}" for i in range(12)]
        await events.append_events(store, big["id"], [_event(e, f"B-{i % 3}", _hit(i % 3)["subject"])
                                                     for i, e in enumerate(held)])
        mine = [f"s{i}" for i in range(12)]
        await events.append_events(store, small["id"], [_event(e, f"S-{i % 4}", "w1x00 w1x01")
                                                        for i, e in enumerate(mine)])
        await _until_processed(store, small["id"], mine)
        await asyncio.sleep(1.0)   # a few retries of the failing compile (0.2-0.4 s apart)
        assert set(await _statuses(store, big["id"], held)) == {"queued"}
        assert len(away.tries) >= 2 and here == [t for t in here if t <= rc.INLINE_SOURCE_BYTES]
        pending = await store.redis.xpending(K.stream(0), K.GROUP)
        assert pending["pending"] >= len(held)
        away.failing = False
        await _until_processed(store, big["id"], held)
        for t in range(3):   # in order, each once: one run per event on the ticket
            runs = await store.redis.lrange(K.ticket_runs(big["id"], f"B-{t}"), 0, -1)
            got = [orjson.loads(r)["event_id"] for r in
                   await store.redis.mget([K.run(big["id"], r) for r in runs])]
            assert list(reversed(got)) == [e for i, e in enumerate(held) if i % 3 == t]
        ticket = orjson.loads(await store.redis.get(K.ticket(big["id"], "B-1")))
        assert "d" in ticket["tags"]   # rule d0001 matched: the rules as compiled in the process
        assert sum(METRICS.events_failed.labels(t)._value.get()
                   for t in ("ticket.updated", "other")) == failed_before
    finally:
        worker.stop()
        await task   # (its run's end closes the applier, its rule cache's processes too)
        await close_store(store)
