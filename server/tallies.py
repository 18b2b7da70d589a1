"""What the worker adds up per applied event and writes in batches: the fired rules' usage
(server/store/usage.py), the rules checked (catalog.add_rule_checks), the workspace charts'
counters (server/store/stats.py) and the Prometheus counters (metrics.AppliedCounts).

When they go out: while passes are in flight, at most every BATCH_EVERY_S (usage and stats at the
head of a round trip the worker makes anyway, store/coalesce.py's `before`; the Prometheus
counters with an ack); when the last pass in flight ends, at once, so a quiet worker's counts
trail its commits by one round trip, as before. The checks go every few seconds (the worker's
lease round) and all of them at shutdown. Counts are exact: a batch whose round trip failed joins
the next one. A worker killed under load loses at most BATCH_EVERY_S of usage counts, never an
event (its run record is in its commit; issue 14).

Why: each round trip carried them before, a batch of ~3 events under load, so every event re-made
and re-wrote the counters of its ~14 fired rules (an EVAL of the usage script every ~3 events, a
labels().inc() per fired rule per ack); now one batch covers hundreds of events and each fired
rule's counters once (bench/RESULTS.md, apply, "Session 10").
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

from server import runrecord
from server.metrics import AppliedCounts
from server.store import catalog
from server.store.connect import Store
from server.store.errors import StoreUnavailable
from server.store.stats import WorkspaceStats
from server.store.tickets import fire_hour
from server.store.usage import Usage, queue_writes

__all__ = ["Tallies", "BATCH_EVERY_S"]

BATCH_EVERY_S = 0.25


class Tallies:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.in_flight = 0          # entries being handled (the Applier's): 0 = the batches go now
        # rules checked, by (workspace, hour)
        self._checks: dict[tuple[str, int], collections.Counter[str]] = {}
        self._counts = AppliedCounts()
        self._usage = Usage(store.settings.runs_per_ticket)
        self._stats = WorkspaceStats()
        self._usage_at = self._counts_at = time.monotonic()   # when each batch last went out
        self._now = False           # the next round trip takes the batch, due or not

    def __bool__(self) -> bool:
        """Whether usage or stats wait to be written."""
        return bool(self._usage or self._stats)

    def add(self, workspace: str, event: dict[str, Any], run: dict[str, Any] | None,
            ticket: dict[str, Any] | None, seconds: float) -> None:
        """One applied (not skipped) event: its type and latency, its run's checked and fired
        rules (the hour parsed once), and, with the ticket it left, the workspace's counters."""
        self._counts.add(event, run, seconds)
        if not run:
            return
        hour = fire_hour(run["at"])
        key = (workspace, hour)
        checked = self._checks.get(key)
        if checked is None:
            checked = self._checks[key] = collections.Counter()
        checked.update(runrecord.checked_rule_ids(run.get("rules")))
        if run.get("matched"):
            self._usage.add(workspace, str(run["id"]), run["at"], hour, run["matched"])
        if ticket is not None:
            self._stats.add(workspace, event, ticket, str(run["at"]))

    def due(self) -> None:
        """The next round trip takes the usage and stats (shutdown's flush)."""
        self._now = True

    def queue(self, p: Any) -> Callable[[bool], None] | None:
        """A round trip's `before`: the usage and stats batches on pipeline `p` when due; returns
        what the Coalescer calls with whether they were sent (unsent, they join the next)."""
        if not (self._usage or self._stats):
            return None
        if self.in_flight and not self._now and time.monotonic() - self._usage_at < BATCH_EVERY_S:
            return None
        self._now, self._usage_at = False, time.monotonic()
        stats = self._stats.queue(p)
        if not self._usage:
            return stats
        taken = self._usage.take()
        queue_writes(p, taken, self._usage.runs_kept, scripted=not self.store.embedded)

        def done(sent: bool) -> None:
            if stats is not None:
                stats(sent)
            if not sent:
                self._usage.put_back(taken)
        return done

    def counted(self, *, force: bool = False) -> None:
        """Add the Prometheus counters, when due (or `force`)."""
        if force or not self.in_flight or time.monotonic() - self._counts_at >= BATCH_EVERY_S:
            self._counts_at = time.monotonic()
            self._counts.flush()

    async def flush_checks(self) -> None:
        self.counted(force=True)
        taken, self._checks = self._checks, {}
        counts = {(ws, rule, hour): n for (ws, hour), checked in taken.items()
                  for rule, n in checked.items()}
        try:
            await catalog.add_rule_checks(self.store, counts)
        except StoreUnavailable:
            for key, checked in taken.items():   # keep them for the next flush
                self._checks.setdefault(key, collections.Counter()).update(checked)
