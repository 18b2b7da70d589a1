"""How big a workspace's rules may be: one rule's definition at most MAX_RULE_BYTES of compact JSON
(413 rule_too_large), all of them at most Settings.max_rule_bytes as stored (422
too_many_rule_bytes), checked on every write of a rule, in the transaction that writes it.

Why both bounds: a rule was bounded by the 1 MiB request body only, so 1,000 rules could be
~1 GB, and every listing, rule write, export, backtest and the worker's rule cache reads a
workspace's rules whole: 120 rules of 900 KB made another workspace's p99 576 ms
(tests/server/test_tenant_isolation.py). A draft was already bounded at 64 KiB
(store/drafts.MAX_DRAFT_BYTES), and a published draft becomes a rule: the same bound. The total
bound is what a listing's per-revision cache holds (catalog.listed_rules), so a listing reads
one counter.

A workspace stored before these bounds keeps what it has: it may read, reorder, enable,
disable, delete and shrink its rules; only a write that makes what the rules say bigger is
refused (their bookkeeping -- position, times, revision -- and `enabled` do not count as
growth, so a disable of an oversized rule is never refused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson

from server.errors import PayloadTooLarge, Unprocessable

__all__ = ["MAX_RULE_BYTES", "BOOKKEEPING", "definition_bytes", "stored_bytes", "check_rule_size",
           "check_rule_changes", "too_large"]

MAX_RULE_BYTES = 64 * 1024   # one rule's definition as compact JSON (limit MAX_RULE_BYTES)

# What the service keeps on a rule beside its definition; a client cannot set them.
BOOKKEEPING = ("id", "position", "created_at", "updated_at", "revision", "last_fired_at",
               "fired_24h", "usage")
_REVISION_ROOM = len(',"revision":') + 10   # a new rule's `revision`, set when it is written


class _Change(Protocol):
    """What the checks read of a store/revisions.Change."""

    ident: str
    new: dict[str, Any] | None
    old: dict[str, Any] | None


def definition_bytes(rule: Any) -> int:
    """The size of what a rule says (without its bookkeeping) as compact JSON."""
    if not isinstance(rule, dict):
        return len(orjson.dumps(rule))
    return len(orjson.dumps({k: v for k, v in rule.items() if k not in BOOKKEEPING}))


def _weight(rule: dict[str, Any] | None) -> int:
    """What counts as growth: the definition's size without `enabled` (0 for no rule)."""
    if rule is None:
        return 0
    return definition_bytes({k: v for k, v in rule.items() if k != "enabled"})


def stored_bytes(rule: dict[str, Any]) -> int:
    """The size of a rule as the rules hash will hold it (with room for its revision number)."""
    return len(orjson.dumps(rule)) + (0 if "revision" in rule else _REVISION_ROOM)


def too_large(new: Any, old: dict[str, Any] | None = None, path: str = "") -> dict[str, Any] | None:
    """The problem of a rule over MAX_RULE_BYTES that says more than `old` said, or None."""
    size = definition_bytes(new)
    if size <= MAX_RULE_BYTES or (old is not None and isinstance(new, dict) and _weight(new) <= _weight(old)):
        return None
    return {"path": path, "reason": f"{size} bytes of JSON; at most {MAX_RULE_BYTES} bytes a rule "
                                    "(MAX_RULE_BYTES)", "bytes": size, "limit": MAX_RULE_BYTES}


def _raise_too_large(problems: list[dict[str, Any]]) -> None:
    if not problems:
        return
    if len(problems) == 1:
        what = f"The rule{' ' + problems[0]['path'] if problems[0]['path'] else ''} is"
    else:
        what = f"{len(problems)} rules ({', '.join(p['path'] for p in problems[:5])}) are"
    raise PayloadTooLarge(
        f"{what} over the rule size limit of {MAX_RULE_BYTES} bytes of JSON (MAX_RULE_BYTES): "
        + "; ".join(f"{p['path'] or 'rule'}: {p['bytes']} bytes" for p in problems[:5])
        + ". Split it into smaller rules, or shorten its messages and lists.",
        code="rule_too_large", details=problems)


def check_rule_size(new: Any, old: dict[str, Any] | None = None, path: str = "") -> None:
    """413 rule_too_large when `new` is over MAX_RULE_BYTES and says more than `old`."""
    found = too_large(new, old, path)
    _raise_too_large([found] if found else [])


def check_rule_changes(limit: int, sizes: Mapping[str, int], changes: Sequence[_Change],
                       paths: Mapping[str, str] | None = None) -> None:
    """Every bound of rule `changes` against the rules stored now (`sizes`: each rule's stored
    JSON size by id): 413 rule_too_large naming each rule over MAX_RULE_BYTES (by its path in
    the request, `paths[id]`: an import's `rules[2]`), else 422 too_many_rule_bytes when the
    rules would be more than `limit` bytes together and the changes make them say more."""
    _raise_too_large([p for ch in changes if ch.new is not None
                      for p in [too_large(ch.new, ch.old, (paths or {}).get(ch.ident, ""))]
                      if p is not None])
    before = sum(sizes.values())
    after, growth = before, 0
    for ch in changes:
        if ch.old is not None:
            after -= sizes.get(ch.ident, 0)
        if ch.new is not None:
            after += stored_bytes(ch.new)
        growth += _weight(ch.new) - _weight(ch.old)
    if after > limit and growth > 0:
        raise Unprocessable(
            f"This would make the workspace's rules {after} bytes of JSON; the limit is {limit} "
            f"bytes of rules per workspace (DESKFLOW_MAX_RULE_BYTES), and they are {before} "
            "bytes now. Shorten rules, or delete rules you no longer use "
            "(GET /v1/rules?unused_for=30d).", code="too_many_rule_bytes",
            details=[{"path": "", "reason": f"at most {limit} bytes of rules per workspace",
                      "bytes": after, "current": before, "limit": limit}])
