"""The run record's per-rule entries, built straight from a pass: what the worker stores.

The worker stores for every event one entry per rule listening to its type:
`{id, name, matched, failed[, errors][, any_held]}`, `failed` being explain's (the first failing
condition in written order, with the value it saw at the rule's turn) and `any_held` the branch
that held of each `any` group that held before it. Every event pays for it, so it is built
from what the pass left, with code that stays small:

- one generated call (`first`, rules/codegen.py) answers every rule's explainer on the event's
  ticket: the number of its first failing step. A rule the pass did not check again keeps that
  answer at its turn (rules/plan.py: nothing it reads changed before its turn), and so does
  each of its steps (each reads a subset of the rule's keys). A rule checked again is asked on
  the ticket at its turn (`_entry_at`, explain's way). An earlier version generated one
  if/elif chain per rule that built each entry inline: ~90 KB of bytecode per trigger bucket at
  1,000 rules, so an event of another type than the last found none of it in the CPU's caches
  and paid 4x what the same code cost when warm. Here the per-rule data sits in one tuple per
  step (`RecordPlan`) and one small loop, shared by every bucket, builds the entries;
- the value `seen` is read at the rule's turn and copied once per field and ticket version (the
  entries of one record may share it, as explain's do): a pass whose fires only appended tags
  left one ticket dict whose tags list grew, so only the tags are copied again per version.

`entries(ev)` equals `[{id, name, matched, failed[, errors][, any_held]} for each item of
ev.explain]` (tests/rules/test_property.py checks that on random rule sets).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from .codegen import FIRST_BASE
from .conditions import Group, Leaf, Node
from .jsondata import json_copy
from .ops import State

if TYPE_CHECKING:
    from .pass_view import Pass as Evaluation

_OWN_FAILURE = frozenset({"changed", "changed_from", "changed_to", "matches"})
PLAIN, COPY_LIST, COPY_VALUE, OWN, ANY_GROUP = 0, 1, 2, 3, 4
_SCALARS = frozenset({str, int, float, bool, type(None)})
_MISS = object()


class RecordPlan:
    """What the record needs of each rule, made once per bucket: its (id, name), and per step
    (kind, path, field name, op, value, field number, node): kind PLAIN a leaf whose `failed`
    is its description and `seen`, COPY_VALUE the same with a list/dict value (copied per entry:
    never the rule's own; COPY_LIST: a list of scalars, copied by a slice), OWN a leaf whose `failed` takes its own code (`changed*` pairs,
    regex notes, calendars), ANY_GROUP an `any` group. `fields` are the fields read for `seen`,
    by number; `tags` the number of the tags field (the one field a pass appends to in place)."""

    def __init__(self, rules: list[Any], steps: list[list[Node]],
                 branches: list[tuple[tuple[int, Any], ...]], radix: list[list[tuple[int, int]]] | None,
                 deep: frozenset[int]) -> None:
        self.deep = deep
        self.heads = [(r.id, r.name) for r in rules]
        self.fields: list[Any] = []
        numbers: dict[str, int] = {}
        self.steps: list[tuple[tuple[Any, ...], ...]] = []
        for rule_steps in steps:
            out: list[tuple[Any, ...]] = []
            for node in rule_steps:
                if isinstance(node, Group):
                    out.append((ANY_GROUP, node.path, None, "any", None, -1, node))
                    continue
                assert isinstance(node, Leaf)
                described = node.describe()
                if node.op in _OWN_FAILURE or "calendar" in described:
                    out.append((OWN, node.path, node.field.name, node.op, None, -1, node))
                    continue
                name = node.field.name
                if name not in numbers:
                    numbers[name] = len(self.fields)
                    self.fields.append(node.field)
                kind = (PLAIN if type(node.value) not in (list, dict) else
                        COPY_LIST if type(node.value) is list and all(type(x) in _SCALARS for x in node.value)
                        else COPY_VALUE)
                out.append((kind, node.path, name, node.op, node.value, numbers[name], node))
            self.steps.append(tuple(out))
        self.tags = numbers.get("tags", -2)
        # per rule: (step number, branch finder, M, children + 1, group path, its children's
        # paths) of its `any` steps (the finders and M are the generated `branches` and `radix`,
        # rules/codegen.py)
        self.groups: list[tuple[tuple[int, Any, int, int, str, tuple[str, ...]], ...]] = []
        for pos, (rule_steps, found) in enumerate(zip(steps, branches, strict=True)):
            scale = dict(radix[pos]) if radix else {}
            groups = [(k, y, cast(Group, rule_steps[k])) for k, y in found]   # `any` steps only
            self.groups.append(tuple(
                (k, y, scale.get(k, 0), len(g.children) + 1, g.path,
                 tuple(c.path for c in g.children)) for k, y, g in groups))


Groups = tuple[tuple[int, Any, int, int, str, tuple[str, ...]], ...]


def any_held(groups: Groups, k: int, v: Any, s: State) -> dict[str, str] | None:
    """{group path: path of its first branch (written order) that holds} for a rule's `any`
    steps (`groups`, RecordPlan's) before step k (every one when k < 0) that hold on slots v of
    state s; None if none."""
    out = None
    for step, ypred, _, _, path, kids in groups:
        if 0 <= k <= step:
            break
        b = ypred(v, s)
        if b >= 0:
            if out is None:
                out = {}
            out[path] = kids[b]
    return out


def _decoded(groups: Groups, k: int, code: int) -> dict[str, str] | None:
    """any_held's answer read from the rule's `first` code (rules/codegen.py, Generated.first)."""
    out = None
    for step, _, scale, radix, path, kids in groups:
        if 0 <= k <= step:
            break
        b = code // scale % radix - 1
        if b >= 0:
            if out is None:
                out = {}
            out[path] = kids[b]
    return out


def entries(ev: Evaluation) -> list[dict[str, Any]]:  # noqa: C901 -- one loop, its cases inline
    bucket = ev._bucket
    if bucket is None:
        return []
    plan: RecordPlan = bucket.record
    rules, fired, skipped, stopped = bucket.rules, ev._fired, ev._skipped, ev._stopped_at
    timeline, first = ev._timeline, ev._first
    n = len(rules) if stopped is None else stopped + 1
    v0 = _first_slots(ev, bucket)
    assert bucket.first is not None   # every bucket with rules has its generated `first`
    ks = bucket.first(v0, first)
    # the ticket version at each position's turn (vpos), and for every field but the tags, the
    # first version of the run of versions sharing its ticket dict and vars (bpos): appends to
    # the tags change nothing else
    if len(timeline) == 1:
        vpos = bpos = [0] * n
    else:
        vpos, bpos = [], []
        base = 0
        for step in range(len(timeline)):
            start = timeline[step][0]
            end = timeline[step + 1][0] if step + 1 < len(timeline) else len(rules)
            if step and not (timeline[step][1] is timeline[step - 1][1]
                             and timeline[step][2] is timeline[step - 1][2]):
                base = step
            vpos += [step] * (end - start)
            bpos += [base] * (end - start)
    again = set(ev._rechecked) - fired.keys() - skipped if ev._rechecked else set()
    special = fired.keys() | skipped | again | plan.deep
    heads, specs, groups = plan.heads, plan.steps, plan.groups
    fields, tags_n = plan.fields, plan.tags
    nf = len(fields)
    at_key = [-1] * nf            # per field: the version key its cached copy is for
    at_raw: list[Any] = [_MISS] * nf
    at_copy: list[Any] = [None] * nf
    at_len: list[Any] = [None] * nf
    states: dict[int, State] = {0: first}
    event = first.event
    out: list[dict[str, Any]] = []
    append = out.append
    for i in range(n):
        rid, name = heads[i]
        if i in special:
            if i in fired:
                firing = fired[i]
                entry: dict[str, Any] = {"id": rid, "name": name, "matched": True, "failed": None}
                if firing.errors:
                    entry["errors"] = list(firing.errors)
                if groups[i]:
                    if i in ev._rechecked or i in plan.deep:
                        s = _state(ev, states, vpos[i])
                        held = any_held(groups[i], -1, _slots(bucket, s), s)
                    else:
                        held = _decoded(groups[i], -1, ks[i])
                    if held:
                        entry["any_held"] = held
                append(entry)
            elif i in skipped:
                append({"id": rid, "name": name, "matched": False, "failed": None})
            else:
                append(_entry_at(ev, bucket, i, _state(ev, states, vpos[i])))
            continue
        code = ks[i]
        k = code % FIRST_BASE - 1
        if k < 0:  # holds and did not fire: stopped before it (never for a rule that ran)
            append(_entry_at(ev, bucket, i, _state(ev, states, vpos[i])))
            continue
        kind, path, fname, op, value, fn, _node = specs[i][k]
        if kind <= COPY_VALUE:
            key = vpos[i] if fn == tags_n else bpos[i]
            if at_key[fn] == key:
                seen = at_copy[fn]
            else:
                # the field at this version: the same object as the cached one's (and, for the
                # tags list a pass appends to, the same length) shares its copy
                _, ticket, vars, length = timeline[key]
                raw = fields[fn].read(ticket, event, vars)
                if length is not None and fn == tags_n and raw is ticket.get("tags"):
                    if raw is not at_raw[fn] or length != at_len[fn]:
                        at_copy[fn] = json_copy(cast(list[Any], raw)[:length])
                elif raw is not at_raw[fn] or at_len[fn] is not None:
                    at_copy[fn] = json_copy(raw)
                    length = None
                at_key[fn], at_raw[fn], at_len[fn] = key, raw, length
                seen = at_copy[fn]
            failed = {"path": path, "field": fname, "op": op,
                      "value": value if kind == PLAIN else value[:] if kind == COPY_LIST else json_copy(value),
                      "seen": seen}
        elif kind == ANY_GROUP:
            failed = {"path": path, "field": None, "op": "any", "value": None, "seen": None}
        else:
            failed = _node.failure(_state(ev, states, vpos[i]))
        entry = {"id": rid, "name": name, "matched": False, "failed": failed}
        g = groups[i]
        if g and g[0][0] < k:
            held = _decoded(g, k, code)
            if held:
                entry["any_held"] = held
        append(entry)
    return out


def _state(ev: Evaluation, states: dict[int, State], step: int) -> State:
    """The State of timeline entry `step` (made once per record)."""
    s = states.get(step)
    if s is None:
        known = max(k for k in states if k < step)
        s = states[known]
        for k in range(known + 1, step + 1):
            s = states[k] = ev._state_at(k, s)
    return s


def _entry_at(ev: Evaluation, bucket: Any, i: int, state: State) -> dict[str, Any]:
    """Rule i's entry on the ticket at its turn, the slow way (explain's)."""
    rule = bucket.rules[i]
    v = _slots(bucket, state)
    k = bucket.explainers[i](v, state)
    failed = None
    if k >= 0:
        kind, path, *_, node = bucket.record.steps[i][k]
        if kind == ANY_GROUP:
            failed = {"path": path, "field": None, "op": "any", "value": None, "seen": None}
        else:
            failed = node.failure(state)
    entry: dict[str, Any] = {"id": rule.id, "name": rule.name, "matched": i in ev._fired, "failed": failed}
    firing = ev._fired.get(i)
    if firing is not None and firing.errors:
        entry["errors"] = list(firing.errors)
    held = any_held(bucket.record.groups[i], k, v, state) if bucket.record.groups[i] else None
    if held:
        entry["any_held"] = held
    return entry


def _slots(bucket: Any, state: State) -> Any:
    from .codegen import read_slots
    return read_slots(bucket.slots, state)


def _first_slots(ev: Evaluation, bucket: Any) -> Any:
    first = ev._first
    if bucket.read is not None:
        return bucket.read(first.ticket, first.event, first.vars)
    return _slots(bucket, first)
