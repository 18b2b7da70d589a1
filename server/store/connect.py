"""Open the store: a real Redis (DESKFLOW_REDIS_URL) or the embedded store, same code path.

The embedded store (no DESKFLOW_REDIS_URL, a data file set) is a managed redis-server child with
its append-only file in the data directory: server/store/embedded.py says why and what it
guarantees, server/store/embedded_open.py opens it. Without a data file (tests), or with no server
binary anywhere, or DESKFLOW_EMBEDDED_SERVER=none, it is fakeredis in this process, which loads a JSON snapshot at start and writes one on a
clean shutdown (atomically: temp file + rename), so a restart of the one-process set-up keeps
workspaces, keys, rules and tickets. The snapshot keeps every key with its TTL; a stream's consumer
group restarts from before its oldest pending entry, so nothing delivered-but-unacknowledged is
lost (processed markers make the redelivery harmless).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from server.settings import Settings
from server.store.cluster_connect import cluster_enabled, open_cluster
from server.store import packing
from server.store.errors import guarded
from server.store.sealing import Sealer

__all__ = ["Store", "Wakeup", "open_store", "close_store", "save_snapshot", "load_snapshot"]

log = logging.getLogger("deskflow.store")
packing.install()   # hiredis packs the commands of every asyncio connection (server/store/packing.py)


class Wakeup:
    """In-process wake-ups: whoever queues work calls set(partitions); each waiting loop has its
    own event, for its own partition (or for any, `waiter()` with none).

    The embedded store cannot block on XREADGROUP, so a worker in the same process waits on this
    instead of polling; with Redis it only shortens waits (BLOCK does the rest). Only the loops of
    the partitions written to are woken: a broadcast woke all 16 partition loops for each event,
    15 of which then read their stream (a script call each) to find nothing, which was most of an
    event's cost at moderate rates (serve: 3.6 ms of CPU an event at 100/s, 1.0 ms sustained)."""

    def __init__(self) -> None:
        self._waiters: dict[asyncio.Event, int | None] = {}

    def waiter(self, partition: int | None = None) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[event] = partition
        return event

    def forget(self, event: asyncio.Event) -> None:
        self._waiters.pop(event, None)

    def set(self, partitions: Iterable[int] | None = None) -> None:
        """Wake the waiters of `partitions` and those of any partition; None wakes every one."""
        wanted = None if partitions is None else set(partitions)
        for event, partition in list(self._waiters.items()):
            if wanted is None or partition is None or partition in wanted:
                event.set()


@dataclass(eq=False)
class Store:
    """The store handle passed down as lifespan state. `redis` is an async client (decoded str)."""

    redis: aioredis.Redis
    settings: Settings
    embedded: bool
    # Set by ingest (and timers) in this process so a worker in the same process wakes at once.
    wakeup: Wakeup = field(default_factory=Wakeup)
    # Set by a worker in this process that applied a run with a `webhook` effect: the outbox
    # (server/outbox.py) cuts and sends it at once instead of at its next poll.
    outbox_wakeup: Wakeup = field(default_factory=Wakeup)
    # Seals and opens secret values (store/sealing.py); built from the settings by open_store.
    sealer: Sealer = field(default_factory=lambda: Sealer.from_settings(None, None))
    # The embedded store's managed redis-server (server/store/embedded.py), stopped by close_store.
    server: Any = None
    # What the store is, when it is not what the settings alone say (a fallback chose another).
    label: str | None = None

    @property
    def description(self) -> str:
        return self.label or self.settings.store_description

    @guarded
    async def ping(self) -> bool:
        return bool(await self.redis.ping())


def _client(settings: Settings) -> tuple[aioredis.Redis, bool]:
    if settings.redis_url:
        client = aioredis.Redis.from_url(
            settings.redis_url, decode_responses=True, socket_connect_timeout=2,
            socket_timeout=max(5.0, settings.block_ms / 1000 * 3),
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1), health_check_interval=15)
        return client, False
    return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True), True


async def _redis_client(settings: Settings) -> aioredis.Redis:
    """The Redis URL branch: a cluster client when the node is part of a cluster (or forced)."""
    client, _ = _client(settings)
    if await cluster_enabled(client, settings):
        await client.aclose()
        from server.selfguard import note_cluster   # every node is the store's, not only the seed

        cluster = await open_cluster(settings)
        await note_cluster(cluster)
        return cluster  # type: ignore[return-value]  # a Redis subclass in all but name (store/cluster.py)
    return client


async def open_store(settings: Settings) -> Store:
    if not settings.redis_url and settings.data_file:
        from server.store.embedded_open import open_managed

        managed = await open_managed(settings)
        if managed is not None:
            return managed
    if settings.redis_url:
        from server.selfguard import note_store   # the broker must not call the store either

        await note_store(settings.redis_url)
        client, embedded = await _redis_client(settings), False
    else:
        client, embedded = _client(settings)
    store = Store(redis=client, settings=settings, embedded=embedded,
                  sealer=Sealer.from_settings(settings.secrets_key, settings.secrets_key_file))
    if embedded and settings.data_file and os.path.exists(settings.data_file):
        n = await load_snapshot(store, settings.data_file)
        log.info("loaded %d keys from %s", n, settings.data_file)
    return store


async def close_store(store: Store) -> None:
    if store.server is not None:
        await store.redis.aclose()
        await store.server.stop()
        return
    if store.embedded and store.settings.data_file:
        n = await save_snapshot(store, store.settings.data_file)
        log.info("saved %d keys to %s", n, store.settings.data_file)
    from server.selfguard import forget_cluster   # (a no-op for a client it never noted)

    forget_cluster(store.redis)
    await store.redis.aclose()


def _before(stream_id: str) -> str:
    ms, seq = (int(x) for x in stream_id.split("-"))
    return f"{ms}-{seq - 1}" if seq else f"{max(ms - 1, 0)}-{2**64 - 1 if ms else 0}"


async def _dump_key(r: aioredis.Redis, key: str) -> dict[str, Any] | None:
    kind = await r.type(key)
    item: dict[str, Any] = {"k": key, "t": kind, "ttl": await r.pttl(key)}
    if kind == "string":
        item["v"] = await r.get(key)
    elif kind == "hash":
        item["v"] = await r.hgetall(key)
    elif kind == "list":
        item["v"] = await r.lrange(key, 0, -1)
    elif kind == "set":
        item["v"] = sorted(await r.smembers(key))
    elif kind == "zset":
        item["v"] = await r.zrange(key, 0, -1, withscores=True)
    elif kind == "stream":
        item["v"] = await r.xrange(key)
        info = await r.xinfo_stream(key)
        item["last"] = info["last-generated-id"]
        groups = []
        for g in await r.xinfo_groups(key):
            start = g["last-delivered-id"]
            if g["pending"]:
                oldest = (await r.xpending(key, g["name"]))["min"]
                start = _before(oldest)
            groups.append({"name": g["name"], "start": start})
        item["groups"] = groups
    else:
        return None
    return item


async def save_snapshot(store: Store, path: str) -> int:
    r = store.redis
    items = [i async for i in _dump_all(r)]
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".deskflow-", dir=directory)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps({"version": 1, "keys": items}))
    os.replace(tmp, path)
    return len(items)


async def _dump_all(r: aioredis.Redis):  # type: ignore[no-untyped-def]
    async for key in r.scan_iter(count=1000):
        item = await _dump_key(r, key)
        if item is not None:
            yield item


async def load_snapshot(store: Store, path: str) -> int:
    with open(path, "rb") as fh:
        data = orjson.loads(fh.read())
    r = store.redis
    for item in data["keys"]:
        key, kind, value = item["k"], item["t"], item["v"]
        if kind == "string":
            await r.set(key, value)
        elif kind == "hash" and value:
            await r.hset(key, mapping=value)
        elif kind == "list" and value:
            await r.rpush(key, *value)
        elif kind == "set" and value:
            await r.sadd(key, *value)
        elif kind == "zset" and value:
            await r.zadd(key, {m: s for m, s in value})
        elif kind == "stream":
            for entry_id, fields in value:
                await r.xadd(key, fields, id=entry_id)
            for g in item.get("groups", []):
                await r.xgroup_create(key, g["name"], id=g["start"], mkstream=True)
        if item["ttl"] and item["ttl"] > 0:
            await r.pexpire(key, item["ttl"])
    return len(data["keys"])
