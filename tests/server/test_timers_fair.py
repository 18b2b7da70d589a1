"""Timer firing is fair between workspaces (one workspace's burst of due timers does not hold back
another's), keeps exactly-once and per-ticket order, and still fires timers of the older layout
(every workspace in one set per partition); on both stores."""
from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from test_cluster_slots import cluster_node  # noqa: F401 -- the fixture: a cluster-mode redis-server

from server.settings import Settings
from server.store import events
from server.store import keys as K
from server.store import timer_firing, timers
from server.store.connect import Store, close_store, open_store
from server.worker import Worker

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    s = await open_store(replace(settings, partitions=1))   # every ticket in partition 0
    yield s
    await close_store(s)


async def burst(store: Store, workspace: str, count: int, due: datetime) -> None:
    await timers.schedule_many(store, [(workspace, f"A-{i}", "snooze", due, None) for i in range(count)])


async def stream_ids(store: Store) -> list[str]:
    return [orjson.loads(f["e"])["id"] for _, f in await store.redis.xrange(K.stream(0))]


async def test_another_workspaces_timer_fires_in_the_first_round_after_a_burst(store: Store) -> None:
    await burst(store, "attacker", 2_000, T0)
    await timers.schedule(store, "victim", "B-1", "snooze", T0 + timedelta(seconds=1))
    first = await timer_firing.fire_due(store, 0, T0 + timedelta(seconds=2), limit=100)
    assert ("victim", "B-1") in {(t.workspace, t.ticket) for t in first}
    assert len(first) == 51   # the limit shared by the two workspaces due: 50 each, the victim has 1
    assert [t.due_ms for t in first] == sorted(t.due_ms for t in first)   # due order within a round
    rounds = []
    while got := await timer_firing.fire_due(store, 0, T0 + timedelta(seconds=2), limit=100):
        rounds.append(len(got))
    assert rounds == [100] * 19 + [50]   # alone again: the whole limit per round
    assert await timers.count(store) == 0
    ids = await stream_ids(store)
    assert len(ids) == len(set(ids)) == 2_001   # each fired once


async def test_workspaces_beyond_one_rounds_reach_are_served_round_robin(store: Store) -> None:
    many = timer_firing.ROUND_WORKSPACES + 8
    for w in range(many):   # each with more due than one round's share
        await burst(store, f"w{w:02d}", 30, T0)
    await timers.schedule(store, "victim", "B-1", "snooze", T0 + timedelta(seconds=1))
    rounds = 0
    while "victim" not in {t.workspace for t in await timer_firing.fire_due(store, 0, T0 + timedelta(seconds=5),
                                                                      limit=10 * timer_firing.ROUND_WORKSPACES)}:
        rounds += 1
    # round 1 serves the 32 that waited since T0; round 2 the 8 others and the victim (waiting
    # since T0 + 1 s, ahead of the 32 just served, which are ranked at the round's time)
    assert rounds == 1


async def test_a_cancelled_timer_leaves_an_index_entry_that_the_round_clears(store: Store) -> None:
    await timers.schedule(store, "w1", "T-1", "snooze", T0)
    await timers.schedule(store, "w1", "T-2", "snooze", T0 + timedelta(minutes=5))
    assert await timers.cancel(store, "w1", "T-1", "snooze") is True
    assert await timers.next_due(store, [0]) == T0   # early, never late
    assert await timer_firing.fire_due(store, 0, T0 + timedelta(seconds=1)) == []
    assert await timers.next_due(store, [0]) == T0 + timedelta(minutes=5)   # fixed by the round
    [t] = await timer_firing.fire_due(store, 0, T0 + timedelta(minutes=5))
    assert t.ticket == "T-2"
    assert await timers.next_due(store, [0]) is None
    assert await store.redis.zcard(K.timer_index(0)) == 0


async def test_timers_of_the_one_set_layout_fire_once_and_move_when_scheduled(store: Store) -> None:
    """An install upgraded in place: its timers sit in df:{q:n}:timers, compact and JSON members."""
    old = {"w1\x1fs\x1fT-1": T0, "w2\x1fbf\x1fT-2": T0 + timedelta(seconds=1),
           orjson.dumps(["w1", "T-3", "time_rules"]).decode(): T0 + timedelta(seconds=2),
           "w1\x1fs\x1fT-4": T0 + timedelta(hours=1)}
    await store.redis.zadd(K.timers(0), {m: timers.ms_of(due) for m, due in old.items()})
    await timers.schedule(store, "w1", "T-5", "snooze", T0)   # a new-layout timer beside them
    assert await timers.count(store) == 5
    assert await timers.next_due(store, [0]) == T0
    got = await timers.get(store, "w2", "T-2", "sla.breached:first_response")
    assert got is not None and got.data == {"type": "sla.breached", "target": "first_response"}
    await timers.schedule(store, "w1", "T-4", "snooze", T0 + timedelta(hours=2))   # moved, not doubled
    assert await timers.count(store) == 5 and await store.redis.zcard(K.timers(0)) == 3
    fired = []
    while got_ := await timer_firing.fire_due(store, 0, T0 + timedelta(minutes=1)):
        fired += got_
    assert sorted((t.workspace, t.ticket, t.reason) for t in fired) == [
        ("w1", "T-1", "snooze"), ("w1", "T-3", "time_rules"), ("w1", "T-5", "snooze"),
        ("w2", "T-2", "sla.breached:first_response")]
    assert await timer_firing.fire_due(store, 0, T0 + timedelta(minutes=1)) == []   # never twice
    assert await store.redis.zcard(K.timers(0)) == 0
    [moved] = await timer_firing.fire_due(store, 0, T0 + timedelta(hours=2))
    assert (moved.ticket, moved.due_at) == ("T-4", T0 + timedelta(hours=2))
    assert len(await stream_ids(store)) == 5


async def test_two_firers_at_once_fire_each_timer_of_many_workspaces_once(store: Store) -> None:
    for w in range(5):
        await burst(store, f"w{w}", 60, T0 + timedelta(milliseconds=w))
    now = T0 + timedelta(seconds=1)
    a, b = await asyncio.gather(timer_firing.fire_due(store, 0, now, limit=40), timer_firing.fire_due(store, 0, now, limit=40))
    rest = []
    while got := await timer_firing.fire_due(store, 0, now, limit=40):
        rest += got
    fired = [(t.workspace, t.ticket) for t in a + b + rest]
    assert len(fired) == len(set(fired)) == 300
    assert len(await stream_ids(store)) == 300


async def test_the_worker_fires_a_burst_a_share_at_a_time(store: Store) -> None:
    """The worker fires no more per round than it reads: another workspace's timer, due after a
    burst of 1,000, is among the first batch of the partition's stream, not behind the burst."""
    await events.ensure_groups(store)
    await burst(store, "attacker", 1_000, T0)
    await timers.schedule(store, "victim", "B-1", "snooze", T0 + timedelta(seconds=1))
    worker = Worker(store=store, burst=True, clock=lambda: T0 + timedelta(seconds=2))
    handled: dict[str, str] = {}   # stream entry id -> event id (acked entries are deleted)
    handle = worker.handle

    async def recording(n: int, entry_id: str, fields: dict[str, str]) -> object:
        handled[entry_id] = orjson.loads(fields["e"])["id"]
        return await handle(n, entry_id, fields)

    worker.handle = recording  # type: ignore[method-assign]
    await worker.run()
    assert len(handled) == len(set(handled.values())) == 1_001 and await timers.count(store) == 0
    in_stream = [handled[i] for i in sorted(handled, key=lambda i: tuple(map(int, i.split("-"))))]
    ahead = next(i for i, e in enumerate(in_stream) if e.endswith(":B-1"))
    assert ahead < store.settings.batch_size, f"{ahead} of the burst went into the stream first"


@pytest.mark.redis
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
async def test_every_timer_operation_stays_in_the_partitions_slot_on_a_cluster_node(
        cluster_node: str) -> None:  # noqa: F811 -- the imported fixture
    """A cluster-mode node refuses a transaction whose keys span two slots (CROSSSLOT): the
    per-workspace sets, the index and the older set all hash to {q:n}, whatever the workspace id
    holds (braces included: the first {...} of the key is the tag)."""
    store = await open_store(Settings(redis_url=cluster_node, data_file=None, partitions=2))
    try:
        odd = "ws}{x"
        await store.redis.zadd(K.timers(0), {"old\x1fs\x1fT-9": timers.ms_of(T0)})   # the one-set layout
        await timers.schedule_many(store, [(w, f"T-{i}", "snooze", T0, None) for w in ("w1", odd) for i in range(6)])
        assert await timers.cancel(store, odd, "T-1", "snooze") is True
        assert (await timers.get(store, "w1", "T-2", "snooze")) is not None
        assert await timers.count(store) == 12
        fired = []
        for n in range(2):
            while got := await timer_firing.fire_due(store, n, T0 + timedelta(seconds=1), limit=4):
                fired += got
        assert len(fired) == 12 and {t.workspace for t in fired} == {"w1", odd, "old"}
        assert await timers.next_due(store, [0, 1]) is None
    finally:
        await close_store(store)
