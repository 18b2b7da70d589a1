"""The worker: claim -> load -> automate -> persist -> ack, with per-ticket ordering.

Ordering: a ticket's events all go to one stream partition (store/keys.py), and a partition is
read by one worker at a time -- the holder of its lease (SET NX PX reclaim_idle_ms, renewed every
third of that). Within a partition entries are applied one after another in stream order, so a
ticket's events are applied in arrival order; partitions run concurrently, in one worker and across
workers. Each worker takes about partitions / live workers of them, so adding workers spreads load.

Crash recovery: a dead worker stops renewing; after reclaim_idle_ms its leases expire, another
worker takes the partitions and XAUTOCLAIMs their pending entries before reading new ones. Apply
is exactly-once (store/tickets.py), so the redelivery of an entry applied-but-not-acked is a no-op.
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

import orjson
from redis.exceptions import RedisError

from server import automation
from server.metrics import METRICS
from server.store import catalog, events, tickets
from server.store.connect import Store
from server.store.errors import StoreUnavailable

__all__ = ["Worker", "RuleCache"]

log = logging.getLogger("deskflow.worker")


class RuleCache:
    """Compiled rulesets per workspace, recompiled only when the workspace's rules revision moves."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[int, Any]] = {}

    async def get(self, workspace: str, rev: int | None = None) -> Any:
        """The compiled ruleset at revision `rev` (read from the store when not given)."""
        if rev is None:
            rev = await catalog.rules_revision(self._store, workspace)
        hit = self._cache.get(workspace)
        if hit and hit[0] == rev:
            return hit[1]
        ruleset = compile_stored_rules(await catalog.list_rules(self._store, workspace))
        self._cache[workspace] = (rev, ruleset)
        return ruleset


def compile_stored_rules(rules: list[dict[str, Any]]) -> Any:
    """Compile a workspace's rules; a stored rule the engine refuses (it was valid when saved, but
    the engine may have grown stricter) is left out and logged instead of stopping every event."""
    from rules import RuleError, compile_rules

    if not rules:
        return None
    try:
        return compile_rules(rules)
    except RuleError:
        good = []
        for rule in rules:
            try:
                compile_rules([rule])
                good.append(rule)
            except RuleError as exc:
                log.warning("skipping invalid stored rule %s: %s", rule.get("id"), exc)
        return compile_rules(good) if good else None


class Worker:
    def __init__(self, *, store: Store, name: str | None = None, burst: bool = False,
                 handlers: dict[str, Any] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.settings = store.settings
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.burst = burst
        self.handlers = handlers
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rules = RuleCache(store)
        self.owned: set[int] = set()
        self._fresh: set[int] = set()       # partitions whose pending entries must be claimed first
        self._busy: set[int] = set()       # partitions with a batch in progress
        self._stopping = asyncio.Event()
        self.processed = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> int:
        """Process until stop() (or, with burst=True, until every partition is drained)."""
        await events.ensure_groups(self.store)
        keeper: asyncio.Task[None] | None = None
        try:
            await self._keep_leases_safely()
            # Leases are kept by their own task, so a long batch never lets them lapse.
            keeper = asyncio.create_task(self._lease_loop(), name=f"deskflow-leases-{self.name}")
            while not self._stopping.is_set():
                try:
                    busy = await self._tick()
                except StoreUnavailable as exc:
                    log.warning("store unavailable, retrying: %s", exc)
                    self._fresh |= self.owned
                    await self._sleep(0.5)
                    continue
                if self.burst and not busy:
                    break
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            await self._release_all()
        return self.processed

    async def _lease_loop(self) -> None:
        while not self._stopping.is_set():
            await self._sleep(self.settings.reclaim_idle_ms / 3000)
            await self._keep_leases_safely()

    async def _keep_leases_safely(self) -> None:
        try:
            await self._keep_leases()
        except StoreUnavailable as exc:
            log.warning("store unavailable while renewing leases: %s", exc)
            self._fresh |= self.owned  # claim again once back: entries may be pending

    async def _release_all(self) -> None:
        try:
            for n in sorted(self.owned):
                await events.release_lease(self.store, n, self.name)
            await events.heartbeat(self.store, self.name, 0, gone=True)
        except StoreUnavailable:
            pass
        self.owned.clear()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    # -- one step -------------------------------------------------------------------------------

    async def _tick(self) -> bool:
        """One round: claim what a dead owner left, read, apply. True when busy."""
        busy = False
        for n in sorted(self._fresh & self.owned):
            pending = await events.claim_pending(self.store, self.name, n)
            self._fresh.discard(n)
            if pending:
                busy = True
                await self._process(n, pending)
        if not self.owned:
            await self._sleep(self.settings.poll_ms / 1000 if self.burst
                              else self.settings.reclaim_idle_ms / 9000)
            return busy
        block = None if (self.store.embedded or self.burst) else self.settings.block_ms
        self.store.wakeup.clear()
        # A partition taken over meanwhile (still "fresh") is not read until its pending entries,
        # which are older, have been claimed and applied: that keeps the ticket's order.
        readable = sorted(self.owned - self._fresh)
        batch = await events.read_entries(self.store, self.name, readable,
                                          count=self.settings.batch_size, block_ms=block)
        batch = {n: e for n, e in batch.items() if e}
        if batch:
            await asyncio.gather(*(self._process(n, e) for n, e in batch.items()))
            return True
        if self.store.embedded and not self.burst:
            try:
                await asyncio.wait_for(self.store.wakeup.wait(), self.settings.block_ms / 1000)
            except TimeoutError:
                pass
        return busy

    async def _keep_leases(self) -> None:
        now_ms = int(time.time() * 1000)
        await events.heartbeat(self.store, self.name, now_ms)
        parts = self.settings.partitions
        target = math.ceil(parts / await events.live_workers(self.store))
        for n in sorted(self.owned):
            if not await events.acquire_lease(self.store, n, self.name):
                self.owned.discard(n)
        while len(self.owned - self._busy) > 0 and len(self.owned) > target:
            n = max(self.owned - self._busy)  # never hand over a partition mid-batch
            await events.release_lease(self.store, n, self.name)
            self.owned.discard(n)
        start = zlib.crc32(self.name.encode()) % parts
        for i in range(parts):
            if len(self.owned) >= target:
                break
            n = (start + i) % parts
            if n not in self.owned and await events.acquire_lease(self.store, n, self.name):
                self.owned.add(n)
                self._fresh.add(n)

    async def _process(self, n: int, entries: list[events.Entry]) -> None:
        """Apply a partition's entries in order; ack once the batch is stored. A failure leaves the
        rest pending and marks the partition for claiming again (order kept)."""
        done: list[str] = []
        self._busy.add(n)
        try:
            for entry_id, fields in entries:
                if n not in self.owned:
                    break
                await self.handle(n, entry_id, fields)
                done.append(entry_id)
        except BaseException:
            self._fresh.add(n)
            raise
        finally:
            self._busy.discard(n)
            if done:
                await asyncio.shield(events.ack(self.store, n, done))

    # -- one event ------------------------------------------------------------------------------

    async def handle(self, n: int, entry_id: str, fields: dict[str, str]) -> tickets.Applied | None:
        try:
            workspace = fields["w"]
            event = orjson.loads(fields["e"])
        except (KeyError, orjson.JSONDecodeError):
            log.error("dropping malformed stream entry %s", entry_id)
            return None
        started = time.perf_counter()
        run_id = "run_" + secrets.token_hex(8)

        async def compute(previous: dict[str, Any] | None, contact: dict[str, Any] | None,
                          rules_rev: int
                          ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any], bool]:
            t0 = time.perf_counter()
            ruleset = await self.rules.get(workspace, rules_rev)
            t1 = time.perf_counter()
            merged = automation.merge_event(previous, event, contact)
            now = self.clock()
            run = automation.automate(event, merged, previous, ruleset, now, self.handlers)
            t2 = time.perf_counter()
            record = {
                "id": run_id, "event_id": event["id"], "ticket_id": event["ticket"]["id"],
                "event_type": event["type"], "at": automation.format_time(now),
                "matched": run.matched, "rules": run.rules, "scripts": run.scripts,
                "changes": run.changes, "effects": run.effects, "vars": run.vars,
                "timings": {"total_ms": round((t2 - started) * 1000, 3),
                            "load_rules_ms": round((t1 - t0) * 1000, 3),
                            "rules_ms": round((t2 - t1) * 1000, 3)},
                "error": run.error,
            }
            return run.ticket, automation.contact_record(run.ticket), record, bool(
                run.changes or run.effects)

        try:
            applied = await tickets.apply_event(self.store, workspace, n, entry_id, fields, event,
                                                run_id, compute)
        except StoreUnavailable:
            raise
        except RedisError as exc:  # e.g. OOM: the store refuses writes; retry, never drop
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except Exception:
            # A bug or an entry this code cannot apply: logged and counted, not retried forever
            # (a poison entry would otherwise stall its partition).
            log.exception("cannot apply entry %s (event %r) of partition %d", entry_id,
                          event.get("id"), n)
            METRICS.inc("deskflow_events_failed_total")
            return None
        if not applied.skipped:
            self.processed += 1
            METRICS.inc("deskflow_events_processed_total")
            METRICS.observe("deskflow_event_apply_seconds", time.perf_counter() - started)
        return applied
