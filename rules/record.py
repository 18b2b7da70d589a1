"""The run record's per-rule entries, built straight from a pass: what the worker stores.

The worker stores for every event one entry per rule listening to its type:
`{id, name, matched, failed[, errors]}`, `failed` being explain's (the first failing condition in
written order, with the value it saw at the rule's turn). Built from `.explain` that cost more
than the pass itself (a dict per rule, then a copy of it, and a generated call per rule). Here:

- every rule's entry comes from one generated call (`rec`, rules/recordgen.py) on the event's
  ticket: the first failing step in written order, its `failed` a copy of a template made at
  compile time. A rule the pass did not check again keeps its answer from that ticket
  (rules/plan.py: nothing it reads changed before its turn), and so does each of its steps: each
  step reads a subset of the rule's keys. A rule checked again is asked on the ticket at its turn
  (`_entry_at`, explain's way);
- the value `seen` is read at the rule's turn (`W[p]`), copied once per field and ticket version
  (the entries of one record may share it, as explain's do).

`entries(ev)` equals `[{id, name, matched, failed[, errors]} for each item of ev.explain]`
(tests/rules/test_record.py checks that on random rule sets).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .conditions import Leaf
from .jsondata import json_copy
from .ops import State

if TYPE_CHECKING:
    from .evaluation import Evaluation

_CHANGE_OPS = frozenset({"changed", "changed_from", "changed_to"})


class _Described:
    """A bucket's steps as explain describes them, made once: (template, field, kind) per step,
    kind 0 a plain leaf (add `seen`), 1 a leaf whose value is a container (copied per entry), 2 a
    leaf that needs its own `failure` (`changed*`, `matches`: seen pairs and regex notes), 3 an
    `any` group (the template is the whole `failed`)."""

    def __init__(self, steps: list[list[Any]]) -> None:
        self.steps: list[list[tuple[dict[str, Any], Any, int]]] = []
        for rule_steps in steps:
            out = []
            for node in rule_steps:
                if isinstance(node, Leaf):
                    described = node.describe()
                    kind = 2 if node.op in _CHANGE_OPS or node.op == "matches" or "calendar" in described else (
                        1 if type(node.value) in (list, dict) else 0)
                    out.append((described, node, kind))
                else:
                    out.append(({"path": node.path, "field": None, "op": "any", "value": None, "seen": None},
                                node, 3))
            self.steps.append(out)


def described(bucket: Any) -> _Described:
    d = getattr(bucket, "_described", None)
    if d is None:
        d = bucket._described = _Described(bucket.steps)
    return d


class Seen(dict):  # type: ignore[type-arg]
    """The `seen` copies of one ticket version, by field number, made as the record asks: the
    entries of one version share them (as explain's do), never with the ticket. A version keeps
    the previous version's copy of a field whose raw value is the very same object (actions
    replace what they change), so a fire that adds a tag re-copies the tags alone."""

    __slots__ = ("fields", "state", "parent", "raws")

    def __init__(self, fields: list[Any], state: State, parent: Seen | None = None) -> None:
        super().__init__()
        self.fields, self.state, self.parent = fields, state, parent
        self.raws: dict[int, Any] = {}

    def __missing__(self, n: int) -> Any:
        s = self.state
        raw = self.fields[n].read(s.ticket, s.event, s.vars)
        p = self.parent
        while p is not None and n not in p.raws and p.parent is not None:
            p = p.parent
        if p is not None and n in p.raws and p.raws[n] is raw and type(raw) in (list, dict):
            value = dict.__getitem__(p, n)
        else:
            value = json_copy(raw)
        self.raws[n] = raw
        self[n] = value
        return value


def entries(ev: Evaluation) -> list[dict[str, Any]]:
    bucket = ev._bucket
    if bucket is None:
        return []
    rules, fired, skipped, stopped = bucket.rules, ev._fired, ev._skipped, ev._stopped_at
    timeline, n = ev._timeline, len(bucket.rules)
    # the ticket version at each position's turn: W[p]
    seens: list[Seen] = []
    state = ev._first
    for step in range(len(timeline)):
        if step:
            state = ev._state_at(step, state)
        seens.append(Seen(bucket.record_fields, state, seens[-1] if seens else None))
    W: list[Seen] = []
    for step in range(len(timeline)):
        start = timeline[step][0]
        end = timeline[step + 1][0] if step + 1 < len(timeline) else n
        W += [seens[step]] * (end - start)
    out: list[Any] = bucket.record(_first_slots(ev, bucket), ev._first, W)
    for i, firing in fired.items():
        entry: dict[str, Any] = {"id": rules[i].id, "name": rules[i].name, "matched": True, "failed": None}
        if firing.errors:
            entry["errors"] = list(firing.errors)
        out[i] = entry
    for i in skipped:
        out[i] = {"id": rules[i].id, "name": rules[i].name, "matched": False, "failed": None}
    # rules checked again at their turn, and those `rec` leaves out, take the per-rule path
    again = (set(ev._rechecked) | bucket.record_slow) - fired.keys() - skipped
    for i in again:
        out[i] = _entry_at(ev, bucket, i, W[i].state)
    if stopped is not None:
        del out[stopped + 1:]
    if None in out:  # a rule without conditions that did not fire (stopped before it) -- or a bug
        for i, e in enumerate(out):
            if e is None:
                out[i] = _entry_at(ev, bucket, i, W[i].state)
    return out  # type: ignore[no-any-return]


def _entry_at(ev: Evaluation, bucket: Any, i: int, state: State) -> dict[str, Any]:
    """Rule i's entry on the ticket at its turn, the slow way (explain's)."""
    rule = bucket.rules[i]
    k = bucket.explainers[i](_slots(bucket, state), state)
    failed = None
    if k >= 0:
        tmpl, node, kind = described(bucket).steps[i][k]
        if kind == 3:
            failed = dict(tmpl)
        else:
            failed = node.failure(state)
    return {"id": rule.id, "name": rule.name, "matched": i in ev._fired, "failed": failed}


def _slots(bucket: Any, state: State) -> Any:
    from .codegen import read_slots
    return read_slots(bucket.slots, state)


def _first_slots(ev: Evaluation, bucket: Any) -> Any:
    first = ev._first
    if bucket.read is not None:
        return bucket.read(first.ticket, first.event, first.vars)
    return _slots(bucket, first)
