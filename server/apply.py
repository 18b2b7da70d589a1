"""One event's path through the worker: load -> process -> commit -> timers.

    snapshot = tickets.load(...)                     # marker, ticket, contact, rules revision
    outcome  = automation.process(snapshot, ...)     # pure; scripts and HTTP through handlers
    applied  = tickets.commit(..., snapshot, outcome)  # check-and-set, one MULTI; None: conflict
    timers.apply_plan(outcome.timers_old -> outcome.timers_new)

Timers live in the partition's slot, not the workspace's, so they are set after the apply commits;
a redelivered entry (the worker died in between, or before its ack) sets the stored ticket's timers
(`automation.timers`) again -- same member, same due, so that is idempotent. And a timer that
should have been cancelled or moved but was not is stale when it fires: its event is dropped
unapplied (the ticket's `automation.timers` no longer names it at that due time).

No store connection is held while the pass runs. Loads, commits and acks go through one
Coalescer (server/store/coalesce.py): the passes in flight share round trips, and the fired
rules' usage, added up in memory (server/store/usage.py), rides along at the head of each. When the commit finds the ticket or the contact
changed since the load (a contact's groups were set, another worker raced), the event is loaded
again and only the pure pass runs again: its handlers are wrapped by a server/replay.Recorder, so
every script run and HTTP call of the first pass is replayed, not repeated -- no script or
outbound request runs twice for one event.

A pass whose rules call scripts or make HTTP requests runs in a thread (the handlers hand each
call to the event loop, which owns the sandbox pool and the broker, and wait for it), and so does
one whose rules match regexes or count business time; server/passthreads.py says how passes are
handed to threads and back. A pass that needs neither runs on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from redis.exceptions import RedisError

from rules.regexes import OffLoop, on_loop
from rules.sla import SlaPolicy, policy_calendars
from server import automation, timekeeping
from server.guards import GuardLimits
from server.logs import log_context
from server.policy_cache import PolicyCache
from server.metrics import count_event_failed
from server.passthreads import PassThreads
from server.replay import Recorder
from server.tallies import Tallies
from server.rulecache import RuleCache, RulesUnavailable
from server.store import events, script_context, tickets, timers
from server.store.cluster import ClusterClient
from server.store.coalesce import Coalescer
from server.store.connect import Store
from server.store.errors import StoreUnavailable, guarded

__all__ = ["Applier", "PASS_THREADS"]

log = logging.getLogger("deskflow.worker")

# Threads for passes that wait on scripts or HTTP (each waits; the loop does the work).
PASS_THREADS = 64
# Loads and commits in flight at once in one worker: lanes multiply the passes in flight, and the
# store client's pool (100 connections) must outlast them; a pass waiting on a script or a slow
# server holds no slot.
STORE_SLOTS = 32


class Applier:
    """Applies single stream entries; shared by a worker's partition loops."""

    def __init__(self, *, store: Store, handlers: dict[str, Any] | None, scripting: Any,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.handlers = handlers
        self.scripting = scripting  # server.scripting.Scripting: run_script / http_request
        self.clock = clock
        self.rules = RuleCache(store)
        self.policies = PolicyCache()   # SLA policies and guard limits, by policy revision
        self._threads = PassThreads(PASS_THREADS)   # passes that must not run on the loop
        # usage, checks, stats and Prometheus counters, added up and written in batches
        self.tallies = Tallies(store)
        # ruleset -> what its passes need, held weakly: a replaced rule set is freed with its facts
        # (keyed by id and holding the ruleset, up to 1,024 replaced rule sets stayed alive: a
        # workspace at the limits editing its rules held that many of its compiled buckets)
        self._facts: weakref.WeakKeyDictionary[Any, _RulesetFacts] = weakref.WeakKeyDictionary()
        self._run_ids = _RunIds()
        self._timers_set: set[int] = set()   # partitions whose timers a pass set (server/worker.py)
        # loads, commits and acks of every pass in flight share round trips (store/coalesce.py);
        # the batched rule usage goes at the head of one when due
        self.coalescer = Coalescer(store, before=self.tallies.queue)
        self._send = self.coalescer.run
        self._io = asyncio.Semaphore(STORE_SLOTS)
        # entries acked by their own commit (_apply), until the lanes hand them to `ack`
        self._ack_in_commit = not isinstance(store.redis, ClusterClient)
        self._acked: set[str] = set()

    def close(self) -> None:
        self._threads.shutdown()
        self.rules.close()

    async def aclose(self) -> None:
        """close(), and the rule cache's compile processes stopped (and reaped)."""
        self.close()
        await self.rules.aclose()

    # -- the batched counters (server/tallies.py) ------------------------------------------

    async def flush(self) -> None:
        """Write what is batched in memory: the fired rules' usage, the workspace stats and the
        check counters (on shutdown, and every few seconds for the check counters)."""
        if self.tallies:
            self.tallies.due()
            self.coalescer.kick()
        await self.coalescer.idle()
        await self.tallies.flush_checks()

    async def flush_checks(self) -> None:
        await self.tallies.flush_checks()

    @guarded
    async def ack(self, n: int, entry_ids: list[str]) -> None:
        """Ack (XACK + XDEL) applied entries of partition n, in the next shared round trip; an
        entry its own commit acked (_apply) is not sent again."""
        self.tallies.counted()
        if self._acked and entry_ids:
            left = [i for i in entry_ids if i not in self._acked]
            self._acked.difference_update(entry_ids)
            entry_ids = left
        if entry_ids:
            await self._send(lambda p: events.queue_ack(p, n, entry_ids))

    def timers_unread(self, n: int) -> bool:
        """Whether a pass set or restored timers of partition n that the worker has not read yet
        (timers_set without forgetting it)."""
        return n in self._timers_set

    def timers_set(self, n: int) -> bool:
        """Whether a pass set or restored timers of partition n since the last time asked (the
        worker's cached first due time of n is then stale)."""
        if n in self._timers_set:
            self._timers_set.discard(n)
            return True
        return False

    # -- one entry --------------------------------------------------------------------------

    async def handle(self, n: int, entry_id: str, fields: dict[str, str]) -> tickets.Applied | None:
        try:
            workspace = fields["w"]
            event = orjson.loads(fields["e"])
        except (KeyError, orjson.JSONDecodeError):
            log.error("dropping malformed stream entry %s", entry_id)
            return None
        run_id = self._run_ids.next()
        ticket = _t if isinstance(_t := event.get("ticket"), dict) else {}
        self.tallies.in_flight += 1
        try:
            with log_context(workspace=workspace, event_id=event.get("id"),
                             ticket_id=ticket.get("id"), run_id=run_id, partition=n,
                             entry_id=entry_id):
                return await self._handle(n, entry_id, fields, workspace, event, run_id)
        finally:
            self.tallies.in_flight -= 1
            if not self.tallies.in_flight and self.tallies:
                self.coalescer.kick()   # the last pass in flight: the batches go now

    async def _handle(self, n: int, entry_id: str, fields: dict[str, str], workspace: str,
                      event: dict[str, Any], run_id: str) -> tickets.Applied | None:
        started = time.perf_counter()
        try:
            applied, outcome = await self._apply(n, entry_id, fields, workspace, event, run_id,
                                                 started)
            if outcome is not None and outcome.timers_new != outcome.timers_old:
                # (an unchanged plan sets and cancels nothing: no store slot, no call)
                async with self._io:
                    await _apply_timers(self.store, workspace, event["ticket"]["id"],
                                        outcome.timers_old, outcome.timers_new)
                self._timers_set.add(n)   # once written: the worker reads them again
            elif applied.skipped and _redelivered(applied.marker, entry_id, fields):
                await _restore_timers(self.store, workspace, event["ticket"]["id"])
                self._timers_set.add(n)
        except _StaleTimer as stale:
            log.info("dropping stale timer event %r of ticket %r: %s", event.get("id"),
                     event["ticket"].get("id"), stale)
            return None
        except (StoreUnavailable, RulesUnavailable):
            raise   # (the worker waits and tries again: the entry stays pending)
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
            self.tallies.add(workspace, event, applied.run,
                             outcome.ticket if outcome is not None else None,
                             time.perf_counter() - started)
            if outcome is not None and outcome.to_feed and _webhook_effect(outcome.effects):
                self.store.outbox_wakeup.set()   # its delivery is cut and sent now, not at a poll
        return applied

    async def _apply(self, n: int, entry_id: str, fields: dict[str, str], workspace: str,
                     event: dict[str, Any], run_id: str, started: float
                     ) -> tuple[tickets.Applied, automation.Outcome | None]:
        """Load, process, commit; on a conflict load again and re-run the pure pass (replaying
        the calls made). Returns (applied, outcome | None when skipped)."""
        recorder: Recorder | None = None
        seq: int | None = None
        now = self.clock()  # one instant for every attempt: a re-run decides as the first did
        while True:
            snap = await tickets.load(self.store, workspace, event, self._send)
            if tickets.done_with(snap, entry_id, fields):
                return tickets.Applied(skipped=True, marker=snap.marker), None
            _check_timer_current(event, fields, snap.previous)
            t0 = time.perf_counter()
            if recorder is None:
                policies, limits = await self.policies.get(self.store, workspace, snap.policy_rev)
                ruleset, revisions = await self.rules.get_with_revisions(
                    workspace, snap.rules_rev, policy_calendars(policies))
                rules_rev = snap.rules_rev
                async with self._io:
                    context = await self._context(workspace, snap, event, ruleset, now)
                recorder = self._recorder(workspace, ruleset, context)
            else:  # a re-run decides with the rules and settings of the first pass
                snap.rules_rev = rules_rev
            t1 = time.perf_counter()
            if snap.previous is None and seq is None:
                seq = await tickets.next_seq(self.store, workspace, self._send)
            outcome = await self._process(recorder, snap, event, ruleset, policies, limits, now,
                                          run_id, revisions, workspace)
            t2 = time.perf_counter()
            outcome.record["timings"] = {"total_ms": round((t2 - started) * 1000, 3),
                                         "load_rules_ms": round((t1 - t0) * 1000, 3),
                                         "rules_ms": round((t2 - t1) * 1000, 3)}
            # The entry is acked in its commit when nothing is left to do after it: no timer to
            # set (a redelivery after a crash between the commit and the timer writes is what
            # sets them, so such an entry stays pending until they are written) and a store
            # whose one script may name both slots. At moderate rates the ack was a round trip of
            # its own an event (bench/RESULTS.md, session 16).
            ack = self._ack_in_commit and outcome.timers_new == outcome.timers_old
            applied = await tickets.commit(self.store, workspace, n, entry_id, fields, event,
                                           run_id, snap, outcome, seq, self._send, ack=ack)
            if applied is not None:
                if ack:
                    self._acked.add(entry_id)
                return applied, outcome

    async def _context(self, workspace: str, snap: automation.Snapshot, event: dict[str, Any],
                       ruleset: Any, now: datetime) -> dict[str, Any] | None:
        """ctx.history / ctx.customer, read only for a pass whose scripts name them."""
        if self.scripting is None or not self._needs_handlers(ruleset):
            return None
        return await script_context.load_context(self.store, workspace, snap, event, ruleset, now)

    def _facts_of(self, ruleset: Any) -> _RulesetFacts:
        """What this worker keeps of a compiled ruleset, made on its first pass."""
        if ruleset is None:   # (no rules; no weak reference takes None, and nothing to keep)
            return _RulesetFacts(False)
        known = self._facts.get(ruleset)
        if known is None:
            known = self._facts[ruleset] = _RulesetFacts(bool(getattr(ruleset, "needs_handlers", False)))
        return known

    def _needs_handlers(self, ruleset: Any) -> bool:
        """ruleset.needs_handlers (a scan of every rule's actions), once per compiled ruleset."""
        return self._facts_of(ruleset).needs_handlers

    def _try_loop(self, ruleset: Any) -> bool:
        """Whether to try this rule set's pass on the loop: not for the next OFF_LOOP_SKIP passes
        after one that moved (a workspace whose texts make its regexes slow pays the wasted
        try once in OFF_LOOP_SKIP + 1 passes, and the loop with it)."""
        facts = self._facts_of(ruleset)
        if facts.skip_loop:
            facts.skip_loop -= 1
            return False
        return True

    def _recorder(self, workspace: str, ruleset: Any,
                  context: dict[str, Any] | None = None) -> Recorder:
        """The event's handlers, recorded. A Scripting's handlers wait on this loop, so their
        passes run in a thread; handlers given directly (tests, embedding) run where they are."""
        if self.scripting is not None and self._needs_handlers(ruleset):
            scripts: list[dict[str, Any]] = []
            calls: list[dict[str, Any]] = []
            real = self.scripting.handlers(asyncio.get_running_loop(), workspace, scripts, calls,
                                           context)
            return Recorder(real, scripts, calls, threaded=True)
        return Recorder(self.handlers)

    async def _process(self, recorder: Recorder, snap: automation.Snapshot, event: dict[str, Any],
                       ruleset: Any, policies: list[SlaPolicy], limits: GuardLimits, now: datetime,
                       run_id: str, revisions: dict[str, int], workspace: str) -> automation.Outcome:
        view = recorder.start_pass()
        handlers = view if (recorder.threaded or self.handlers) else None
        threaded = recorder.threaded or _long_scans(getattr(ruleset, "text_scans", 0), snap, event)
        slow = getattr(ruleset, "needs_thread", False)
        if slow and not threaded and getattr(ruleset, "loop_first", False) and self._try_loop(ruleset):
            # regexes only, and this rule set's last try on the loop did not move: try it here,
            # moved to a thread (from its start: the pass is pure) when its regexes would take
            # longer than on_loop allows (rules/regexes.py says why)
            try:
                with on_loop():
                    return automation.process(snap, event, ruleset, policies, limits, now, handlers,
                                              run_id=run_id, revisions=revisions)
            except OffLoop:
                self._facts_of(ruleset).skip_loop = OFF_LOOP_SKIP
                view = recorder.start_pass()   # (a replay of any handler call the try made)
                handlers = view if self.handlers else None
        if threaded or slow:
            # Passes that wait on scripts/HTTP, passes with regexes or business time (bounded,
            # but long enough to be felt by every other workspace on this loop), and passes whose
            # text conditions scan long texts (their code gives the GIL way between scans,
            # rules/scans.py YIELD_SCANS) run in a thread; those that only compute may share
            # one with their workspace's (server/passthreads.py)
            outcome: automation.Outcome = await self._threads.run(
                lambda: automation.process(snap, event, ruleset, policies, limits, now, handlers,
                                           run_id=run_id, revisions=revisions),
                workspace, computes=not recorder.threaded)
            return outcome
        return automation.process(snap, event, ruleset, policies, limits, now, handlers,
                                  run_id=run_id, revisions=revisions)


# After a pass tried on the event loop moved to a thread (rules.regexes.on_loop), this many of
# its rule set's passes go straight to one.
OFF_LOOP_SKIP = 16


class _RulesetFacts:
    """What the applier keeps per compiled ruleset: whether its passes call handlers (a scan of
    every rule's actions, once), and how many of its next passes go straight to a thread (set
    when one tried on the loop needed more regex time than on_loop allows)."""

    __slots__ = ("needs_handlers", "skip_loop")

    def __init__(self, needs_handlers: bool) -> None:
        self.needs_handlers = needs_handlers
        self.skip_loop = 0

# Characters a pass's `contains` conditions may scan on the event loop (text scans x the ticket's
# text): ~1 ms of C. Past it the pass runs in a thread: 1,000 `description contains` rules over
# a 1 MB description are ~0.8 s a pass, which on the loop every other workspace waited out.
SCAN_ON_LOOP = 2_000_000


def _long_scans(scans: int, snap: automation.Snapshot, event: dict[str, Any]) -> bool:
    """Whether `scans` text scans over the texts a pass may read pass SCAN_ON_LOOP characters
    (their length bounded from above: the stored ticket's bytes, the event's ticket strings,
    custom ones too, and message body); no measuring for rules that scan nothing."""
    if not scans:
        return False
    n = len(snap.raw_ticket or "")
    ticket, message = event.get("ticket"), event.get("message")
    for part in (ticket, ticket.get("custom") if isinstance(ticket, dict) else None, message):
        if isinstance(part, dict):
            n += sum(len(v) for v in part.values() if isinstance(v, str))
    return scans * n > SCAN_ON_LOOP


def _webhook_effect(effects: list[dict[str, Any]]) -> bool:
    return any(isinstance(e, dict) and e.get("type") == "webhook" for e in effects)


class _RunIds:
    """Run ids as before ("run_" + 16 hex digits from the OS's random source), drawn from one
    os.urandom read per 512 of them rather than a system call each."""

    def __init__(self) -> None:
        self._pool, self._at = b"", 0

    def next(self) -> str:
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(8 * 512), 0
        self._at += 8
        return "run_" + self._pool[self._at - 8:self._at].hex()


async def _apply_timers(store: Store, workspace: str, ticket: str, old: dict[str, Any],
                        new: dict[str, Any]) -> None:
    """Set the timers the plan adds or moves and cancel those it drops (after the apply commits)."""
    await timers.apply_plan(store, workspace, ticket, old, new)


class _StaleTimer(Exception):
    """A generated event whose timer the ticket no longer has at that time (nothing is written)."""


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
