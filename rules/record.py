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
- what the worker stores is their packed form (rules/packed.py `pack`): per rule its id,
  revision and `first` code, and the values its fields had at each ticket version, expanded
  when read (`unpack`, with rules/revision_plan.py `rule_plan` of each rule at its revision);
- the value `seen` is read at the rule's turn and copied once per field and ticket version (the
  entries of one record may share it, as explain's do): a pass whose fires only appended tags
  left one ticket dict whose tags list grew, so only the tags differ per version.

`entries(ev)` equals `[{id, name, matched, failed[, errors][, any_held]} for each item of
ev.explain]` (tests/rules/test_property.py checks that on random rule sets).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .any_paths import Kids
from .codegen import FIRST_BASE
from .conditions import Group, Leaf, Node
from .jsondata import json_copy, seen_copy
from .ops import State

if TYPE_CHECKING:
    from .pass_view import Pass as Evaluation

_OWN_FAILURE = frozenset({"changed", "changed_from", "changed_to", "matches"})
PLAIN, COPY_LIST, COPY_VALUE, OWN, ANY_GROUP, REGEX = 0, 1, 2, 3, 4, 5
_SCALARS = frozenset({str, int, float, bool, type(None)})
_MISS = object()
_EMPTY = object()   # any empty revisions map (every revision null): one cache for all of them
# A bucket's fields past which the quick pack (RecordPlan.quick) is not used: storing a field no
# entry shows costs its bounded `seen` (at most ~2 KB), so a few of them are cheaper to store
# than to find out about, many are not (a rule set can read 20,000 fields).
QUICK_FIELDS = 16


class RecordPlan:
    """What the record needs of each rule, made once per bucket: its (id, name), and per step
    (kind, path, field name, op, value, field number, node): kind PLAIN a leaf whose `failed`
    is its description and `seen`, COPY_VALUE the same with a list/dict value (copied per entry:
    never the rule's own; COPY_LIST: a list of scalars, copied by a slice), OWN a leaf whose `failed` takes its own code (`changed*` pairs,
    regex notes, calendars), ANY_GROUP an `any` group. `fields` are the fields read for `seen`,
    by number; `tags` the number of the tags field (the one field a pass appends to in place)."""

    def __init__(self, rules: list[Any], steps: list[list[Node]],
                 branches: list[tuple[tuple[int, Any], ...]], radix: list[list[tuple[int, int]]] | None,
                 deep: frozenset[int], raws: dict[str, int] | None = None) -> None:
        self.deep = deep
        self.value_bytes = 0   # (rule_plan's: the largest of its steps' values, as JSON)
        self.heads = [(r.id, r.name) for r in rules]
        self.ids = [str(r.id) for r in rules if r.id is not None]   # (shared: never changed)
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
                regex = node.op == "matches" and "calendar" not in described
                if not regex and (node.op in _OWN_FAILURE or "calendar" in described):
                    out.append((OWN, node.path, node.field.name, node.op, None, -1, node))
                    continue
                name = node.field.name
                if name not in numbers:
                    numbers[name] = len(self.fields)
                    self.fields.append(node.field)
                kind = (REGEX if regex else PLAIN if type(node.value) not in (list, dict) else
                        COPY_LIST if type(node.value) is list and all(type(x) in _SCALARS for x in node.value)
                        else COPY_VALUE)
                out.append((kind, node.path, name, node.op, node.value, numbers[name], node))
            self.steps.append(tuple(out))
        self.tags = numbers.get("tags", -2)
        # whether every entry a code describes is described by it whatever the code (no OWN step,
        # no rule of many steps) and the fields are few: rules/packed.py's quick pack then stores
        # every field instead of working out, rule by rule, which ones the entries show
        self.quick = not deep and len(self.fields) <= QUICK_FIELDS and all(
            step[0] != OWN for rule_steps in self.steps for step in rule_steps)
        # the packed record's fields other than the tags (_seen_table): their names and readers
        self.seen_names = [f.name for n, f in enumerate(self.fields) if n != self.tags]
        self.seen_reads = [f.read for n, f in enumerate(self.fields) if n != self.tags]
        # where the pass's slot vector holds their raw values on the event's ticket (the eager
        # reader's, rules/codegen.py raw_index), or None (a lazy vector: they are read again)
        self.seen_at: list[int] | None = (None if raws is None or any(name not in raws for name in self.seen_names)
                                          else [raws[name] for name in self.seen_names])
        # pack's answers per rule and `first` code, for one revisions map (the worker's comes
        # with the rule set from its cache, so it is the same object for every event)
        self._packing: tuple[Any, tuple[list[dict[int, Any]], list[Any]]] = (_MISS, ([], []))
        # (ids, revs, the JSON of a packed record up to its codes) for the last revisions map
        # (server/runrecord.py `packed_json`: the same bytes for every event of a rule set)
        self.json_head: tuple[Any, Any, bytes] = (None, None, b"")
        # per rule: (step number, branch finder, M, children + 1, group path, its children's
        # paths) of its `any` steps (the finders and M are the generated `branches` and `radix`,
        # rules/codegen.py)
        self.groups: list[tuple[tuple[int, Any, int, int, str, tuple[str, ...]], ...]] = []
        for pos, (rule_steps, found) in enumerate(zip(steps, branches, strict=True)):
            scale = dict(radix[pos]) if radix else {}
            groups = [(k, y, cast(Group, rule_steps[k])) for k, y in found]   # `any` steps only
            self.groups.append(tuple(
                (k, y, scale.get(k, 0), len(g.children) + 1, g.path,
                 g.children.paths() if isinstance(g.children, Kids) else tuple(c.path for c in g.children))
                for k, y, g in groups))


    def packing(self, revisions: dict[str, Any], table: Callable[[RecordPlan, int], dict[int, Any]]
                ) -> tuple[list[dict[int, Any]], list[Any]]:
        """For `pack`, per revisions map (a new map starts afresh): per rule, whether each
        `first` code seen so far what its entry needs (rules/packed.py `_described`), and the rules'
        revisions in order; `table(plan, i)` makes rule i's (packed.py's, which imports this
        module). Shared by threads: a swap replaces the pair whole."""
        ident = revisions if revisions else _EMPTY
        revs, made = self._packing
        if revs is not ident:
            made = ([table(self, i) for i in range(len(self.heads))], [revisions.get(i) for i in self.ids])
            self._packing = (ident, made)
        return made


Groups = tuple[tuple[int, Any, int, int, str, tuple[str, ...]], ...]


def turn_code(groups: Groups, k: int, v: Any, s: State) -> int:
    """A rule's `first` code from its explainer's answer k on slots v of State s: k + 1 and the
    held branch of each `any` step before step k (every one when k < 0), as Generated.first
    codes them (rules/codegen.py)."""
    code = k + 1
    for at, ypred, scale, _, _, _ in groups:
        if 0 <= k <= at:
            break
        b = ypred(v, s)
        if b >= 0:
            code += scale * (b + 1)
    return code


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


def decoded(groups: Groups, k: int, code: int) -> dict[str, str] | None:
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


class Walk:
    """What both record builders read of a pass: every rule's `first` code on the event's
    ticket, the ticket version at each position's turn (vpos) and, for every field but the
    tags, the first version of the run of versions sharing its ticket dict and vars (bpos:
    appends to the tags change nothing else), and the positions that take the slow way."""

    __slots__ = ("bucket", "plan", "n", "ks", "special", "states", "_timeline", "_pos")

    def __init__(self, ev: Evaluation, bucket: Any) -> None:
        self.bucket, self.plan = bucket, bucket.record
        rules, fired, skipped, stopped = bucket.rules, ev._fired, ev._skipped, ev._stopped_at
        self._timeline = ev._timeline
        self.n = len(rules) if stopped is None else stopped + 1
        assert bucket.first is not None   # every bucket with rules has its generated `first`
        codes = ev._codes   # (a pass for the record coded every rule already; pack changes its copy)
        self.ks: list[int] = list(codes) if codes is not None else bucket.first(_first_slots(ev, bucket),
                                                                               ev._first, [])
        self._pos: tuple[list[int], list[int]] | None = None
        again = set(ev._rechecked) - fired.keys() - skipped if ev._rechecked else set()
        self.special = fired.keys() | skipped | again | self.plan.deep
        self.states: dict[int, State] = {0: ev._first}

    @property
    def vpos(self) -> list[int]:
        return self._positions()[0]

    @property
    def bpos(self) -> list[int]:
        return self._positions()[1]

    def _positions(self) -> tuple[list[int], list[int]]:
        """(vpos, bpos), made when first asked (a packed record of a pass whose fires only
        appended tags asks neither)."""
        if self._pos is not None:
            return self._pos
        timeline, n, total = self._timeline, self.n, len(self.bucket.rules)
        if len(timeline) == 1:
            vpos = bpos = [0] * n
        else:
            vpos, bpos = [], []
            base = 0
            for step in range(len(timeline)):
                start = timeline[step][0]
                end = timeline[step + 1][0] if step + 1 < len(timeline) else total
                if step and not (timeline[step][1] is timeline[step - 1][1]
                                 and timeline[step][2] is timeline[step - 1][2]):
                    base = step
                vpos += [step] * (end - start)
                bpos += [base] * (end - start)
        self._pos = (vpos, bpos)
        return self._pos

    def slow(self, ev: Evaluation, i: int) -> dict[str, Any] | None:
        """Rule i's entry when it takes the slow way (fired, skipped, checked again, deep), or
        None for the fast way."""
        if i not in self.special:
            return None
        bucket, plan, fired = self.bucket, self.plan, ev._fired
        rid, name = plan.heads[i]
        if i in fired:
            firing = fired[i]
            entry: dict[str, Any] = {"id": rid, "name": name, "matched": True, "failed": None}
            if firing.errors:
                entry["errors"] = list(firing.errors)
            groups = plan.groups[i]
            if groups:
                if i in ev._rechecked or i in plan.deep:
                    s = state_at(ev, self.states, self.vpos[i])
                    held = any_held(groups, -1, slots_of(bucket, s), s)
                else:
                    held = decoded(groups, -1, self.ks[i])
                if held:
                    entry["any_held"] = held
            return entry
        if i in ev._skipped:
            return {"id": rid, "name": name, "matched": False, "failed": None}
        return self.at_turn(ev, i)

    def at_turn(self, ev: Evaluation, i: int) -> dict[str, Any]:
        return _entry_at(ev, self.bucket, i, state_at(ev, self.states, self.vpos[i]))


def entries(ev: Evaluation) -> list[dict[str, Any]]:
    bucket = ev._bucket
    if bucket is None:
        return []
    walk = Walk(ev, bucket)
    plan: RecordPlan = bucket.record
    ks, vpos, bpos, n = walk.ks, walk.vpos, walk.bpos, walk.n
    heads, specs, groups = plan.heads, plan.steps, plan.groups
    tags_n = plan.tags
    versions = _Versions(plan, ev, seen_copy)
    out: list[dict[str, Any]] = []
    append = out.append
    for i in range(n):
        entry = walk.slow(ev, i)
        if entry is not None:
            append(entry)
            continue
        rid, name = heads[i]
        code = ks[i]
        k = code % FIRST_BASE - 1
        if k < 0:  # holds and did not fire: stopped before it (never for a rule that ran)
            append(walk.at_turn(ev, i))
            continue
        kind, path, fname, op, value, fn, _node = specs[i][k]
        if kind <= COPY_VALUE:
            seen = versions.get(fn, vpos[i] if fn == tags_n else bpos[i])
            failed = {"path": path, "field": fname, "op": op,
                      "value": value if kind == PLAIN else value[:] if kind == COPY_LIST else json_copy(value),
                      "seen": seen}
        elif kind == ANY_GROUP:
            failed = {"path": path, "field": None, "op": "any", "value": None, "seen": None}
        else:
            failed = _node.failure(state_at(ev, walk.states, vpos[i]))
        entry = {"id": rid, "name": name, "matched": False, "failed": failed}
        g = groups[i]
        if g and g[0][0] < k:
            held = decoded(g, k, code)
            if held:
                entry["any_held"] = held
        append(entry)
    return out



class _Versions:
    """Each field's value at a ticket version (timeline key), converted (a copy, or its JSON)
    once per version: the same object as the cached one's (and, for the tags list a pass
    appends to, the same length) shares its conversion."""

    __slots__ = ("fields", "tags", "timeline", "event", "convert", "key", "raw", "out", "length")

    def __init__(self, plan: RecordPlan, ev: Evaluation, convert: Any) -> None:
        nf = len(plan.fields)
        self.fields, self.tags, self.convert = plan.fields, plan.tags, convert
        self.timeline, self.event = ev._timeline, ev._first.event
        self.key = [-1] * nf
        self.raw: list[Any] = [_MISS] * nf
        self.out: list[Any] = [None] * nf
        self.length: list[Any] = [None] * nf

    def get(self, fn: int, key: int) -> Any:
        if self.key[fn] != key:
            _, ticket, vars, length = self.timeline[key]
            raw = self.fields[fn].read(ticket, self.event, vars)
            if length is not None and fn == self.tags and raw is ticket.get("tags"):
                if raw is not self.raw[fn] or length != self.length[fn]:
                    self.out[fn] = self.convert(cast(list[Any], raw)[:length])
            elif raw is not self.raw[fn] or self.length[fn] is not None:
                self.out[fn] = self.convert(raw)
                length = None
            self.key[fn], self.raw[fn], self.length[fn] = key, raw, length
        return self.out[fn]


def state_at(ev: Evaluation, states: dict[int, State], step: int) -> State:
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
    v = slots_of(bucket, state)
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


def slots_of(bucket: Any, state: State) -> Any:
    from .slots import read_slots
    return read_slots(bucket.slots, state)


def _first_slots(ev: Evaluation, bucket: Any) -> Any:
    if ev._slots is not None:   # the pass read them (rules/passes.py)
        return ev._slots
    first = ev._first
    if bucket.read is not None:
        return bucket.read(first.ticket, first.event, first.vars)
    return slots_of(bucket, first)
