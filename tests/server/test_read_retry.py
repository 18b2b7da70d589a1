"""Per-ticket order when a partition read's reply is lost and the client sends the read again.

The cause of T-1's e3 applied after e4 in tests/cluster's reshard test: a worker's read is one
script call (lease check + XREADGROUP >, store/events.read_entries), and XREADGROUP > moves what it
returns into the consumer's pending list as it runs. When the reply never arrives -- redis-py's
cluster client closes every connection of every node on each fifth MOVED it meets (a reshard is
a stream of MOVED), including connections a read is waiting on; a reply can also time out -- the
client library sends the same call again, and that second run returned the *next* entries. The
first ones waited in the worker's own pending list, unseen, until a later claim (after a store
error or a lease change) applied them: after the ticket's later events.

Now a read first returns the consumer's own pending entries past the last entry it was handed,
so the read the library repeats returns what the lost reply held. The loss is made here the
way the reshard made it: the reply of one read is read off the connection, the connection is
closed, and the client's own retry does the rest (redis-py's Retry on a single Redis, RedisCluster's
retry loop on a cluster: tests/cluster/test_cluster_core.py runs these tests there too).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError

from server.settings import Settings
from server.store import catalog, events
from server.store import keys as K
from server.store.connect import Store, close_store, open_store
from server.worker import Worker

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

RULE = {"id": "r1", "name": "stamp", "enabled": True,
        "triggers": ["ticket.created", "ticket.updated"],
        "actions": [{"type": "add_tags", "tags": ["seen"]}]}


def ev(i: int) -> dict[str, Any]:
    return {"id": f"E-{i}", "type": "ticket.updated" if i else "ticket.created",
            "occurred_at": "2026-11-23T08:00:00Z", "ticket": {"id": "T-1", "custom": {"seq": i}}}


@pytest.fixture
def store_kind() -> str:
    """A store reached over a connection (the in-process store has no reply to lose); the
    cluster tests point `settings` at the cluster instead."""
    return "redis"


def _is_read_reply(reply: Any) -> bool:
    """The reply of store/events._READ_OWNED that hands out entries: {1, entries, ...}."""
    return (isinstance(reply, list) and len(reply) >= 3 and reply[0] == 1
            and isinstance(reply[1], list) and bool(reply[1]))


class LostReplies:
    """Arms the loss of the next `n` read replies that hand out entries: the reply is read off the
    connection (the server ran the read), then the connection is closed and ConnectionError
    raised, as when another task closed the connection under the command."""

    def __init__(self) -> None:
        self.armed = 0
        self.lost: list[list[str]] = []   # the entry ids of each reply lost

    def arm(self, n: int = 1) -> None:
        self.armed = n


@pytest.fixture
def lost_replies(monkeypatch: pytest.MonkeyPatch) -> Iterator[LostReplies]:
    loss = LostReplies()
    real = AbstractConnection.read_response

    async def read_response(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        reply = await real(self, *args, **kwargs)
        if loss.armed and _is_read_reply(reply):
            loss.armed -= 1
            loss.lost.append([e[0].decode() if isinstance(e[0], bytes) else str(e[0])
                              for e in reply[1]])
            await self.disconnect()
            raise ConnectionError("Connection closed by server.")
        return reply

    monkeypatch.setattr(AbstractConnection, "read_response", read_response)
    yield loss


async def _setup(settings: Settings, **overrides: Any) -> tuple[Store, str]:
    store = await open_store(replace(settings, partitions=1, **overrides))
    ws, _ = await catalog.create_workspace(store, "w")
    await catalog.put_rule(store, ws["id"], {**RULE, "position": 1})
    await events.ensure_groups(store)
    return store, ws["id"]


def _ids(entries: list[events.Entry]) -> list[str]:
    return [orjson.loads(f["e"])["id"] for _, f in entries]


async def _applied(store: Store, ws: str) -> list[str]:
    run_ids = await store.redis.lrange(K.ticket_runs(ws, "T-1"), 0, -1)
    runs = [orjson.loads(r) for r in await store.redis.mget([K.run(ws, r) for r in run_ids])]
    return [r["event_id"] for r in reversed(runs)]


async def test_a_read_sent_again_after_its_reply_was_lost_returns_what_the_reply_held(
        settings: Settings, lost_replies: LostReplies) -> None:
    """The library's second run of the read returns E-0..E-2 (the lost reply's), not E-3..E-5;
    the read after it goes on with E-3..E-5. Before the fix the first call returned E-3..E-5."""
    store, ws = await _setup(settings)
    try:
        await events.append_events(store, ws, [ev(i) for i in range(6)])
        after: dict[int, str] = {}
        lost_replies.arm()
        first = await events.read_entries(store, "a", [0], count=3, block_ms=None, after=after)
        assert len(lost_replies.lost) == 1 and len(lost_replies.lost[0]) == 3, lost_replies.lost
        assert _ids(first[0]) == ["E-0", "E-1", "E-2"]
        assert [i for i, _ in first[0]] == lost_replies.lost[0]
        second = await events.read_entries(store, "a", [0], count=3, block_ms=None, after=after)
        assert _ids(second[0]) == ["E-3", "E-4", "E-5"]
        assert after[0] == second[0][-1][0]
        assert await events.read_entries(store, "a", [0], count=3, block_ms=None,
                                         after=after) == {}
    finally:
        await close_store(store)


async def test_a_pending_entry_deleted_after_delivery_is_acked_not_handed_out(
        settings: Settings) -> None:
    """A copy delivered in a lost reply and then XDELed (ingest drops a duplicate copy) is not
    handed out by the repeated read, and leaves this consumer's pending list."""
    store, ws = await _setup(settings)
    try:
        await events.append_events(store, ws, [ev(0), ev(1)])
        got = await events.read_entries(store, "a", [0], count=10, block_ms=None, after={})
        (e0, _), (e1, _) = got[0]
        await store.redis.xdel(K.stream(0), e0)
        # as if the reply above had been lost: the read runs again from the same place
        again = await events.read_entries(store, "a", [0], count=10, block_ms=None, after={})
        assert [i for i, _ in again[0]] == [e1]
        pending = await store.redis.xpending_range(K.stream(0), K.GROUP, min="-", max="+",
                                                   count=10)
        assert [p["message_id"] for p in pending] == [e1]
    finally:
        await close_store(store)


async def test_a_ticket_is_applied_in_order_when_a_read_reply_is_lost(
        settings: Settings, lost_replies: LostReplies) -> None:
    """Through the worker: its first read's reply (E-0..E-2) is lost and the read sent again.
    Every event is applied once, in order. Before the fix the worker applied E-3..E-5 and left
    E-0..E-2 in its pending list; the next owner's claim applied them after: E-3, E-4, E-5,
    E-0, E-1, E-2 (the reshard test's e0, e1, e2, e4, e5, ...)."""
    store, ws = await _setup(settings, batch_size=3)
    try:
        await events.append_events(store, ws, [ev(i) for i in range(6)])
        lost_replies.arm()
        a = Worker(store=store, name="a", burst=True)
        await a.run()
        assert len(lost_replies.lost) == 1, "no read reply was lost: the test tested nothing"
        # whatever a left pending, the next owner claims and applies
        b = Worker(store=store, name="b", burst=True)
        await b.run()
        assert await _applied(store, ws) == [f"E-{i}" for i in range(6)]
        assert await store.redis.xlen(K.stream(0)) == 0
    finally:
        await close_store(store)


# -- the read after the stream was emptied waits first (store/events.read_entries `drained`) ----

class _Reads:
    """Counts the partition read's script calls (store/events._read_owned)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = events._read_owned

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await real(*args, **kwargs)

        monkeypatch.setattr(events, "_read_owned", counted)


async def test_a_read_after_the_stream_was_emptied_waits_before_it_reads(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that took every new entry marks the partition drained; the next blocking read
    waits (XREAD BLOCK) without a script call, reads once when an entry comes, and makes no read
    at all when its wait times out. A read that took COUNT entries (more may be there) does not
    mark it: the next read reads at once."""
    import asyncio
    import time

    store, ws = await _setup(settings)
    reads = _Reads(monkeypatch)
    try:
        await events.append_events(store, ws, [ev(i) for i in range(5)])
        after: dict[int, str] = {}
        drained: dict[int, str] = {}
        got = await events.read_entries(store, "a", [0], count=2, block_ms=None, after=after,
                                        drained=drained)
        assert _ids(got[0]) == ["E-0", "E-1"] and drained == {}   # COUNT taken: maybe more
        started = time.monotonic()
        got = await events.read_entries(store, "a", [0], count=10, block_ms=5000, after=after,
                                        drained=drained)
        assert _ids(got[0]) == ["E-2", "E-3", "E-4"] and time.monotonic() - started < 2
        assert drained == {0: got[0][-1][0]}
        reads.calls = 0
        started = time.monotonic()
        assert await events.read_entries(store, "a", [0], count=10, block_ms=200, after=after,
                                         drained=drained) == {}
        assert reads.calls == 0 and time.monotonic() - started >= 0.15   # it waited, no read
        later = asyncio.get_running_loop().call_later(
            0.2, lambda: asyncio.ensure_future(events.append_events(store, ws, [ev(5)])))
        got = await events.read_entries(store, "a", [0], count=10, block_ms=5000, after=after,
                                        drained=drained)
        later.cancel()
        assert _ids(got[0]) == ["E-5"] and reads.calls == 1
        assert drained == {0: got[0][-1][0]}
        # what arrived while nothing was reading is read at once: the wait returns at once
        await events.append_events(store, ws, [ev(6)])
        started = time.monotonic()
        got = await events.read_entries(store, "a", [0], count=10, block_ms=5000, after=after,
                                        drained=drained)
        assert _ids(got[0]) == ["E-6"] and time.monotonic() - started < 2
    finally:
        await close_store(store)


async def test_a_lost_reply_leaves_the_partition_to_be_read_not_waited_on(
        settings: Settings, lost_replies: LostReplies) -> None:
    """A read whose reply was lost and sent again hands out the consumer's own pending entries:
    the stream may hold more, so the partition is not marked drained and the next read reads
    (were it to wait on the stream's end instead, E-2 would wait for an entry after it)."""
    store, ws = await _setup(settings)
    try:
        await events.append_events(store, ws, [ev(i) for i in range(3)])
        after: dict[int, str] = {}
        drained: dict[int, str] = {}
        got = await events.read_entries(store, "a", [0], count=2, block_ms=None, after=after,
                                        drained=drained)
        assert _ids(got[0]) == ["E-0", "E-1"] and drained == {}
        lost_replies.arm()
        got = await events.read_entries(store, "a", [0], count=2, block_ms=5000, after=after,
                                        drained=drained)
        assert _ids(got[0]) == ["E-2"] and len(lost_replies.lost) == 1
        assert drained == {}   # the repeat read handed out pending entries: read next time
    finally:
        await close_store(store)


async def test_a_partition_marked_drained_but_lost_meanwhile_reads_nothing(
        settings: Settings) -> None:
    """The wait of a drained partition reads nothing for anyone: when new entries come after
    another worker took the lease, the read that follows checks the lease and hands out none."""
    store, ws = await _setup(settings)
    try:
        await events.append_events(store, ws, [ev(0)])
        after: dict[int, str] = {}
        drained: dict[int, str] = {}
        await events.acquire_lease(store, 0, "a")
        got = await events.read_entries(store, "a", [0], count=10, block_ms=None, after=after,
                                        drained=drained)
        assert _ids(got[0]) == ["E-0"] and 0 in drained
        await store.redis.set(K.lease(0), "b")   # a's lease ran out; b took it
        await events.append_events(store, ws, [ev(1)])
        assert await events.read_entries(store, "a", [0], count=10, block_ms=2000, after=after,
                                         drained=drained) == {}
        assert (await store.redis.xpending(K.stream(0), K.GROUP))["pending"] == 1   # E-0 only
        got = await events.read_entries(store, "b", [0], count=10, block_ms=None)
        assert _ids(got[0]) == ["E-1"]
    finally:
        await close_store(store)
