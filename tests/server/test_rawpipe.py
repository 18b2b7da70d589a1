"""A coalesced round trip's replies read from hiredis directly (server/store/rawpipe.py): the same
values and errors redis-py's pipeline gives, no per-reply `read_response`, and a connection that
goes away mid-round trip leaves the next one working."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

from server.settings import Settings
from server.store import rawpipe
from server.store.coalesce import Coalescer
from server.store.connect import Store, close_store, open_store

pytestmark = pytest.mark.anyio

SCRIPT = "if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end return 0"


def _queue(p: Any) -> None:
    """One of each kind of reply the worker's round trips get (store/tickets.py, events.py,
    usage.py, stats.py): bulk strings, nil, arrays, a hash (a callback's dict), integers, a
    script's integer, an error reply in the middle, a stream id."""
    p.set("rp:s", "v")
    p.mget(["rp:s", "rp:none", "rp:s"])
    p.hset("rp:h", mapping={"a": "1", "b": "2"})
    p.hgetall("rp:h")
    p.hgetall("rp:absent")
    p.incr("rp:n")
    p.hincrby("rp:s", "x", 1)   # WRONGTYPE: a string
    p.eval(SCRIPT, 1, "rp:s", "v")
    p.eval(SCRIPT, 1, "rp:s", "w")
    p.xadd("rp:x", {"d": "1"}, id="1-1")
    p.xrange("rp:x")
    p.exists("rp:s", "rp:none")
    p.expire("rp:s", 100)
    p.get("rp:none")


def _plain(replies: list[Any]) -> list[Any]:
    return [(type(r).__name__, str(r)) if isinstance(r, Exception) else r for r in replies]


async def _replies(store: Store, raw: bool) -> list[Any]:
    await store.redis.delete("rp:s", "rp:h", "rp:n", "rp:x")
    p = store.redis.pipeline(transaction=False)
    _queue(p)
    return _plain(await rawpipe.execute(p) if raw else await p.execute(raise_on_error=False))


async def test_the_replies_are_redis_pys(settings: Settings) -> None:
    store = await open_store(settings)
    try:
        ours, theirs = await _replies(store, raw=True), await _replies(store, raw=False)
        assert ours == theirs
        assert ours[3] == {"a": "1", "b": "2"} and ours[4] == {}
        assert ours[6][0] == "ResponseError" and "WRONGTYPE" in ours[6][1]
        if not store.embedded:   # (the tests' in-process store runs no Lua)
            assert ours[7:9] == [1, 0]
    finally:
        await close_store(store)


@pytest.mark.redis
async def test_no_reply_goes_through_read_response(redis_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the module: a coalesced round trip of many requests reads none of its replies
    through Connection.read_response (a timeout context and more per reply)."""
    store = await open_store(Settings(redis_url=redis_url))
    try:
        reads = 0
        real = AbstractConnection.read_response

        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return await real(self, *args, **kwargs)

        await store.redis.ping()   # the pool's connection made before counting
        monkeypatch.setattr(AbstractConnection, "read_response", counted)
        c = Coalescer(store)
        got = await asyncio.gather(*(c.run(lambda p, i=i: p.incr(f"rp:c{i % 3}")) for i in range(30)))
        assert sorted(r[0] for r in got) == sorted([*range(1, 11)] * 3)
        assert c.round_trips <= 2 and reads == 0
    finally:
        await close_store(store)


@pytest.mark.redis
async def test_a_round_trip_cancelled_midway_leaves_the_next_one_whole(redis_url: str) -> None:
    """Replies left unread on a socket would be the next round trip's: the connection is dropped."""
    store = await open_store(Settings(redis_url=redis_url))
    try:
        await store.redis.set("rp:s", "v")
        p = store.redis.pipeline(transaction=False)
        p.blpop(["rp:empty"], timeout=5)   # holds the reply back
        p.get("rp:s")
        task = asyncio.ensure_future(rawpipe.execute(p))
        await _blocked(store)   # sent, its first reply not come
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.redis.rpush("rp:empty", "late")   # the BLPOP's reply, had it stayed
        q = store.redis.pipeline(transaction=False)
        q.get("rp:s")
        q.lrange("rp:empty", 0, -1)
        assert await rawpipe.execute(q) == ["v", ["late"]]
    finally:
        await close_store(store)


async def _blocked(store: Store) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    db = store.redis.connection_pool.connection_kwargs.get("db", 0)
    while not any(c.get("cmd") == "blpop" and str(c.get("db")) == str(db)
                  for c in await store.redis.client_list()):
        assert asyncio.get_running_loop().time() < deadline, "the BLPOP never blocked"
        await asyncio.sleep(0.01)


async def test_what_it_cannot_read_goes_through_redis_py(settings: Settings) -> None:
    """A transaction, or a store whose connections are not plain redis-py ones (the in-process
    fakeredis), is executed by the pipeline itself, with the same replies."""
    store = await open_store(settings)
    try:
        p = store.redis.pipeline(transaction=True)
        p.set("rp:t", "1")
        p.incr("rp:t")
        assert not rawpipe.usable(p)
        assert await rawpipe.execute(p) == [True, 2]
        err = store.redis.pipeline(transaction=False)
        err.lpush("rp:t", "x")
        (reply,) = await rawpipe.execute(err)
        assert isinstance(reply, ResponseError)
    finally:
        await close_store(store)


@pytest.mark.redis
async def test_a_pipeline_subclass_goes_through_its_own_execute(redis_url: str) -> None:
    """A subclass may send elsewhere than its pool: the cluster's NodesPipeline holds a placeholder
    pool (127.0.0.1:6379, DB 0) and routes each command to its slot's node. Read through its pool,
    its commits went to DB 0 of that server (test_cluster_slots caught it)."""
    from redis.asyncio.client import Pipeline

    from server.store.cluster_pipeline import NodesPipeline

    store = await open_store(Settings(redis_url=redis_url))
    try:
        executed: list[int] = []

        class Routed(Pipeline):
            async def execute(self, raise_on_error: bool = True) -> list[Any]:
                executed.append(len(self.command_stack))
                return list(await super().execute(raise_on_error))

        p = Routed(store.redis.connection_pool, store.redis.response_callbacks, False, None)
        p.get("rp:none")
        assert not rawpipe.usable(p)
        assert await rawpipe.execute(p) == [None] and executed == [1]
        assert NodesPipeline.__mro__[1] is Pipeline   # the case this stands for
    finally:
        await close_store(store)

