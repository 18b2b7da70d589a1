"""The worker: claim -> load -> automate -> persist -> ack, with per-ticket ordering.

Ordering: a ticket's events all go to one stream partition (store/keys.py), and a partition is
read by one worker at a time -- the holder of its lease (SET NX PX reclaim_idle_ms, renewed every
third of that). The worker runs one loop per partition it holds, applying entries one after
another in stream order, so a ticket's events are applied in arrival order; partitions run
concurrently, in one worker and across workers. Each worker takes about partitions / live workers
of them (a partition over its share is handed over between batches), so more workers spread load.

Crash recovery: a dead worker stops renewing; after reclaim_idle_ms its leases expire, another
worker takes the partitions and XAUTOCLAIMs their pending entries before reading new ones. Apply
is exactly-once (store/tickets.py), so the redelivery of an entry applied-but-not-acked changes no
ticket. Timers live in the partition's slot, not the workspace's, so they are set after the apply
commits; a redelivered entry (the worker died in between, or before its ack) sets the stored
ticket's timers (`automation.timers`) again -- same member, same due, so that is idempotent. And a
timer that should have been cancelled or moved but was not is stale when it fires: its event is
dropped unapplied (the ticket's `automation.timers` no longer names it at that due time).
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

from rules import RuleError, diff
from rules.sla import SlaPolicy, compile_policy, policy_calendars
from server import automation, timekeeping
from server.guards import GuardLimits
from server.logs import log_context
from server.metrics import count_event_failed, observe_applied
from server.rulecache import RuleCache
from server.store import catalog, events, tickets, timers
from server.store import guards as guard_store
from server.store import sla as sla_store
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
        self.handlers = handlers
        self.scripting = scripting  # server.scripting.Scripting: run_script / http_request handlers
        self._policy_cache: dict[bytes, SlaPolicy] = {}
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rules = RuleCache(store)
        self.owned: set[int] = set()         # partitions whose lease we hold
        self._fresh: set[int] = set()        # partitions whose pending entries must be claimed first
        self._handover: set[int] = set()     # partitions to release once their batch is done
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self.processed = 0
        self._checks: dict[tuple[str, str, int], int] = {}   # usage stats, flushed in batches

    # -- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self.store.wakeup.set()

    async def run(self) -> int:
        """Process until stop() (or, with burst=True, until every partition is drained).

        One loop task per owned partition (each reads only its own stream, so no command spans
        two hash slots); this task keeps the leases and starts and reaps the loops."""
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
                await self._flush_checks()
                if self._stopping.is_set():
                    break
                await self._keep_leases_safely()
        finally:
            self._stopping.set()
            self.store.wakeup.set()
            loops = list(self._loops.values())
            if loops:
                results = await asyncio.gather(*loops, return_exceptions=True)
                self._loops.clear()
                for r in results:
                    if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError):
                        log.error("partition loop failed: %r", r)
            await self._flush_checks()
            await self._release_all()
        return self.processed

    def _count_checks(self, workspace: str, run: dict[str, Any] | None) -> None:
        if not run:
            return
        hour = tickets.fire_hour(run["at"])
        for entry in run.get("rules") or []:
            if entry.get("id") is not None and not entry.get("skipped"):
                key = (workspace, str(entry["id"]), hour)
                self._checks[key] = self._checks.get(key, 0) + 1

    async def _flush_checks(self) -> None:
        counts, self._checks = self._checks, {}
        try:
            await catalog.add_rule_checks(self.store, counts)
        except StoreUnavailable:
            for key, n in counts.items():   # keep them for the next flush
                self._checks[key] = self._checks.get(key, 0) + n

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
        for n in sorted(self.owned):
            if not await events.acquire_lease(self.store, n, self.name):
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
            if n not in self.owned and n not in self._loops and await events.acquire_lease(
                    self.store, n, self.name):
                self.owned.add(n)
                self._fresh.add(n)

    # -- one partition --------------------------------------------------------------------------

    def _mine(self, n: int) -> bool:
        return n in self.owned and n not in self._handover and not self._stopping.is_set()

    async def _partition_loop(self, n: int) -> None:
        """Claim what a previous owner left (older entries first), then read and apply new ones."""
        waiter = self.store.wakeup.waiter()
        try:
            while self._mine(n):
                try:
                    if await self._step(n, waiter):
                        continue
                except StoreUnavailable as exc:
                    log.warning("store unavailable (partition %d), retrying: %s", n, exc)
                    self._fresh.add(n)
                    await self._sleep(0.5)
                    continue
                if self.burst:
                    return
                if self.store.embedded:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter.wait(), await self._block_ms(n) / 1000)
        finally:
            self.store.wakeup.forget(waiter)
            if n in self._handover:
                self._handover.discard(n)
                self.owned.discard(n)
                with contextlib.suppress(StoreUnavailable):
                    await events.release_lease(self.store, n, self.name)

    async def _block_ms(self, n: int) -> int:
        """How long to wait for new entries: block_ms, or less if a timer of n comes due sooner."""
        return self._block_for(await timers.next_due(self.store, [n]))

    def _block_for(self, due: datetime | None) -> int:
        if due is None:
            return self.settings.block_ms
        wait = (due - self.clock()).total_seconds() * 1000
        return max(1, min(self.settings.block_ms, math.ceil(wait)))

    async def _fire_timers(self, n: int) -> datetime | None:
        """Fire partition n's due timers into its stream; returns its next due time after that.
        One read when nothing is due: the cheap ZRANGE decides whether the transaction runs."""
        due = await timers.next_due(self.store, [n])
        now = self.clock()
        if due is None or due > now:
            return due
        await timers.fire_due(self.store, n, now)
        return await timers.next_due(self.store, [n])

    async def _step(self, n: int, waiter: asyncio.Event) -> bool:
        """One batch of partition n; False when there was nothing to do."""
        if n in self._fresh:
            pending = await events.claim_pending(self.store, self.name, n)
            self._fresh.discard(n)
            if pending:
                await self._process(n, pending)
                return True
        waiter.clear()
        due = await self._fire_timers(n)
        block = None if (self.store.embedded or self.burst) else self._block_for(due)
        got = await events.read_entries(self.store, self.name, [n],
                                        count=self.settings.batch_size, block_ms=block)
        entries = got.get(n) or []
        if entries:
            await self._process(n, entries)
            return True
        return False

    async def _process(self, n: int, entries: list[events.Entry]) -> None:
        """Apply a partition's entries in order; ack once the batch is stored. A failure leaves the
        rest pending and marks the partition for claiming again (order kept)."""
        done: list[str] = []
        try:
            for entry_id, fields in entries:
                if n not in self.owned:
                    break  # lease lost: the next owner claims the rest, in order
                await self.handle(n, entry_id, fields)
                done.append(entry_id)
        except BaseException:
            self._fresh.add(n)
            raise
        finally:
            if done:
                await asyncio.shield(events.ack(self.store, n, done))

    # -- one event ------------------------------------------------------------------------------

    async def _automate(self, workspace: str, event: dict[str, Any], merged: dict[str, Any],
                        previous: dict[str, Any] | None, ruleset: Any, now: datetime,
                        guards: GuardLimits | None = None) -> automation.Run:
        """The rules pass. One whose rules call scripts or make HTTP requests runs in a thread, so
        its handlers can wait on the sandbox pool and broker that live on this loop."""
        exclude = timekeeping.fired_time_rules(merged)
        if self.scripting is None or ruleset is None or not getattr(ruleset, "needs_handlers", False):
            if getattr(ruleset, "needs_thread", False):  # regexes, business time: off the loop
                return await asyncio.to_thread(automation.automate, event, merged, previous, ruleset, now,
                                               self.handlers, exclude, guards)
            return automation.automate(event, merged, previous, ruleset, now, self.handlers, exclude,
                                       guards)
        scripts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        handlers = self.scripting.handlers(asyncio.get_running_loop(), workspace, scripts, calls)
        run = await asyncio.to_thread(automation.automate, event, merged, previous, ruleset, now, handlers,
                                      exclude, guards)
        run.scripts = scripts
        run.http_calls = calls
        return run

    async def _policies(self, workspace: str) -> list[SlaPolicy]:
        """The workspace's SLA policies, compiled (cached by their stored text)."""
        out = []
        for spec in await sla_store.list_policies(self.store, workspace):
            key = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
            policy = self._policy_cache.get(key)
            if policy is None:
                try:
                    policy = compile_policy(sla_store.definition(spec))
                except RuleError as exc:
                    log.warning("skipping invalid stored SLA policy %s: %s", spec.get("name"), exc)
                    continue
                if len(self._policy_cache) > 1000:
                    self._policy_cache.clear()
                self._policy_cache[key] = policy
            out.append(policy)
        return out

    async def handle(self, n: int, entry_id: str, fields: dict[str, str]) -> tickets.Applied | None:
        try:
            workspace = fields["w"]
            event = orjson.loads(fields["e"])
        except (KeyError, orjson.JSONDecodeError):
            log.error("dropping malformed stream entry %s", entry_id)
            return None
        run_id = "run_" + secrets.token_hex(8)
        ticket = event.get("ticket") if isinstance(event.get("ticket"), dict) else {}
        with log_context(workspace=workspace, event_id=event.get("id"), ticket_id=ticket.get("id"),
                         run_id=run_id, partition=n, entry_id=entry_id):
            return await self._handle(n, entry_id, fields, workspace, event, run_id)

    async def _handle(self, n: int, entry_id: str, fields: dict[str, str], workspace: str,
                      event: dict[str, Any], run_id: str) -> tickets.Applied | None:
        started = time.perf_counter()

        async def compute(previous: dict[str, Any] | None, contact: dict[str, Any] | None,
                          rules_rev: int
                          ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any], bool]:
            _check_timer_current(event, fields, previous)
            t0 = time.perf_counter()
            ruleset, revisions = await self.rules.get_with_revisions(workspace, rules_rev,
                                                                     policy_calendars(policies))
            t1 = time.perf_counter()
            merged = automation.merge_event(previous, event, contact)
            now = self.clock()
            woken = timekeeping.wake_before_rules(event, merged, now)
            run = await self._automate(workspace, event, woken, previous, ruleset, now, limits)
            plan = timekeeping.plan_after_rules(event, previous, run.ticket, run.effects, run.matched,
                                                ruleset, policies, now)
            run.ticket = _with_timers(plan.ticket, plan.timers)
            run.changes = _changes(merged, run.ticket)
            if plan.notes:
                run.notes = [*run.notes, *plan.notes]
            timer_plan["old"] = ((previous or {}).get("automation") or {}).get("timers") or {}
            timer_plan["new"] = run.ticket["automation"]["timers"]
            t2 = time.perf_counter()
            record = {
                "id": run_id, "event_id": event["id"], "ticket_id": event["ticket"]["id"],
                "event_type": event["type"], "at": automation.format_time(now),
                "matched": run.matched, "rules_rev": rules_rev,
                "rule_revisions": {rid: revisions[rid] for rid in run.matched if rid in revisions},
                "rules": run.rules, "scripts": run.scripts,
                "changes": run.changes, "effects": run.effects, "vars": run.vars,
                "http_calls": run.http_calls, "notes": run.notes, "suppressed": run.suppressed,
                "timings": {"total_ms": round((t2 - started) * 1000, 3),
                            "load_rules_ms": round((t1 - t0) * 1000, 3),
                            "rules_ms": round((t2 - t1) * 1000, 3)},
                "error": run.error,
            }
            for entry in record["rules"]:   # which revision of each rule this run checked
                entry["revision"] = revisions.get(str(entry.get("id")))
            return run.ticket, automation.contact_record(run.ticket), record, bool(
                run.changes or run.effects)

        # read side-by-side: two independent reads of the workspace's settings per event
        policies, limits = await asyncio.gather(self._policies(workspace),
                                                guard_store.get_limits(self.store, workspace))
        timer_plan: dict[str, dict[str, Any]] = {}
        try:
            applied = await tickets.apply_event(self.store, workspace, n, entry_id, fields, event,
                                                run_id, compute)
            if not applied.skipped and timer_plan:
                await _apply_timers(self.store, workspace, event["ticket"]["id"], timer_plan["old"],
                                    timer_plan["new"])
            elif applied.skipped and _redelivered(applied.marker, entry_id, fields):
                await _restore_timers(self.store, workspace, event["ticket"]["id"])
        except _StaleTimer as stale:
            log.info("dropping stale timer event %r of ticket %r: %s", event.get("id"),
                     event["ticket"].get("id"), stale)
            return None
        except StoreUnavailable:
            raise
        except RedisError as exc:  # e.g. OOM: the store refuses writes; retry, never drop
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except Exception:
            # A bug or an entry this code cannot apply: logged and counted, not retried forever
            # (a poison entry would otherwise stall its partition).
            log.exception("cannot apply entry %s (event %r) of partition %d", entry_id,
                          event.get("id"), n)
            count_event_failed(str(event.get("type", "")))
            return None
        if not applied.skipped:
            self.processed += 1
            observe_applied(event, applied.run, time.perf_counter() - started)
            self._count_checks(workspace, applied.run)
        return applied


def _with_timers(ticket: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """The ticket with its timer plan recorded under automation.timers (reason -> [due, data])."""
    out = dict(ticket)
    auto = dict(out.get("automation") or {})
    auto["timers"] = {reason: [automation.format_time(spec[0]), spec[1]]
                      for reason, spec in plan.items() if spec is not None}
    out["automation"] = auto
    return out


def _changes(merged: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
    """API.md's changes between the merged ticket and the ticket after all automation (rules,
    wake-ups, snoozes), with snoozed_until shown like a scalar field."""
    out = diff(merged, final)
    if merged.get("snoozed_until") != final.get("snoozed_until"):
        out["snoozed_until"] = [merged.get("snoozed_until"), final.get("snoozed_until")]
    return out


async def _apply_timers(store: Store, workspace: str, ticket: str, old: dict[str, Any],
                        new: dict[str, Any]) -> None:
    """Set the timers the plan adds or moves and cancel those it drops (after the apply commits)."""
    await timers.apply_plan(store, workspace, ticket, old, new)


class _StaleTimer(Exception):
    """A generated event whose timer the ticket no longer has at that time (raised inside the apply
    transaction's compute step, so nothing is written)."""


def _check_timer_current(event: dict[str, Any], fields: dict[str, str],
                         ticket: dict[str, Any] | None) -> None:
    """Raise _StaleTimer for an event generated by a timer (store/timers.py writes no ingest token
    `k`) that the ticket's timer plan no longer holds at that due time."""
    if "k" not in fields and (why := timers.stale(event, ticket)):
        raise _StaleTimer(why)


def _redelivered(marker: dict[str, Any] | None, entry_id: str, fields: dict[str, str]) -> bool:
    """Whether a skipped entry is this partition's own copy of an event already applied (a
    redelivery after a crash), rather than a duplicate copy."""
    return bool(marker and marker.get("status") == "processed" and events.owns(marker, entry_id, fields))


async def _restore_timers(store: Store, workspace: str, ticket_id: str) -> None:
    """Set the stored ticket's timers again (the worker that applied the entry may have died
    before its timer writes) and cancel the service's others. Idempotent: same member, same due."""
    ticket = await tickets.get_ticket(store, workspace, ticket_id)
    plan = ((ticket or {}).get("automation") or {}).get("timers")
    if isinstance(plan, dict):
        await timers.restore_plan(store, workspace, ticket_id, plan,
                                  ("snooze", "time_rules", *timekeeping.ALL_SLA_REASONS))
