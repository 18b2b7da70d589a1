"""Compiled rule sets per workspace for the worker, recompiled only when something they depend on
moves: the workspace's rules revision (bumped by every rule change) or the SLA policies' calendars
that business-time conditions name. A recompile compiles only the rules that changed: each
workspace keeps its compiled rules by definition and its buckets' code by source
(rules/compile_cache.py), so renaming one of 1,000 rules compiles one rule and no bucket, not
1,000 rules and the bucket (5.8 s -> 0.06 s of CPU at 1,000 long regexes, bench/RESULTS.md)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rules.calendar import Calendar
from rules.compile_cache import CompileCache
from server.inflight import lead, outcome
from server.store import catalog
from server.store.connect import Store

__all__ = ["RuleCache", "compile_stored_rules"]

log = logging.getLogger("deskflow.worker")


_Key = tuple[int, frozenset[Any]]
_Entry = tuple[_Key, Any, dict[str, int]]


class RuleCache:
    """Compiled rulesets per workspace, recompiled only when the workspace's rules revision moves.

    One compile per (workspace, revision, calendars) at a time: the passes in flight that miss
    together (a worker's start, a rule saved) wait for the compile already running instead of
    each starting its own. Before, a worker's 128 lanes compiled the same 100 rules ~100 times
    at start, about 0.5 ms of CPU per event over the apply benchmark's run (bench/RESULTS.md)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, _Entry] = {}
        self._compiling: dict[str, asyncio.Future[_Entry]] = {}
        # per workspace, its rules compiled by definition: bounded by the workspace's own rules
        # (each compile keeps only the rules it used), never evicted by another workspace's
        self._compiled: dict[str, CompileCache] = {}
        self.compiles = 0   # compiles started so far: what the tests count

    async def get(self, workspace: str, rev: int | None = None,
                  calendars: dict[str, Calendar] | None = None) -> Any:
        """The compiled ruleset at revision `rev` (read from the store when not given)."""
        return (await self.get_with_revisions(workspace, rev, calendars))[0]

    async def get_with_revisions(self, workspace: str, rev: int | None = None,
                                 calendars: dict[str, Calendar] | None = None
                                 ) -> tuple[Any, dict[str, int]]:
        """(compiled ruleset, rule id -> the rule's revision number) at workspace revision `rev`:
        run records name the revision of each rule that fired (GET /v1/rules/{id}/revisions/{n}).
        `calendars` (the SLA policies' business hours by policy name, for business-time
        conditions) is part of the cache key: editing a policy's hours recompiles the rules."""
        if rev is None:
            rev = await catalog.rules_revision(self._store, workspace)
        key = (rev, frozenset((calendars or {}).items()))
        while True:   # again after a compile shared: it failed, or was of another revision
            hit = self._cache.get(workspace)
            if hit and hit[0] == key:
                return hit[1], hit[2]
            pending = self._compiling.get(workspace)
            if pending is None:
                entry = await self._compile(workspace, key, calendars)
                return entry[1], entry[2]
            shared = await outcome(pending)
            if shared is not None and shared[0] == key:
                return shared[1], shared[2]

    async def _compile(self, workspace: str, key: _Key,
                       calendars: dict[str, Calendar] | None) -> _Entry:
        async def compile_now() -> _Entry:
            self.compiles += 1
            raw = await catalog.raw_rules(self._store, workspace)
            # in a thread, the parse too: 1,000 rules of 1,000-character regexes take seconds to
            # compile, and a workspace's 4 MiB of rules ~40 ms to parse, which on the loop every
            # other workspace waited out (one compile per workspace at a time, `lead`: its
            # CompileCache is never shared)
            compiled = self._compiled.setdefault(workspace, CompileCache())
            ruleset, revisions = await asyncio.to_thread(_compile_raw, raw, calendars, compiled)
            entry: _Entry = (key, ruleset, revisions)
            self._cache[workspace] = entry
            return entry
        return await lead(self._compiling, workspace, compile_now)


def _compile_raw(raw: dict[str, str], calendars: dict[str, Calendar] | None,
                 cache: CompileCache) -> tuple[Any, dict[str, int]]:
    """(compiled ruleset, rule id -> revision) of a workspace's rules hash as stored."""
    stored = catalog.parse_rules(raw)
    revisions = {str(r["id"]): int(r.get("revision", 1)) for r in stored if r.get("id") is not None}
    return compile_stored_rules(stored, calendars, cache), revisions


def compile_stored_rules(rules: list[dict[str, Any]], calendars: dict[str, Calendar] | None = None,
                         cache: CompileCache | None = None) -> Any:
    """Compile a workspace's rules; a stored rule the engine refuses (it was valid when saved, but
    the engine may have grown stricter, or names a calendar whose SLA policy was deleted) is left
    out and logged instead of stopping every event. `cache`: the workspace's rules as compiled
    before, by definition (only the rules not in it are compiled); afterwards it keeps only
    these rules."""
    from rules import RuleError, compile_rules

    try:
        if not rules:
            return None
        try:
            return compile_rules(rules, calendars=calendars, cache=cache)
        except RuleError:
            good = []
            for rule in rules:
                try:
                    compile_rules([rule], calendars=calendars, cache=cache)
                    good.append(rule)
                except RuleError as exc:
                    log.warning("skipping invalid stored rule %s: %s", rule.get("id"), exc)
            return compile_rules(good, calendars=calendars, cache=cache) if good else None
    finally:
        if cache is not None:
            cache.sweep()
