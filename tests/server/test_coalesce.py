"""Shared round trips for the worker's passes (store/coalesce.py) and the fired rules' usage
batched in memory (store/usage.py): what many passes ask at once goes in one pipeline, each
request keeps its own replies and errors, and usage counts reach the store exactly -- at shutdown
too -- while the run records stay complete."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest
from redis.exceptions import ResponseError

from server.settings import Settings
from server.store import catalog, events
from server.store import runs as run_store
from server.store import guards as guard_store
from server.store import keys as K
from server.store.coalesce import Coalescer
from server.store.connect import Store, close_store, open_store
from server.store.usage import Usage
from server.worker import Worker

pytestmark = pytest.mark.anyio

RULES = [{"id": "r1", "name": "always", "enabled": True, "position": 1,
          "triggers": ["ticket.created", "ticket.updated"],
          "actions": [{"type": "add_tags", "tags": ["a"]}]},
         {"id": "r2", "name": "vip only", "enabled": True, "position": 2,
          "triggers": ["ticket.created", "ticket.updated"],
          "conditions": {"all": [{"field": "tags", "op": "includes", "value": "vip"}]},
          "actions": [{"type": "add_tags", "tags": ["b"]}]}]


def ev(eid: str, tid: str, seq: int, vip: bool) -> dict[str, Any]:
    return {"id": eid, "type": "ticket.updated" if seq else "ticket.created",
            "occurred_at": "2026-11-23T08:00:00Z",
            "ticket": {"id": tid, "custom": {"seq": seq}, "tags": ["vip"] if vip else []}}


async def _setup(settings: Settings) -> tuple[Store, str]:
    store = await open_store(settings)
    ws, _ = await catalog.create_workspace(store, "w")
    for rule in RULES:
        await catalog.put_rule(store, ws["id"], rule)
    await guard_store.put_spec(store, ws["id"], {"send_caps": []})
    await events.ensure_groups(store)
    return store, ws["id"]


async def test_requests_asked_at_once_share_one_round_trip(settings: Settings) -> None:
    store = await open_store(settings)
    try:
        c = Coalescer(store)
        await store.redis.set("k0", "zero")
        await store.redis.set("s", "not a number")

        def get(key: str) -> Any:
            return lambda p: p.get(key)

        def incr_text(p: Any) -> None:
            p.incr("s")

        got = await asyncio.gather(c.run(get("k0")), c.run(lambda p: (p.set("k1", "one"),
                                                                      p.get("k1"))),
                                   c.run(incr_text), c.run(get("k1")), return_exceptions=True)
        # one round trip for all four, each with its own replies, in the order asked (the SET
        # of the second is seen by the fourth), and an error only where it happened
        assert c.round_trips == 1 and c.requests == 4
        assert got[0] == ["zero"] and got[1] == [True, "one"] and got[3] == ["one"]
        assert isinstance(got[2], ResponseError)
        # asked while a round trip is in flight: together in the next one
        first = asyncio.ensure_future(c.run(get("k0")))
        await asyncio.sleep(0)   # the first round trip has started
        later = [asyncio.ensure_future(c.run(get(f"k{i % 2}"))) for i in range(10)]
        assert await first == ["zero"] and [await f for f in later] == [["zero"], ["one"]] * 5
        assert c.round_trips == 3
        # a request whose own queueing fails gets its error; the others are sent
        def broken(p: Any) -> None:
            p.get("k0")
            raise ValueError("bug")
        res = await asyncio.gather(c.run(broken), c.run(get("k0")), return_exceptions=True)
        assert isinstance(res[0], ValueError) and res[1] == ["zero"]
    finally:
        await close_store(store)


async def test_an_outage_fails_every_request_of_the_round_trip(redis_url: str) -> None:
    """The store refuses connections (a client of a port nothing listens on): every request of
    the round trip gets the error, and the next round trip, on the store again, goes."""
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from testkit import free_port

    settings = Settings(redis_url=redis_url, data_file=None, partitions=1)
    store = await open_store(settings)
    dead = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=2,
                          decode_responses=True)
    try:
        c = Coalescer(store)
        real = store.redis
        store.redis = dead
        res = await asyncio.gather(*(c.run(lambda p: p.get("x")) for _ in range(3)),
                                   return_exceptions=True)
        assert all(isinstance(r, RedisConnectionError) for r in res), res
        store.redis = real
        assert await c.run(lambda p: p.get("x")) == [None]   # and the next round trip goes
    finally:
        await dead.aclose()
        await close_store(store)


async def _usage_of(store: Store, ws: str, rule: str) -> tuple[dict[str, str], list[str]]:
    stats = await store.redis.hgetall(K.rule_stats(ws, rule))
    runs = await store.redis.lrange(K.rule_runs(ws, rule), 0, -1)
    return stats, runs


async def test_usage_is_batched_and_exact_with_complete_run_records(settings: Settings) -> None:
    """Events over tickets on every partition; each rule's fire count, last-fired time and run
    list equal what the run records say (the records name every fired rule with its explain)."""
    settings = replace(settings, runs_per_ticket=20)
    store, ws = await _setup(settings)
    try:
        sent = [ev(f"E-{t}-{s}", f"T-{t}", s, vip=(t + s) % 3 == 0)
                for s in range(4) for t in range(30)]
        await events.append_events(store, ws, sent)
        worker = Worker(store=store, burst=True)
        await worker.run()
        assert worker.applier.coalescer.round_trips < 3 * len(sent) / 2  # shared, not per request
        runs = {}
        for e in sent:
            marker = orjson.loads(await store.redis.get(K.event_marker(ws, e["id"])))
            assert marker["status"] == "processed", e["id"]
            runs[marker["run_id"]] = await run_store.get_run(store, ws, marker["run_id"])   # as read
        for rule in ("r1", "r2"):
            fired = [r for r in runs.values() if rule in r["matched"]]
            assert all(any(i["id"] == rule and i["matched"] for i in r["rules"]) for r in fired)
            stats, listed = await _usage_of(store, ws, rule)
            hours = {k: int(v) for k, v in stats.items() if k.startswith("h:")}
            assert sum(hours.values()) == len(fired) > 0, rule
            assert stats["last"] == max(r["at"] for r in fired)
            newest = sorted(fired, key=lambda r: r["at"], reverse=True)
            assert len(listed) == min(20, len(fired))
            assert set(listed) <= {r["id"] for r in fired}
            assert {r["id"] for r in newest[:5]} <= set(listed)
        assert sum(1 for r in runs.values() if "r2" in r["matched"]) == sum(
            1 for e in sent if "vip" in e["ticket"]["tags"])
    finally:
        await close_store(store)


async def test_usage_in_memory_is_written_at_shutdown(settings: Settings) -> None:
    """What is batched when the worker stops is written before it returns (a kill -9 loses at
    most the last batch of usage counts; never an event, whose run record is in its commit)."""
    store, ws = await _setup(settings)
    try:
        worker = Worker(store=store)
        task = asyncio.create_task(worker.run())
        await events.append_events(store, ws, [ev("E-1", "T-1", 0, vip=True)])
        for _ in range(500):
            marker = await store.redis.get(K.event_marker(ws, "E-1"))
            if marker and orjson.loads(marker)["status"] == "processed":
                break
            await asyncio.sleep(0.01)
        # the marker is in the commit, the usage is counted just after it and goes out with the
        # next round trip: wait for it, so the batch below is the only one left in memory
        for _ in range(500):
            if (await _usage_of(store, ws, "r1"))[1]:
                break
            await asyncio.sleep(0.01)
        # more usage in memory than was written: as if fires had just been counted
        worker.applier.tallies._usage.add(ws, "run_late", "2026-11-23T09:00:00.5Z", 492_345, ["r1"])
        worker.stop()
        await task
        stats, listed = await _usage_of(store, ws, "r1")
        assert stats["h:492345"] == "1" and stats["last"] >= "2026-11-23T09:00:00.5Z"
        assert listed[0] == "run_late" and len(listed) == 2
        assert not worker.applier.tallies._usage
    finally:
        await close_store(store)


def test_a_batch_not_written_joins_the_next_one_oldest_first() -> None:
    usage = Usage(runs_kept=3)
    usage.add("w", "run_1", "2026-11-23T08:00:01Z", 10, ["r1", "r2"])
    usage.add("w", "run_2", "2026-11-23T08:00:02Z", 10, ["r1"])
    taken = usage.take()
    assert not usage
    usage.add("w", "run_3", "2026-11-23T08:00:03Z", 11, ["r1"])
    usage.add("w", "run_4", "2026-11-23T08:00:04Z", 11, ["r1"])
    usage.put_back(taken)   # the write of the first batch failed
    again = usage.take()
    r1 = again[("w", "r1")]
    assert r1.runs == ["run_2", "run_3", "run_4"]    # oldest first, capped at runs_kept
    assert dict(r1.hours) == {10: 2, 11: 2} and r1.last == "2026-11-23T08:00:04Z"
    assert again[("w", "r2")].runs == ["run_1"]
