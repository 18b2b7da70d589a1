"""A failed write inside an apply's commit fails the commit loudly (security review of issue 14):
before, the commit EVAL did not look at its writes' replies, and on the in-process store a failed
write inside MULTI/EXEC was taken for a store outage -- the retry then found the marker
"processed" and skipped the event, so it was neither applied whole nor reported."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from server import automation
from server.settings import Settings
from server.store import events, tickets
from server.store import keys as K
from server.store.connect import close_store, open_store

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
EVENT = {"id": "e1", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
         "ticket": {"id": "T-1", "subject": "hello"}}


async def _pass(store: Any, ws: str) -> tuple[Any, Any, int]:
    snap = await tickets.load(store, ws, EVENT)
    outcome = automation.process(snap, EVENT, None, [], None, NOW, run_id="run-1")
    return snap, outcome, await tickets.next_seq(store, ws)


@pytest.mark.anyio
async def test_a_write_on_a_key_of_the_wrong_type_fails_the_commit(settings: Settings) -> None:
    store = await open_store(settings)
    try:
        ws = "w1"
        # the workspace's recent-runs list (LPUSH in every commit) holds a string
        await store.redis.set(K.workspace_runs(ws), "not a list")
        snap, outcome, seq = await _pass(store, ws)
        with pytest.raises(tickets.CommitFailed) as failed:
            await tickets.commit(store, ws, 0, "1-0", {}, EVENT, "run-1", snap, outcome, seq)
        assert "LPUSH" in str(failed.value) and K.workspace_runs(ws) in str(failed.value)
        if not store.embedded:   # on Redis the types are checked before any write
            assert "nothing was written" in str(failed.value)
            assert await store.redis.get(K.event_marker(ws, "e1")) is None
            assert await store.redis.get(K.ticket(ws, "T-1")) is None
        # once the key is set right, the same event commits
        await store.redis.delete(K.workspace_runs(ws))
        snap, outcome, seq = await _pass(store, ws)
        if store.embedded:   # MULTI/EXEC wrote the rest: the marker says processed
            assert tickets.done_with(snap, "1-0", {})
            return
        applied = await tickets.commit(store, ws, 0, "1-0", {}, EVENT, "run-1", snap, outcome, seq)
        assert applied is not None and not applied.skipped
        assert await store.redis.lrange(K.workspace_runs(ws), 0, -1) == ["run-1"]
    finally:
        await close_store(store)


@pytest.mark.anyio
async def test_the_worker_logs_and_counts_a_failed_commit(settings: Settings,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Not retried as an outage (the write would fail again, forever), not taken for applied."""
    from server.metrics import METRICS
    from server.worker import Worker

    store = await open_store(settings)
    try:
        ws = "w2"
        await store.redis.set(K.workspace_runs(ws), "not a list")
        await events.ensure_groups(store)
        fields = {"w": ws, "e": orjson.dumps(EVENT).decode()}
        entry_id = await store.redis.xadd(K.stream(0), fields)
        worker = Worker(store=store, burst=True)
        worker.owned.add(0)
        assert await events.acquire_lease(store, 0, worker.name)
        failed = METRICS.events_failed.labels("ticket.created")._value.get()
        with caplog.at_level(logging.ERROR, logger="deskflow.worker"):
            applied = await worker.handle(0, entry_id, fields)
        assert applied is None and worker.processed == 0
        assert METRICS.events_failed.labels("ticket.created")._value.get() == failed + 1
        assert any("the commit of event 'e1' failed" in r.getMessage() + str(r.exc_info)
                   for r in caplog.records)
        worker.applier.close()
    finally:
        await close_store(store)


@pytest.mark.anyio
@pytest.mark.redis
async def test_the_commit_is_sent_by_its_sha_and_loaded_once_when_missing(redis_url: str) -> None:
    """EVALSHA, not the script's 2.3 KB each time; a server without it in its script cache (a
    restart, SCRIPT FLUSH) gets one EVAL, which caches it, and the commit is applied once."""
    store = await open_store(Settings(redis_url=redis_url))
    sent: list[str] = []

    async def send(queue: Any) -> list[Any]:
        async with store.redis.pipeline(transaction=False) as p:
            queue(p)
            sent.extend(str(args[0]) for args, _ in p.command_stack)
            return list(await p.execute())

    try:
        await store.redis.script_flush()   # (server-wide: another user's next EVALSHA reloads)
        snap, outcome, seq = await _pass(store, "w1")
        assert await tickets.commit(store, "w1", 0, "1-0", {}, EVENT, "run-1", snap, outcome,
                                    seq, send) is not None
        assert sent == ["EVALSHA", "EVAL"]
        later = {**EVENT, "id": "e2", "type": "ticket.updated"}
        snap = await tickets.load(store, "w1", later)
        outcome = automation.process(snap, later, None, [], None, NOW, run_id="run-2")
        sent.clear()
        assert await tickets.commit(store, "w1", 0, "2-0", {}, later, "run-2", snap, outcome,
                                    None, send) is not None
        assert sent == ["EVALSHA"]
        assert orjson.loads(await store.redis.get(K.ticket("w1", "T-1")))["version"] == 2
    finally:
        await close_store(store)
