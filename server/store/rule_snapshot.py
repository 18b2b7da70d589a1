"""A workspace's rules as of one rules revision, kept in this process: what a listing, a rule write
and an import read instead of the whole rules hash when the revision has not moved.

Every change of the rules hash bumps `rules:rev` in the same MULTI (store/revisions.py
`queue_changes`), so the rules at a revision never change. A snapshot is kept from a read that
took the counter and the hash in one MULTI (`read_rules`), or from a rule write of this process
that EXEC'd (`advance`): it WATCHed both keys and bumped the counter once, so the hash after it is
the snapshot before it with its changes. A write that reads a snapshot still WATCHes the hash:
another process's write in between fails its EXEC, and it reads again.

Why: every rule write read and parsed the workspace's whole rules hash on the event loop every
workspace's requests share (HGETALL under WATCH), and so did the listing after it; at 4 MiB of
rules of many small conditions that is ~50 ms of orjson a read. Kept while the workspace's
rules are at most Settings.max_rule_bytes (the limit of a workspace's rules, rule_size.py), for
the LISTED_WORKSPACES workspaces listed or written last. The dicts are shared: callers copy
before they change one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from server.store import keys as K
from server.store.kept import Kept
from server.store.replies import text_map

__all__ = ["Rules", "LISTED_WORKSPACES", "read_rules", "kept_rules", "advance", "rule_order"]

LISTED_WORKSPACES = 32   # workspaces whose rules are kept (the least recently used go)


def rule_order(rule: dict[str, Any]) -> tuple[Any, ...]:
    """The evaluation order: position, then creation."""
    return (rule.get("position", 0), rule.get("created_at") or "", rule["id"])


class Rules(dict[str, dict[str, Any]]):
    """Every rule by id at revision `rev` (the counter as the store answers it; None: never
    written), with each rule's stored JSON size (`sizes`) and, once asked, the evaluation order."""

    def __init__(self, rev: Any, rules: dict[str, dict[str, Any]], sizes: dict[str, int]) -> None:
        super().__init__(rules)
        self.rev, self.sizes = rev, sizes
        self._ordered: list[dict[str, Any]] | None = None
        # answers made from these rules alone, by their reader (the export's rules section):
        # the rules at a revision never change, so neither do they
        self.memo: dict[str, Any] = {}

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    def ordered(self) -> list[dict[str, Any]]:
        if self._ordered is None:
            self._ordered = sorted(self.values(), key=rule_order)
        return self._ordered

    def copy_rules(self) -> Rules:
        """A copy a writer may add to and remove from (the rules themselves are shared)."""
        return Rules(self.rev, dict(self), dict(self.sizes))


_kept: Kept[str, Rules] = Kept(LISTED_WORKSPACES)


def _parsed(rev: Any, raw: Any) -> Rules:
    raw = {k: v.encode() for k, v in text_map(raw).items()}   # sizes in bytes, as the limit is
    return Rules(rev, {k: orjson.loads(v) for k, v in raw.items()}, {k: len(v) for k, v in raw.items()})


def _keep(store: Any, workspace: str, rules: Rules) -> None:
    if rules.total <= store.settings.max_rule_bytes:
        _kept.put(store, workspace, rules)
    else:
        _kept.drop(store, workspace)


def kept_rules(store: Any, workspace: str, rev: Any) -> Rules | None:
    """The rules kept at revision `rev`, if they are."""
    kept = _kept.get(store, workspace)
    return kept if kept is not None and kept.rev == rev else None


async def read_rules(store: Any, workspace: str, pipe: Any = None) -> Rules:
    """The workspace's rules now: the kept snapshot when the counter has not moved, else the hash.
    Through `pipe` (a pipeline in WATCH mode, which must WATCH the hash) its reads are immediate
    and nothing is kept from them (the transaction's EXEC is what says they were one state);
    without, the counter and the hash are read in one MULTI and kept."""
    if pipe is not None:
        rev = await pipe.get(K.rules_rev(workspace))
        kept = kept_rules(store, workspace, rev)
        if kept is not None:
            return kept
        return _parsed(rev, await pipe.hgetall(K.rules(workspace)))
    rev = await store.redis.get(K.rules_rev(workspace))
    kept = kept_rules(store, workspace, rev)
    if kept is not None:
        return kept
    async with store.redis.pipeline(transaction=True) as p:
        p.get(K.rules_rev(workspace))
        p.hgetall(K.rules(workspace))
        rev, raw = await p.execute()
    rules = _parsed(rev, raw)
    _keep(store, workspace, rules)
    return rules


def advance(store: Any, workspace: str, before: Rules, changes: Iterable[Any]) -> None:
    """Keep the rules after a write that EXEC'd: `before` (read under its WATCH) with `changes`
    (store/revisions.Change, each with the `size` it was written with), one revision on."""
    after = before.copy_rules()
    after.rev = str(int(before.rev or 0) + 1)
    for ch in changes:
        if ch.new is None:
            after.pop(ch.ident, None)
            after.sizes.pop(ch.ident, None)
        else:
            after[ch.ident] = ch.new
            after.sizes[ch.ident] = ch.size
    _keep(store, workspace, after)
