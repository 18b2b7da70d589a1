"""A workspace's SLA policies and guard limits, compiled once per policy revision.

Every event's pass needs the workspace's compiled SLA policies and guard limits. They change
rarely (a manager edits a policy, an admin the limits) and are read on every event, so a worker
keeps them compiled and asks the store only for the workspace's policy revision
(`df:{ws:W}:policy:rev`, store/keys.py): a counter that every writer of the policies or the limits
bumps in the same MULTI as its write (store/revisions.py for the API's policy writes, imports,
restores and deletes; store/sla.py; store/guards.py). The counter is one small string that rides
in the event's load next to the rules revision; the policies and limits are read -- and compiled
-- only when it moves.

Why the specs are read together with the counter, in one MULTI, rather than trusting the revision
the caller passes: the caller read its revision some time ago (in its load). Reading the specs
later and filing them under that older number would file newer specs under an old revision;
reading the counter after the specs could file old specs under a new revision and serve them until
the next write. Read atomically, an entry's revision is exactly the revision of its specs. A
caller whose revision is older than the entry's is served the entry's (newer) specs -- what a
fresh read would give -- and never makes the entry older.

Bounded: at most MAX_WORKSPACES workspaces are kept (least recently used goes first), each with at
most server/api/sla.py's MAX_POLICIES policies, each bounded by its own checks (rules/sla.py and
rules/calendar.py). Concurrent callers for one workspace share one read. A new revision compiles
only the policies whose definition changed, in a thread: a tenant bumping its revision (saving
its guard limits in a loop, say) costs one small read per save, not a recompile of every policy
on the event loop every other workspace shares.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from rules import RuleError
from rules.sla import SlaPolicy, compile_policy
from server.guards import GuardLimits, limits_from
from server.inflight import lead, outcome
from server.store import keys as K
from server.store import sla as sla_store
from server.store.connect import Store
from server.store.errors import guarded
from server.store.replies import text_map, text_or_none

__all__ = ["PolicyCache", "MAX_WORKSPACES", "compile_policies", "read_policies", "StoredPolicies"]

log = logging.getLogger("deskflow.worker")

# Workspaces whose compiled policies one cache keeps (about 100 policies of a few hundred bytes
# each at most per workspace, so well under 100 MB at the bound; a typical one is a few KB).
MAX_WORKSPACES = 1024


def compile_policies(specs: Iterable[Any], *, quiet: bool = False) -> list[SlaPolicy]:
    """Policy specs (stored ones, or an import document's), compiled, in the order given: the
    one compiler of SLA policies the worker and the API share. A spec the engine refuses is left
    out -- a stored one was valid when saved, but the engine may have grown stricter, and failing
    every event for it would be worse; it is logged unless `quiet` (the API, whose own checks in
    server/api/sla_checks.py report it to the caller)."""
    compiled = (_compile(spec, quiet) for spec in specs if isinstance(spec, dict))
    return [policy for policy in compiled if policy is not None]


def _compile(spec: dict[str, Any], quiet: bool) -> SlaPolicy | None:
    try:
        return compile_policy(sla_store.definition(spec))
    except RuleError as exc:
        if not quiet:
            log.warning("skipping invalid stored SLA policy %s: %s", spec.get("name"), exc)
        return None


def _said(spec: dict[str, Any]) -> bytes:
    """What a stored spec says (without position, timestamps, revision), as the key its compiled
    form is kept under: a reorder or an unrelated policy's save compiles nothing again."""
    return orjson.dumps(sla_store.definition(spec), option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class StoredPolicies:
    """The policy specs and the guard limits' text as one MULTI read them, with their revision."""

    revision: int
    specs: list[dict[str, Any]]
    guard_spec: str | None


@guarded
async def read_policies(store: Store, workspace: str) -> StoredPolicies:
    """The workspace's policy revision, SLA policy specs (in the order they are tried) and guard
    limits, read atomically."""
    async with store.redis.pipeline(transaction=True) as p:
        p.get(K.policy_rev(workspace))
        p.hgetall(K.sla_policies(workspace))
        p.get(K.guards(workspace))
        rev, specs, guards = await p.execute()
    ordered = sorted((orjson.loads(v) for v in text_map(specs).values()), key=sla_store.policy_order)
    return StoredPolicies(int(rev or 0), ordered, text_or_none(guards))


@dataclass(frozen=True)
class _Entry:
    revision: int
    policies: list[SlaPolicy]
    limits: GuardLimits
    compiled: dict[bytes, SlaPolicy | None]  # by _said(spec): this revision's specs only


class PolicyCache:
    """Compiled SLA policies and guard limits per workspace, by policy revision (one per worker
    process; the API compiles on demand with compile_policies)."""

    def __init__(self, max_workspaces: int = MAX_WORKSPACES) -> None:
        if max_workspaces < 1:
            raise ValueError("max_workspaces must be at least 1")
        self.max_workspaces = max_workspaces
        self.reads = 0  # store reads (cache misses) so far: what the tests and the bench count
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._reading: dict[str, asyncio.Future[_Entry]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, store: Store, workspace: str, revision: int
                  ) -> tuple[list[SlaPolicy], GuardLimits]:
        """(compiled policies in the order they are tried, guard limits) of `workspace` at policy
        revision `revision` (the counter as the caller's load read it) or later. No store read
        when the cached entry is at that revision. The list is shared: do not change it."""
        entry = self._entries.get(workspace)
        if entry is not None and entry.revision == revision:
            self._entries.move_to_end(workspace)
            return entry.policies, entry.limits
        pending = self._reading.get(workspace)
        if pending is not None:  # share a read in flight when it answers this revision
            seen = await outcome(pending)
            if seen is not None and seen.revision == revision:
                return seen.policies, seen.limits
        entry = await self._read(store, workspace)
        return entry.policies, entry.limits

    async def _read(self, store: Store, workspace: str) -> _Entry:
        async def read_now() -> _Entry:
            stored = await read_policies(store, workspace)
            self.reads += 1
            entry = await self._compiled(workspace, stored)
            self._entries[workspace] = entry
            self._entries.move_to_end(workspace)
            while len(self._entries) > self.max_workspaces:
                self._entries.popitem(last=False)
            return entry
        return await lead(self._reading, workspace, read_now)

    async def _compiled(self, workspace: str, stored: StoredPolicies) -> _Entry:
        """The entry for `stored`, compiling only the specs the previous entry did not have (in a
        thread: 100 policies of 1,000 holidays each take about half a second)."""
        previous = self._entries.get(workspace)
        known = previous.compiled if previous is not None else {}
        said = [(_said(spec), spec) for spec in stored.specs]
        new = {key: spec for key, spec in said if key not in known}
        fresh = await asyncio.to_thread(
            lambda: {key: _compile(spec, False) for key, spec in new.items()}) if new else {}
        compiled = {key: known[key] if key in known else fresh[key] for key, _ in said}
        guard_spec = orjson.loads(stored.guard_spec) if stored.guard_spec else None
        return _Entry(stored.revision, [p for key, _ in said if (p := compiled[key]) is not None],
                      limits_from(guard_spec), compiled)

    def forget(self, workspace: str) -> None:
        """Drop a workspace's entry (its next get reads the store)."""
        self._entries.pop(workspace, None)
