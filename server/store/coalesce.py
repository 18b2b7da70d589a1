"""One round trip for what a worker's concurrent passes ask of the store at once.

A worker runs many passes at once (partitions x lanes, server/lanes.py), and each pass's load, its
commit and its entry's ack used to be a round trip of its own: about four per event, each paying
the client's and the event loop's per-round-trip cost. A `Coalescer` sends what is asked while a
round trip is in flight together as the next one (one non-transactional pipeline): at low load a
request goes at once, with no added wait; under load one round trip carries as many as arrived
meanwhile (Nagle's algorithm without its timer).

Each request keeps its own commands, in the order asked: a commit stays its own check-and-set
(one EVAL, which Redis runs atomically whatever else the pipeline holds), and what one lane asks
after another request completed goes in a later round trip, so a ticket's entries still commit in
stream order. A request whose reply is an error gets that error; an outage fails every request of
the round trip (the callers' `guarded` turns it into StoreUnavailable).

`before` adds commands of the owner's own to the head of each round trip (the applier's batched
rule usage, server/apply.py) and is told whether they were sent; `kick` starts a round trip for them
alone when nothing else is asked. The replies are read by store/rawpipe.py: hiredis' own, without
redis-py's per-reply steps, where the connection is one it can read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from server.store import rawpipe
from server.store.connect import Store

__all__ = ["Coalescer", "Queue"]

Queue = Callable[[Any], None]            # queues one request's commands on a pipeline
Before = Callable[[Any], Callable[[bool], None] | None]


class Coalescer:
    def __init__(self, store: Store, *, before: Before | None = None) -> None:
        self._store = store
        self._before = before
        self._pending: list[tuple[Queue, asyncio.Future[list[Any]]]] = []
        self._task: asyncio.Task[None] | None = None
        self._kicked = False
        self.round_trips = 0                 # for the benchmarks and tests
        self.requests = 0

    async def run(self, queue: Queue) -> list[Any]:
        """The replies to the commands `queue` puts on the pipeline, once they have run."""
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((queue, fut))
        self._start()
        return await fut

    def kick(self) -> None:
        """Send `before`'s commands soon, with whatever else is asked by then."""
        self._kicked = True
        self._start()

    async def idle(self) -> None:
        """Until no round trip is in flight or due."""
        while self._task is not None:
            await asyncio.wait([self._task])

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send_all())

    def _pipeline(self) -> Any:
        from server.store.cluster import ClusterClient, NodesPipeline

        redis = self._store.redis
        if isinstance(redis, ClusterClient) and redis.wait_replicas:
            # commits that replicas must confirm: each node's batch ends in WAIT
            return NodesPipeline(redis, wait_replicas=redis.wait_replicas)
        return redis.pipeline(transaction=False)

    async def _send_all(self) -> None:
        try:
            while self._pending or self._kicked:
                batch, self._pending, self._kicked = self._pending, [], False
                await self._send(batch)
        finally:
            self._task = None
            if self._pending:   # asked while the last round trip failed: not left waiting
                self._start()

    async def _send(self, batch: list[tuple[Queue, asyncio.Future[list[Any]]]]) -> None:
        p = self._pipeline()
        sent = self._before(p) if self._before is not None else None
        spans: list[tuple[int, int] | None] = []
        for queue, fut in batch:
            start = len(p.command_stack)
            try:
                queue(p)
            except Exception as exc:  # noqa: BLE001 -- the request's own bug, given to it
                del p.command_stack[start:]
                if not fut.done():
                    fut.set_exception(exc)
                spans.append(None)
                continue
            spans.append((start, len(p.command_stack)))
        self.round_trips += 1
        self.requests += len(batch)
        try:
            replies = await rawpipe.execute(p)   # (its replies as p.execute gives them)
        except BaseException as exc:
            if sent is not None:
                sent(False)
            for (_, fut), span in zip(batch, spans, strict=True):
                if span is not None and not fut.done():
                    if isinstance(exc, asyncio.CancelledError):
                        fut.cancel()
                    else:
                        fut.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if sent is not None:
            sent(True)
        for (_, fut), span in zip(batch, spans, strict=True):
            if span is None or fut.done():
                continue
            mine = replies[span[0]:span[1]]
            error = next((r for r in mine if isinstance(r, Exception)), None)
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(mine)
