"""The worker: leases and partition loops; each entry's load -> process -> commit is server/apply.py.

Ordering: a ticket's events all go to one stream partition (store/keys.py), and a partition is
read by one worker at a time -- the holder of its lease (SET NX PX reclaim_idle_ms, renewed every
third of that). The worker runs one loop per partition it holds; the loop hands its entries to
per-ticket lanes (server/lanes.py): a ticket's entries are applied one after another in stream
order, so a ticket's events are applied in arrival order, while other tickets' entries -- other
workspaces' above all -- go ahead of a slow one; partitions run concurrently, in one worker and
across workers. Each worker takes about partitions / live workers of them (a partition over its
share is handed over between batches), so more workers spread load.

Crash recovery: a dead worker stops renewing; after reclaim_idle_ms its leases expire, another
worker takes the partitions and XAUTOCLAIMs their pending entries before reading new ones. Apply
is exactly-once (store/tickets.py), so the redelivery of an entry applied-but-not-acked changes no
ticket (server/apply.py says how its timers are set again). Each round's timer check is
server/partition_timers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from server.apply import Applier
from server.gcpolicy import tune_gc
from server.fence import Fence
from server.lanes import MAX_HELD, SETTLE_S, Lanes, low_water
from server.parking import Parking
from server.partition_timers import PartitionTimers
from server.rulecache import RuleCache, RulesUnavailable
from server.store import events, tickets
from server.store.connect import Store
from server.store.errors import StoreUnavailable

__all__ = ["Worker", "RuleCache"]  # RuleCache lives in server/rulecache.py

log = logging.getLogger("deskflow.worker")


class Worker:
    def __init__(self, *, store: Store, name: str | None = None, burst: bool = False,
                 handlers: dict[str, Any] | None = None, scripting: Any = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.settings = store.settings
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.burst = burst
        self.clock = clock or (lambda: datetime.now(UTC))
        self.applier = Applier(store=store, handlers=handlers, scripting=scripting,
                               clock=lambda: self.clock())
        self.rules: RuleCache = self.applier.rules
        self.timers = PartitionTimers(store, lambda: self.clock(), self.applier.timers_set)
        self.owned: set[int] = set()         # partitions whose lease we hold
        self.fence = Fence(store, self.name, self.owned)   # each pass checks its lease first
        self._fresh: set[int] = set()        # partitions whose pending entries must be claimed first
        # the last entry of each partition this worker was handed (claimed or read): its reads
        # return its own pending entries past it first, which only a lost reply leaves there
        # (store/events.read_entries)
        self._read_after: dict[int, str] = {}
        # partitions whose last read emptied the stream -> the id to wait past: their next
        # blocking read waits before it reads (store/events.read_entries)
        self._drained: dict[int, str] = {}
        self._handover: set[int] = set()     # partitions to release once their batch is done
        self._parking: dict[int, Parking] = {}   # per partition loop (server/parking.py)
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self.processed = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self.store.wakeup.set()

    async def run(self) -> int:
        """Process until stop() (or, with burst=True, until every partition is drained).

        One loop task per owned partition (each reads only its own stream, so no command spans
        two hash slots); this task keeps the leases and starts and reaps the loops."""
        tune_gc()
        await events.ensure_groups(self.store)
        try:
            await self._keep_leases_safely()
            while True:
                self._spawn()
                if self.burst:
                    if not self._loops:
                        break
                    await asyncio.gather(*self._loops.values())
                    self._reap()
                    break
                await self._sleep(self.settings.reclaim_idle_ms / 3000)
                self._reap()
                await self.applier.flush_checks()
                if self._stopping.is_set():
                    break
                await self._keep_leases_safely()
        finally:
            self._stopping.set()
            self.store.wakeup.set()
            for r in await asyncio.gather(*self._loops.values(), return_exceptions=True):
                if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError):
                    log.error("partition loop failed: %r", r)
            self._loops.clear()
            await self.applier.flush()   # batched rule usage and check counters
            await self._release_all()
            await self.applier.aclose()
        return self.processed

    def _spawn(self) -> None:
        for n in sorted(self.owned):
            if n not in self._loops and not self._stopping.is_set():
                self._loops[n] = asyncio.create_task(self._partition_loop(n),
                                                     name=f"deskflow-p{n}-{self.name}")

    def _reap(self) -> None:
        """Forget finished loops; a loop that died of a bug is re-raised here (it is a bug)."""
        for n, task in list(self._loops.items()):
            if task.done():
                del self._loops[n]
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    async def _release_all(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            for n in sorted(self.owned):
                await events.release_lease(self.store, n, self.name)
            await events.heartbeat(self.store, self.name, 0, gone=True)
        self.owned.clear()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _keep_leases_safely(self) -> None:
        try:
            await self._keep_leases()
        except StoreUnavailable as exc:
            log.warning("store unavailable while renewing leases: %s", exc)
            self._fresh |= self.owned  # claim again once back: entries may be pending

    async def _keep_leases(self) -> None:
        now_ms = int(time.time() * 1000)
        await events.heartbeat(self.store, self.name, now_ms)
        parts = self.settings.partitions
        target = math.ceil(parts / await events.live_workers(self.store))
        # all at once: renewing 16 leases one round trip after another could itself outlast the TTL
        mine, started = sorted(self.owned), time.monotonic()
        # renew_lease, never acquire_lease: a lease that lapsed is lost (its loop stops) and is
        # taken again only as a new owner, which claims first (store/events.renew_lease, issue 16)
        held = await asyncio.gather(*(events.renew_lease(self.store, n, self.name) for n in mine))
        for n, ok in zip(mine, held, strict=True):
            if ok:
                self.fence.held(n, started)
            else:
                self.owned.discard(n)  # lost (we stalled past the TTL): its loop stops
        keep = len(self.owned) - len(self._handover)
        for n in sorted(self.owned - self._handover, reverse=True):
            if keep <= target:
                break
            self._handover.add(n)  # its loop releases it after the current batch
            keep -= 1
        start = zlib.crc32(self.name.encode()) % parts
        for i in range(parts):
            if len(self.owned) >= target:
                break
            n = (start + i) % parts
            started = time.monotonic()
            if n not in self.owned and n not in self._loops and await events.acquire_lease(
                    self.store, n, self.name):
                self.fence.held(n, started)
                self.owned.add(n)
                self._fresh.add(n)

    # -- one partition --------------------------------------------------------------------------

    def _mine(self, n: int) -> bool:  # still ours, and to go on with
        return n in self.owned and n not in self._handover and not self._stopping.is_set()

    async def _partition_loop(self, n: int) -> None:
        """Claim what a previous owner left (older entries first), then read and apply new ones;
        entries go to per-ticket lanes, acked one by one as they are applied."""
        waiter = self.store.wakeup.waiter(n)
        lanes = Lanes(lambda entry_id, fields: self.handle(n, entry_id, fields),
                      ack=lambda ids: self.applier.ack(n, ids))
        self._parking[n] = Parking()
        try:
            while self._mine(n):
                try:
                    if await self._step(n, waiter, lanes):
                        continue
                except StoreUnavailable as exc:
                    log.warning("store unavailable (partition %d), retrying: %s", n, exc)
                    self._fresh.add(n)
                    await self._sleep(0.5)
                    continue
                if self.burst:
                    # a pass that ended after this round fired may have set a timer due now (an
                    # SLA clock crossed during its event): one more round fires it, else drained
                    if self.applier.timers_unread(n):
                        continue
                    return
                if self.store.embedded:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter.wait(), await self.timers.block_ms(n) / 1000)
        finally:
            self._parking.pop(n, None)
            self.store.wakeup.forget(waiter)
            await asyncio.shield(self._settle(n, lanes))
            if n in self._handover:
                self._handover.discard(n)
                self.owned.discard(n)
                with contextlib.suppress(StoreUnavailable):
                    await events.release_lease(self.store, n, self.name)

    async def _settle(self, n: int, lanes: Lanes) -> None:
        """Finish the passes in flight and ack what was applied; what the lanes took but did not
        start stays pending for the next owner (claim_pending takes it all, in stream order; the
        lease goes right after). Not every entry taken: up to MAX_HELD, a SIGTERM must not wait."""
        await lanes.drain()
        await lanes.acked()
        with contextlib.suppress(StoreUnavailable):
            await self.applier.ack(n, lanes.take_done())

    async def _step(self, n: int, waiter: asyncio.Event, lanes: Lanes) -> bool:
        """One round of partition n: claim or read entries for the lanes, wait a little for the
        lanes in flight, ack what they applied. False when there was nothing to do."""
        try:
            return await self._feed(n, waiter, lanes)
        finally:
            await asyncio.shield(self.applier.ack(n, lanes.take_done()))
            if lanes.failed is not None:
                self._fresh.add(n)   # claim again (in order) once the store or bug is dealt with
                await lanes.drain()
                await asyncio.shield(self.applier.ack(n, lanes.take_done()))
                failed, lanes.failed = lanes.failed, None
                if not isinstance(failed, _LeaseLost):
                    raise failed

    async def _feed(self, n: int, waiter: asyncio.Event, lanes: Lanes) -> bool:
        parking = self._parking[n]
        if n in self._fresh:
            await lanes.drain()  # what is in flight first: the claim takes every pending entry
            pending = await events.claim_pending(self.store, self.name, n)
            self._fresh.discard(n)
            # every pending entry is ours now and in `pending`: the next read goes on past them
            self._read_after[n] = pending[-1][0] if pending else "0-0"
            self._drained.pop(n, None)
            parking.clear()
            if pending:
                lanes.add(parking.admit(pending, lanes))
                await lanes.settle(low_water(self.settings.batch_size), SETTLE_S)
                return True
        low = low_water(self.settings.batch_size)
        got: list[events.Entry] = []
        took = bool(parking.parked) and await parking.take_back(self.store, self.name, n, lanes,
                                                                self.settings.batch_size)
        polled = self.store.embedded or self.burst
        if lanes.ready < low and lanes.backlog < MAX_HELD:
            waiter.clear()
            # no more timers than the lanes have room for: a burst of one workspace's timers
            # waits in its own due set, where the next round's fair share reaches another
            # workspace's timer, not in the stream ahead of it (store/timers.py)
            due = await self.timers.fire(n, MAX_HELD - lanes.backlog)
            # idle: block for new entries as before; lanes in flight: block briefly, so their
            # acks and a slow lane's neighbours are not kept waiting
            block = None if polled else min(self.timers.block_for(due), 100 if lanes.busy else 1 << 30)
            read = await events.read_entries(self.store, self.name, [n],
                                             count=self.settings.batch_size, block_ms=block,
                                             dues=self.timers.dues, after=self._read_after,
                                             drained=self._drained)
            got = read.get(n) or []
            lanes.add(parking.admit(got, lanes))
            if polled and not got and lanes.busy:
                # nothing new: read again on new entries, the lanes idle or a timer due, not on
                # each lane's finish (a read, timer check and ack per event: bench/RESULTS.md)
                await lanes.quiet(waiter, min(self.timers.block_for(due), 100) / 1000)
                return True
        if not lanes.busy:
            return bool(got) or took or bool(parking.parked)
        if got or lanes.ready >= low:
            await lanes.settle(low, SETTLE_S)
        elif polled:
            await lanes.next(self.settings.poll_ms / 1000)
        return True

    async def handle(self, n: int, entry_id: str, fields: dict[str, str]) -> tickets.Applied | None:
        """Apply one entry (server/apply.py); counts it when it was applied (not skipped)."""
        while True:
            if n not in self.owned or not await self.fence.check(n):
                raise _LeaseLost()
            try:
                applied = await self.applier.handle(n, entry_id, fields)
                break
            except RulesUnavailable as exc:
                # (server/rulecache.py) the lane waits, its entry pending, other workspaces' go on;
                # a partition handed over or stopping does not wait it out
                if not self._mine(n):
                    raise _LeaseLost() from exc
                left = exc.retry_at - asyncio.get_running_loop().time()
                await self._sleep(min(max(left, 0.01), 1.0))
        self.processed += applied is not None and not applied.skipped
        return applied


class _LeaseLost(Exception):
    """The partition's lease went while its lanes still had entries: the next owner claims them."""
