"""Durable timers on both stores: schedule, move, cancel, fire once into the ticket's stream; the
compact layout (data only when the reason does not imply it) and timers left in the older JSON layout."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from server.settings import Settings
from server.store import keys as K
from server.store import timer_firing, timers
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
    assert await timer_firing.fire_due(store, n, T0 + timedelta(seconds=29)) == []
    fired = await timer_firing.fire_due(store, n, T0 + timedelta(seconds=30))
    assert [(t.ticket, t.reason) for t in fired] == [("T-1", "snooze")]
    assert await timer_firing.fire_due(store, n, T0 + timedelta(hours=1)) == []  # never twice
    [event] = await stream_events(store, n)
    assert event == {"id": f"snooze@{int((T0 + timedelta(seconds=30)).timestamp() * 1000)}:T-1",
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
    assert await timer_firing.fire_due(store, n, T0 + timedelta(minutes=6)) == []
    assert await timers.cancel(store, "w1", "T-1", "time_rules") is True
    assert await timers.cancel(store, "w1", "T-1", "time_rules") is False
    assert await timer_firing.fire_due(store, n, T0 + timedelta(days=1)) == []


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
        got = await timer_firing.fire_due(store, n, T0 + timedelta(seconds=20))
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
    a, b = await asyncio.gather(timer_firing.fire_due(store, n, T0 + timedelta(seconds=1), limit=50),
                                timer_firing.fire_due(store, n, T0 + timedelta(seconds=1), limit=50))
    rest = []
    while got := await timer_firing.fire_due(store, n, T0 + timedelta(seconds=1), limit=50):
        rest += got
    reasons = [t.reason for t in a + b + rest]
    assert sorted(reasons) == sorted(f"r{i}" for i in range(200))
    assert len(await stream_events(store, n)) == 200


async def test_a_timer_moved_or_cancelled_between_the_read_and_the_write_does_not_fire(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A firing round reads the due timers, then writes (one script on Redis, a WATCH/MULTI on
    the in-process store): a timer moved later or cancelled in between stays as it was left, the
    rest fire, and the round answers the partition's next due time, the moved timer's."""
    due, later = T0 + timedelta(seconds=1), T0 + timedelta(hours=1)
    for reason in ("r1", "r2", "r3"):
        await timers.schedule(store, "w1", "T-1", reason, due)
    n = K.partition_of("w1", "T-1", store.settings.partitions)
    hook = "_fire_watched" if store.embedded else None
    real = getattr(timer_firing, hook) if hook else store.redis.eval

    async def between(*args: object, **kw: object) -> object:
        await timers.schedule(store, "w1", "T-1", "r2", later)   # moved
        await timers.cancel(store, "w1", "T-1", "r3")            # cancelled
        return await real(*args, **kw)

    if hook:
        monkeypatch.setattr(timer_firing, hook, between)
    else:
        monkeypatch.setattr(store.redis, "eval", between)
    fired, first = await timer_firing.fire_round(store, n, due + timedelta(seconds=1))
    assert [t.reason for t in fired] == ["r1"]
    assert [e["timer"]["reason"] for e in await stream_events(store, n)] == ["r1"]
    assert first == int(later.timestamp() * 1000)
    monkeypatch.undo()
    assert await timer_firing.fire_due(store, n, later - timedelta(seconds=1)) == []
    assert [t.reason for t in await timer_firing.fire_due(store, n, later)] == ["r2"]


async def test_schedule_many_is_schedule_in_bulk(store: Store) -> None:
    items = [("w1", f"T-{i}", "time_rules", T0 + timedelta(seconds=i), {"type": "time.reached"}) for i in range(50)]
    await timers.schedule_many(store, items)
    assert await timers.count(store) == 50
    t = await timers.get(store, "w1", "T-7", "time_rules")
    assert t is not None and t.due_at == T0 + timedelta(seconds=7) and t.data == {"type": "time.reached"}


async def legacy_timer(store: Store, workspace: str, ticket: str, reason: str, due: datetime,
                       data: dict[str, object]) -> None:
    """A timer as the older layout stored it: JSON member, its data always in timer-data."""
    n = K.partition_of(workspace, ticket, store.settings.partitions)
    member = orjson.dumps([workspace, ticket, reason]).decode()
    await store.redis.zadd(K.timers(n), {member: int(due.timestamp() * 1000)})
    await store.redis.hset(K.timer_data(n), member, orjson.dumps(data).decode())


async def test_the_services_timers_store_no_data_and_a_compact_member(store: Store) -> None:
    reasons = {"snooze": {"type": "ticket.woke"}, "time_rules": {"type": "time.reached"},
               "sla.warning:first_response": {"type": "sla.warning", "target": "first_response"},
               "sla.breached:resolution": {"type": "sla.breached", "target": "resolution"},
               "sla.warning:next_response": {"type": "sla.warning", "target": "next_response"}}
    odd = "T\x1f7 [\"x\"] \u00e9:@"  # ticket ids may hold anything, the separator included
    await timers.schedule_many(store, [("ws_0123456789abcdef", odd, r, T0, d) for r, d in reasons.items()])
    n = K.partition_of("ws_0123456789abcdef", odd, store.settings.partitions)
    assert await store.redis.hlen(K.timer_data(n)) == 0
    members = await store.redis.zrange(K.timers_of(n, "ws_0123456789abcdef"), 0, -1)
    assert sorted(members) == sorted(f"ws_0123456789abcdef\x1f{c}\x1f{odd}" for c in ("s", "t", "wf", "br", "wn"))
    for r, d in reasons.items():
        t = await timers.get(store, "ws_0123456789abcdef", odd, r)
        assert t is not None and (t.ticket, t.reason, t.data, t.due_at) == (odd, r, d, T0)
    fired = await timer_firing.fire_due(store, n, T0)
    assert sorted((t.ticket, t.reason) for t in fired) == sorted((odd, r) for r in reasons)
    events = await stream_events(store, n)
    assert {(e["type"], e["timer"].get("target")) for e in events} == {
        ("ticket.woke", None), ("time.reached", None), ("sla.warning", "first_response"),
        ("sla.breached", "resolution"), ("sla.warning", "next_response")}
    assert all(e["ticket"] == {"id": odd} for e in events)


async def test_data_other_than_the_implied_is_kept_and_dropped_when_it_goes(store: Store) -> None:
    n = K.partition_of("w1", "T-1", store.settings.partitions)
    await timers.schedule(store, "w1", "T-1", "snooze", T0, {"type": "ticket.woke", "note": "x"})
    await timers.schedule(store, "w1", "T-1", "custom|reason", T0, {"type": "sla.check", "k": [1]})
    await timers.schedule(store, "w1", "T-1", "bare", T0)
    assert await store.redis.hlen(K.timer_data(n)) == 2
    t = await timers.get(store, "w1", "T-1", "custom|reason")
    assert t is not None and t.data == {"type": "sla.check", "k": [1]}
    bare = await timers.get(store, "w1", "T-1", "bare")
    assert bare is not None and bare.data == {} and bare.event()["type"] == "time.reached"
    await timers.schedule(store, "w1", "T-1", "snooze", T0, {"type": "ticket.woke"})  # back to the implied
    assert await store.redis.hlen(K.timer_data(n)) == 1
    fired = {t.reason: t for t in await timer_firing.fire_due(store, n, T0)}
    assert fired["snooze"].data == {"type": "ticket.woke"}
    assert fired["custom|reason"].event()["timer"] == {"reason": "custom|reason",
                                                       "due_at": "2026-11-23T09:00:00.000Z", "k": [1]}
    assert await store.redis.hlen(K.timer_data(n)) == 0


async def test_two_tickets_due_at_the_same_instant_generate_distinct_event_ids(store: Store) -> None:
    await timers.schedule_many(store, [("w1", t, "snooze", T0, None) for t in ("A", "B", "A:B")])
    events = []
    for n in range(store.settings.partitions):
        await timer_firing.fire_due(store, n, T0)
        events += await stream_events(store, n)
    assert len({e["id"] for e in events}) == 3


async def test_timers_in_the_older_json_layout_still_fire(store: Store) -> None:
    await legacy_timer(store, "w1", "T-1", "snooze", T0, {"type": "ticket.woke"})
    await legacy_timer(store, "w1", "T-2", "sla.breached:first_response", T0 + timedelta(seconds=1),
                       {"type": "sla.breached", "target": "first_response"})
    await timers.schedule(store, "w1", "T-3", "snooze", T0 + timedelta(seconds=2))  # a new one beside them
    assert await timers.count(store) == 3
    t = await timers.get(store, "w1", "T-2", "sla.breached:first_response")
    assert t is not None and t.data == {"type": "sla.breached", "target": "first_response"}
    fired = []
    for n in range(store.settings.partitions):
        fired += await timer_firing.fire_due(store, n, T0 + timedelta(seconds=5))
    assert sorted((t.ticket, t.reason, t.event()["type"]) for t in fired) == [
        ("T-1", "snooze", "ticket.woke"), ("T-2", "sla.breached:first_response", "sla.breached"),
        ("T-3", "snooze", "ticket.woke")]
    for n in range(store.settings.partitions):
        assert await store.redis.hlen(K.timer_data(n)) == 0
    assert await timers.count(store) == 0


async def test_timers_in_the_older_json_layout_can_be_cancelled_and_moved(store: Store) -> None:
    n = K.partition_of("w1", "T-1", store.settings.partitions)
    await legacy_timer(store, "w1", "T-1", "snooze", T0, {"type": "ticket.woke"})
    await legacy_timer(store, "w1", "T-1", "time_rules", T0, {"type": "time.reached"})
    assert await timers.cancel(store, "w1", "T-1", "snooze") is True
    assert await timers.get(store, "w1", "T-1", "snooze") is None
    await timers.schedule(store, "w1", "T-1", "time_rules", T0 + timedelta(minutes=1), {"type": "time.reached"})
    assert await timers.count(store) == 1  # moved, not doubled
    assert await store.redis.hlen(K.timer_data(n)) == 0
    assert await timer_firing.fire_due(store, n, T0 + timedelta(seconds=59)) == []
    [t] = await timer_firing.fire_due(store, n, T0 + timedelta(minutes=1))
    assert (t.reason, t.data) == ("time_rules", {"type": "time.reached"})


def test_stale_compares_a_timer_event_with_the_tickets_plan() -> None:
    timer = timers.Timer("w1", "T-1", "snooze", int(T0.timestamp() * 1000), {"type": "ticket.woke"})
    event = timer.event()
    plan = {"snooze": ["2026-11-23T09:00:00.000400Z", {"type": "ticket.woke"}]}  # the plan keeps µs
    assert timers.stale(event, {"automation": {"timers": plan}}) is None
    assert timers.stale(event, {"automation": {"timers": {"snooze": ["2026-11-23T09:00:00.001Z", {}]}}}) is None
    assert "10:00" in (timers.stale(event, {"automation": {"timers": {
        "snooze": ["2026-11-23T10:00:00Z", {"type": "ticket.woke"}]}}}) or "")
    assert timers.stale(event, {"automation": {"timers": {}}}) is not None  # cancelled
    assert timers.stale(event, None) is not None  # no such ticket
    assert timers.stale(event, {"automation": {}}) is None  # a ticket from before plans: cannot tell
    assert timers.stale({"id": "e", "type": "ticket.woke", "ticket": {"id": "T-1"}}, None) is None  # not a timer's


async def test_apply_and_restore_a_tickets_plan(store: Store) -> None:
    due = "2026-11-23T09:05:00Z"
    await timers.apply_plan(store, "w1", "T-1", {}, {"snooze": [due, {"type": "ticket.woke"}],
                                                     "time_rules": [due, {"type": "time.reached"}]})
    assert await timers.count(store) == 2
    await timers.apply_plan(store, "w1", "T-1", {"snooze": [due, {}], "time_rules": [due, {}]},
                            {"time_rules": ["2026-11-23T09:06:00Z", {"type": "time.reached"}]})
    t = await timers.get(store, "w1", "T-1", "time_rules")
    assert await timers.count(store) == 1 and t is not None and t.due_at == T0 + timedelta(minutes=6)
    await timers.schedule(store, "w1", "T-1", "snooze", T0)  # a cancel that was lost
    await timers.restore_plan(store, "w1", "T-1", {"sla.warning:resolution": [due, {}]},
                              ["snooze", "time_rules", "sla.warning:resolution"])
    assert [t.reason for t in await timer_firing.fire_due(store, K.partition_of("w1", "T-1", store.settings.partitions),
                                                    T0 + timedelta(hours=1))] == ["sla.warning:resolution"]
