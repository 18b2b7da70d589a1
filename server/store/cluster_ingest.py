"""Ingest's writes in order (and confirmed by replicas when asked), and the workers' blocking wait,
on a single Redis and on a cluster.

Why two round trips on a cluster. On one Redis, ingest sends every XADD and then every SET NX of
the markers on one connection, and Redis runs them in that order: an event's stream entry exists
before its marker does, so a marker never names an entry that was not written (store/events.py
relies on it: a retry that finds the marker skips its own copy). On a cluster the stream and the
marker live in different slots, on different nodes, and one pipeline's commands to two nodes run
in no particular order; so the XADDs go first, and the markers only once every XADD answered.

DESKFLOW_REDIS_WAIT_REPLICAS=N: each round ends with `WAIT N <ms>` on every connection that
wrote (WAIT covers the writes of its own connection only), and fewer than N confirmations is a
ReplicaTimeout, which the API answers with 503 + Retry-After: the client sends the event again
(same id: idempotent). A 202 then means the event is on N replicas, so a failover that promotes
one of them keeps it (README, "Guarantees").
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from server.store.cluster import ClusterClient, NodesPipeline, ReplicaTimeout
from server.store.connect import Store

__all__ = ["write_in_order", "wait_for_entries"]

Command = tuple[Any, ...]


async def write_in_order(store: Store, first: list[Command],
                         then: list[Command]) -> tuple[list[Any], list[Any]]:
    """Run every command of `first`, then every command of `then`; their replies."""
    r, replicas = store.redis, store.settings.redis_wait_replicas
    if isinstance(r, ClusterClient):
        return await _on_cluster(r, first, replicas), await _on_cluster(r, then, replicas)
    async with r.pipeline(transaction=False) as p:
        for cmd in [*first, *then]:
            p.execute_command(*cmd)
        if replicas and not store.embedded:
            p.execute_command("WAIT", replicas, store.settings.redis_wait_ms)
        replies = await p.execute()
    if replicas and not store.embedded:
        _check_wait(replies.pop(), replicas, store.settings.redis_wait_ms)
    return replies[:len(first)], replies[len(first):]


def _check_wait(acked: Any, replicas: int, ms: int) -> None:
    if int(acked) < replicas:
        raise ReplicaTimeout(f"WAIT: {acked} of {replicas} replicas confirmed within {ms} ms")


async def _on_cluster(r: ClusterClient, commands: list[Command], replicas: int) -> list[Any]:
    async with NodesPipeline(r, wait_replicas=replicas) as p:
        for cmd in commands:
            p.execute_command(*cmd)
        return list(await p.execute())


async def wait_for_entries(r: ClusterClient, waits: dict[str, str], block_ms: int) -> None:
    """Until one of the streams has an entry after its id, or block_ms: one XREAD BLOCK per
    stream (a cluster refuses one XREAD over streams of several slots), each in its own task,
    kept across calls so a wait cut short by another stream's entry is not paid for again."""
    tasks = []
    for stream, last in waits.items():
        task = r.blocked.get(stream)
        if task is None or task.done():
            task = asyncio.ensure_future(r.block_until_entry(stream, last, block_ms))
            task.add_done_callback(_consume)
            r.blocked[stream] = task
        tasks.append(task)
    await asyncio.wait(tasks, timeout=block_ms / 1000 + 1, return_when=asyncio.FIRST_COMPLETED)


def _consume(task: asyncio.Task[Any]) -> None:
    """A wait that failed is only a wait cut short (the next read reports a real outage)."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
