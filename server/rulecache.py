"""Compiled rule sets per workspace for the worker, recompiled only when something they depend on
moves: the workspace's rules revision (bumped by every rule change) or the SLA policies' calendars
that business-time conditions name."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rules.calendar import Calendar
from server.store import catalog
from server.store.connect import Store

__all__ = ["RuleCache", "compile_stored_rules"]

log = logging.getLogger("deskflow.worker")


class RuleCache:
    """Compiled rulesets per workspace, recompiled only when the workspace's rules revision moves."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[tuple[int, frozenset[Any]], Any, dict[str, int]]] = {}

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
        hit = self._cache.get(workspace)
        if hit and hit[0] == key:
            return hit[1], hit[2]
        stored = await catalog.list_rules(self._store, workspace)
        # in a thread: 1,000 rules of 1,000-character regexes take seconds to compile
        ruleset = await asyncio.to_thread(compile_stored_rules, stored, calendars)
        revisions = {str(r["id"]): int(r.get("revision", 1)) for r in stored if r.get("id") is not None}
        self._cache[workspace] = (key, ruleset, revisions)
        return ruleset, revisions


def compile_stored_rules(rules: list[dict[str, Any]], calendars: dict[str, Calendar] | None = None) -> Any:
    """Compile a workspace's rules; a stored rule the engine refuses (it was valid when saved, but
    the engine may have grown stricter, or names a calendar whose SLA policy was deleted) is left
    out and logged instead of stopping every event."""
    from rules import RuleError, compile_rules

    if not rules:
        return None
    try:
        return compile_rules(rules, calendars=calendars)
    except RuleError:
        good = []
        for rule in rules:
            try:
                compile_rules([rule], calendars=calendars)
                good.append(rule)
            except RuleError as exc:
                log.warning("skipping invalid stored rule %s: %s", rule.get("id"), exc)
        return compile_rules(good, calendars=calendars) if good else None
