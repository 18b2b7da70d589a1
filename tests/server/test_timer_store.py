"""Durable timers on both stores: schedule, move, cancel, fire once into the ticket's stream."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from server.settings import Settings
from server.store import keys as K
from server.store import timers
from server.store.connect import Store, close_store, open_store

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    s = await open_store(settings)
    yield s
    await close_store(s)


async def stream_events(store: Store, n: int) -> list[dict[str, object]]:
    return [orjson.loads(f["e"]) for _, f in await store.redis.xrange(K.stream(n))]


async def test_a_timer_fires_once_at_its_time_into_the_tickets_partition(store: Store) -> None:
    await timers.schedule(store, "w1", "T-1", "snooze", T0 + timedelta(seconds=30), {"type": "ticket.woke"})
    n = K.partition_of("w1", "T-1", store.settings.partitions)
    assert await timers.fire_due(store, n, T0 + timedelta(seconds=29)) == []
    fired = await timers.fire_due(store, n, T0 + timedelta(seconds=30))
    assert [(t.ticket, t.reason) for t in fired] == [("T-1", "snooze")]
    assert await timers.fire_due(store, n, T0 + timedelta(hours=1)) == []  # never twice
    [event] = await stream_events(store, n)
    assert event == {"id": f"snooze@{int((T0 + timedelta(seconds=30)).timestamp() * 1000)}",
                     "type": "ticket.woke", "occurred_at": "2026-11-23T09:00:30.000Z", "ticket": {"id": "T-1"},
                     "timer": {"reason": "snooze", "due_at": "2026-11-23T09:00:30.000Z"}}
    assert await timers.count(store) == 0


async def test_rescheduling_moves_and_cancel_removes(store: Store) -> None:
    await timers.schedule(store, "w1", "T-1", "time_rules", T0 + timedelta(minutes=5))
    await timers.schedule(store, "w1", "T-1", "time_rules", T0 + timedelta(minutes=9), {"type": "time.reached"})
    t = await timers.get(store, "w1", "T-1", "time_rules")
    assert t is not None and t.due_at == T0 + timedelta(minutes=9) and t.data == {"type": "time.reached"}
    assert await timers.count(store) == 1
    n = K.partition_of("w1", "T-1", store.settings.partitions)
    assert await timers.fire_due(store, n, T0 + timedelta(minutes=6)) == []
    assert await timers.cancel(store, "w1", "T-1", "time_rules") is True
    assert await timers.cancel(store, "w1", "T-1", "time_rules") is False
    assert await timers.fire_due(store, n, T0 + timedelta(days=1)) == []


async def test_timers_are_per_ticket_and_reason_and_fire_in_due_order(store: Store) -> None:
    parts = store.settings.partitions
    tickets = [f"T-{i}" for i in range(40)]
    for i, t in enumerate(tickets):
        await timers.schedule(store, "w1", t, "sla", T0 + timedelta(seconds=40 - i), {"type": "sla.check"})
        await timers.schedule(store, "w2", t, "sla", T0 + timedelta(seconds=i))  # another workspace, same id
    assert await timers.count(store) == 80
    due_at = await timers.next_due(store, list(range(parts)))
    assert due_at == T0
    fired = []
    for n in range(parts):
        got = await timers.fire_due(store, n, T0 + timedelta(seconds=20))
        assert [t.due_ms for t in got] == sorted(t.due_ms for t in got)
        assert all(K.partition_of(t.workspace, t.ticket, parts) == n for t in got)
        fired += got
    assert sorted((t.workspace, t.ticket) for t in fired) == sorted(
        [("w1", f"T-{i}") for i in range(20, 40)] + [("w2", f"T-{i}") for i in range(21)])
    assert await timers.count(store) == 80 - len(fired)


async def test_concurrent_firing_by_two_callers_fires_each_timer_once(store: Store) -> None:
    import asyncio

    for i in range(200):
        await timers.schedule(store, "w1", "T-1", f"r{i}", T0 + timedelta(milliseconds=i))
    n = K.partition_of("w1", "T-1", store.settings.partitions)
    a, b = await asyncio.gather(timers.fire_due(store, n, T0 + timedelta(seconds=1), limit=50),
                                timers.fire_due(store, n, T0 + timedelta(seconds=1), limit=50))
    rest = []
    while got := await timers.fire_due(store, n, T0 + timedelta(seconds=1), limit=50):
        rest += got
    reasons = [t.reason for t in a + b + rest]
    assert sorted(reasons) == sorted(f"r{i}" for i in range(200))
    assert len(await stream_events(store, n)) == 200


async def test_schedule_many_is_schedule_in_bulk(store: Store) -> None:
    items = [("w1", f"T-{i}", "time_rules", T0 + timedelta(seconds=i), {"type": "time.reached"}) for i in range(50)]
    await timers.schedule_many(store, items)
    assert await timers.count(store) == 50
    t = await timers.get(store, "w1", "T-7", "time_rules")
    assert t is not None and t.due_at == T0 + timedelta(seconds=7) and t.data == {"type": "time.reached"}
