"""The source of a bucket's run-record builder `rec(v, s, W)`, written with its matcher (codegen.py).

`rec` returns, for every rule of the bucket, the run record's entry for a rule that did not fire:
`{"id", "name", "matched": False, "failed": {...}}` for the first step (in written order) failing
on the slot vector `v` of the event's ticket, or None where every step holds. rules/record.py
then puts in the fired, skipped and re-checked rules. One if/elif chain per rule, no call per
rule, and each dict a copy of a template made at compile time: this is what makes the record
cost about one more pass.

As in codegen.py, no tenant string enters the source: ids, names, paths, field names and values
are constants `K[n]` (the templates too); `W[p]` is the value-copy cache of the ticket version at rule p's turn
(rules/record.py `Seen`), indexed by field number; `X[n]` are the few leaves whose `failed` takes
their own code (`changed*` pairs, regex notes, calendars), called on that version's State.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .conditions import Group, Leaf, Node

CHAIN_STEPS = 12   # rules with more steps are left to rules/record.py's per-rule path
_OWN_FAILURE = frozenset({"changed", "changed_from", "changed_to", "matches"})


class RecordParts:
    """What `rec` needs besides K: the fields `W[p]` copies (by number) and the X leaves."""

    def __init__(self) -> None:
        self.fields: list[Any] = []
        self.numbers: dict[str, int] = {}
        self.own: list[Callable[..., Any]] = []

    def field(self, f: Any) -> int:
        if f.name not in self.numbers:
            self.numbers[f.name] = len(self.fields)
            self.fields.append(f)
        return self.numbers[f.name]


def _failed(node: Node, pos: int, const: Callable[[Any], str], parts: RecordParts) -> str:
    """Statements leaving rule `pos`'s failed dict for this step in `f` (copies of templates made
    once: a small dict's copy costs less than building it from constants)."""
    if isinstance(node, Group):
        return f'f = {const({"path": node.path, "field": None, "op": "any", "value": None, "seen": None})}.copy()'
    assert isinstance(node, Leaf)
    described = node.describe()
    if node.op in _OWN_FAILURE or "calendar" in described:
        parts.own.append(node.failure)
        return f"f = X[{len(parts.own) - 1}](W[{pos}].state)"
    out = f'f = {const(described)}.copy(); f["seen"] = W[{pos}][{parts.field(node.field)}]'
    if type(described["value"]) in (list, dict):
        out += '; f["value"] = J(f["value"])'  # a fresh copy per record: never the rule's own
    return out


def record_lines(tests: Sequence[Sequence[str]], steps: Sequence[Sequence[Node]],
                 heads: Sequence[tuple[Any, Any]], const: Callable[[Any], str],
                 parts: RecordParts) -> tuple[list[str], frozenset[int]]:
    """The lines of `def rec(v, s, W)` (inside codegen's `_make`), and the positions it leaves
    to the per-rule path (None in its list)."""
    lines = ["    def rec(v, s, W):", "        r = []", "        a = r.append"]
    slow: set[int] = set()
    for pos, (rule_tests, rule_steps, (rid, name)) in enumerate(zip(tests, steps, heads, strict=True)):
        if not rule_tests or len(rule_tests) > CHAIN_STEPS:
            lines.append("        a(None)")
            if rule_tests:
                slow.add(pos)
            continue
        head = const({"id": rid, "name": name, "matched": False, "failed": None})
        for k, (test, node) in enumerate(zip(rule_tests, rule_steps, strict=True)):
            lines.append(f"        {'if' if k == 0 else 'elif'} not {test}: "
                         f"{_failed(node, pos, const, parts)}; e = {head}.copy(); e[\"failed\"] = f; a(e)")
        lines.append("        else: a(None)")
    lines.append("        return r")
    return lines, frozenset(slow)
