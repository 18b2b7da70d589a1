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
- what the worker stores is their packed form (`pack`, below): per rule its id, revision and
  `first` code, and the values its fields had at each ticket version, expanded when read
  (`unpack`, with `rule_plan` of each rule at its revision);
- the value `seen` is read at the rule's turn and copied once per field and ticket version (the
  entries of one record may share it, as explain's do): a pass whose fires only appended tags
  left one ticket dict whose tags list grew, so only the tags differ per version.

`entries(ev)` equals `[{id, name, matched, failed[, errors][, any_held]} for each item of
ev.explain]` (tests/rules/test_property.py checks that on random rule sets).
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from .codegen import FIRST_BASE
from .conditions import Group, Leaf, Node
from .errors import RuleError
from .jsondata import SEEN_MAX_BYTES, dumps_any, json_copy, seen_copy
from .ops import State

if TYPE_CHECKING:
    from .pass_view import Pass as Evaluation

_OWN_FAILURE = frozenset({"changed", "changed_from", "changed_to", "matches"})
PLAIN, COPY_LIST, COPY_VALUE, OWN, ANY_GROUP, REGEX = 0, 1, 2, 3, 4, 5
_SCALARS = frozenset({str, int, float, bool, type(None)})
_MISS = object()
_EMPTY = object()   # any empty revisions map (every revision null): one cache for all of them


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
        # the packed record's fields other than the tags (_seen_table): their names and readers
        self.seen_names = [f.name for n, f in enumerate(self.fields) if n != self.tags]
        self.seen_reads = [f.read for n, f in enumerate(self.fields) if n != self.tags]
        # pack's answers per rule and `first` code, for one revisions map (the worker's comes
        # with the rule set from its cache, so it is the same object for every event)
        self._packing: tuple[Any, tuple[list[dict[int, Any]], list[Any]]] = (_MISS, ([], []))
        # per rule: (step number, branch finder, M, children + 1, group path, its children's
        # paths) of its `any` steps (the finders and M are the generated `branches` and `radix`,
        # rules/codegen.py)
        self.groups: list[tuple[tuple[int, Any, int, int, str, tuple[str, ...]], ...]] = []
        for pos, (rule_steps, found) in enumerate(zip(steps, branches, strict=True)):
            scale = dict(radix[pos]) if radix else {}
            groups = [(k, y, cast(Group, rule_steps[k])) for k, y in found]   # `any` steps only
            self.groups.append(tuple(
                (k, y, scale.get(k, 0), len(g.children) + 1, g.path,
                 g.children.paths() if isinstance(g.children, _Kids) else tuple(c.path for c in g.children))
                for k, y, g in groups))


    def packing(self, revisions: dict[str, Any]) -> tuple[list[dict[int, Any]], list[Any]]:
        """For `pack`, per revisions map (a new map starts afresh): per rule, whether each
        `first` code seen so far is described by the code alone (`_compact`), and the rules'
        revisions in order. Shared by threads: a swap replaces the pair whole."""
        ident = revisions if revisions else _EMPTY
        revs, made = self._packing
        if revs is not ident:
            made = ([{} for _ in self.heads], [revisions.get(i) for i in self.ids])
            self._packing = (ident, made)
        return made


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


class _Walk:
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
        self.ks: list[int] = bucket.first(_first_slots(ev, bucket), ev._first)
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
                    s = _state(ev, self.states, self.vpos[i])
                    held = any_held(groups, -1, _slots(bucket, s), s)
                else:
                    held = _decoded(groups, -1, self.ks[i])
                if held:
                    entry["any_held"] = held
            return entry
        if i in ev._skipped:
            return {"id": rid, "name": name, "matched": False, "failed": None}
        return self.at_turn(ev, i)

    def at_turn(self, ev: Evaluation, i: int) -> dict[str, Any]:
        return _entry_at(ev, self.bucket, i, _state(ev, self.states, self.vpos[i]))


def entries(ev: Evaluation) -> list[dict[str, Any]]:
    bucket = ev._bucket
    if bucket is None:
        return []
    walk = _Walk(ev, bucket)
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
            failed = _node.failure(_state(ev, walk.states, vpos[i]))
        entry = {"id": rid, "name": name, "matched": False, "failed": failed}
        g = groups[i]
        if g and g[0][0] < k:
            held = _decoded(g, k, code)
            if held:
                entry["any_held"] = held
        append(entry)
    return out


_GET: Any = dict.get
# the `first` codes per rule whose answer `pack` keeps (a code names the failing step and the
# branch of each `any` group before it: a rule of many groups could see many; the rest are
# worked out per use)
CODES_PER_RULE = 8


def _appends_only(timeline: Any) -> bool:
    """Whether every fire of the pass appended to one owned tags list of one ticket dict, with
    no vars: then each field but the tags is the same at every rule's turn."""
    if len(timeline) < 2:
        return True
    t1 = timeline[1][1]
    return all(t[1] is t1 and t[3] is not None and not t[2] for t in timeline[1:])


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
    if ev._slots is not None:   # the pass read them (rules/passes.py)
        return ev._slots
    first = ev._first
    if bucket.read is not None:
        return bucket.read(first.ticket, first.event, first.vars)
    return _slots(bucket, first)


# -- the packed record: what the worker stores, expanded when it is read --------------------------
#
# Why: the entries above are one `{id, name, matched, failed, ...}` per rule listening to the
# event's type, ~25 KB of JSON an event at 1,000 rules and ~1 MB at 10,000, built and stored for
# every event though most are never read (bench/RESULTS.md: the record cost 3.5-6.5x the pass).
# What decides an entry is small: the rule (id and revision: its conditions never change under a
# revision), its `first` code (the failing step and held branches) and the values its fields had
# at its turn. So the worker stores those (`pack`) and a reader expands them with each rule's
# plan at its revision (`unpack`, `rule_plan`): the same entries, in the same order, byte for
# byte (tests/rules/test_property.py). A rule the pass checked again after a fire is coded on
# the ticket at its turn (`_code_at`). Entries a code cannot describe (fired with errors,
# skipped, a rule of many steps, a failure that words itself: `changed*`, calendars, `matches`
# in a pass that cut a regex short) are stored whole, as before.
#
#   {"packed": 1, "ids": [rule id per position], "revs": [its revision], "codes": [first code],
#    "fired": [positions that fired, described by their code], "full": [[position, entry]],
#    "at": [the position each ticket version starts at], "seen": {field: [[version, value]]}}
#
# A field's value is stored at each version where it may differ (the tags at every version, any
# other field where the pass replaced the ticket or its vars), already bounded (seen_copy); an
# entry shows the last one at or before its rule's version.

PACKED = 1
_FULL_CODE = object()
_REGEX: Any = "regex"


def _compact(plan: RecordPlan, i: int, code: int) -> Any:
    """Whether rule i's entry for `first` code `code`, when it did not fire, is described by the
    code (a failing step that is a plain leaf or an `any` group): True, False, or _REGEX (a
    `matches` step: described by the code unless a regex was cut short in the pass, when its
    failure carries a note)."""
    k = code % FIRST_BASE - 1
    if k < 0 or i in plan.deep:
        return False
    kind = plan.steps[i][k][0]
    return _REGEX if kind == REGEX else kind != OWN


def _compact_kept(plan: RecordPlan, table: list[dict[int, Any]], i: int, code: int) -> Any:
    """_compact's answer for rule i and `code`, kept in `table` (plan.packing's) for the next
    event, CODES_PER_RULE codes a rule at most."""
    c = table[i].get(code)
    if c is None:
        c = _compact(plan, i, code)
        if len(table[i]) < CODES_PER_RULE:
            table[i][code] = c
    return c


def pack(ev: Evaluation, revisions: dict[str, Any]) -> dict[str, Any] | None:
    """The packed form of `entries(ev)` with each rule's revision (above); None when a rule of
    the bucket has no id (it could not be found again: the caller stores the entries)."""
    bucket = ev._bucket
    if bucket is None:
        return None
    plan: RecordPlan = bucket.record
    if len(plan.ids) != len(plan.heads):
        return None
    walk = _Walk(ev, bucket)
    n, ks = walk.n, walk.ks
    table, revs = plan.packing(revisions)
    got: list[Any] = list(map(_GET, table[:n], ks[:n]))
    fired_at, full_at = [], []
    fired, skipped, again, deep = ev._fired, ev._skipped, ev._rechecked, plan.deep
    views: dict[int, tuple[State, Any]] = {}
    for i in walk.special:
        if i >= n:
            continue
        firing = fired.get(i)
        if i in skipped or i in deep or (firing is not None and firing.errors):
            got[i] = _FULL_CODE
            continue
        if i in again:   # checked again at its turn: described by its code there
            ks[i] = code = _code_at(ev, walk, views, i)
            if firing is None:
                got[i] = _compact_kept(plan, table, i, code)
                continue
        fired_at.append(i)
        got[i] = True
    cut = ev._first.budget.cut   # (after `first` and the codes at turn: they may spend the budget too)
    if None in got:
        for i in [i for i, c in enumerate(got) if c is None]:
            got[i] = _compact_kept(plan, table, i, ks[i])
    if False in got or _FULL_CODE in got or (cut and _REGEX in got):
        full_at = [i for i, c in enumerate(got) if c is not True and (c is not _REGEX or cut)]
    full = []
    for i in full_at:
        entry = walk.slow(ev, i) or walk.at_turn(ev, i)
        entry["revision"] = revisions.get(str(entry["id"]))
        full.append([i, entry])
    fired_at.sort()
    timeline = ev._timeline
    described = set(full_at).union(fired_at)
    coded = [i for i in range(n) if i not in described] if described else range(n)
    return {"packed": PACKED, "ids": plan.ids if n == len(plan.ids) else plan.ids[:n],
            "revs": revs if n == len(revs) else revs[:n], "codes": ks if n == len(ks) else ks[:n],
            "fired": fired_at, "full": full, "at": [t[0] for t in timeline],
            "seen": _seen_table(ev, walk, coded)}


def _code_at(ev: Evaluation, walk: _Walk, views: dict[int, tuple[State, Any]], i: int) -> int:
    """Rule i's `first` code on the ticket at its turn (the pass checked it again there): its
    explainer's answer + 1 and the held branch of each `any` step before it, as Generated.first
    codes them. `views` keeps each version's State and slots."""
    step = walk.vpos[i]
    view = views.get(step)
    if view is None:
        state = _state(ev, walk.states, step)
        view = views[step] = (state, _slots(walk.bucket, state))
    s, v = view
    k: int = walk.bucket.explainers[i](v, s)
    code = k + 1
    for at, ypred, scale, _, _, _ in walk.plan.groups[i]:
        if 0 <= k <= at:
            break
        b = ypred(v, s)
        if b >= 0:
            code += scale * (b + 1)
    return code


def _seen_table(ev: Evaluation, walk: _Walk, coded: Iterable[int]) -> dict[str, Any]:
    """Each field the entries of positions `coded` (described by their code, not fired) show,
    bounded (seen_copy), at each version one of them reads it: what `entries` reads for a rule
    at its version (the tags at vpos, the others at bpos; _Versions). `values`: the other fields
    (`fields`: those an entry reads, in the plan's order) at version 0, then at each later base
    version an entry reads, the fields read there whose object changed since, as [number in
    `fields`, value] pairs; `tags`: [version, value] at the versions read where
    they changed, or, with `tag_list`, [version, length of tag_list].

    Only what is read: every field at every base version made it fields x versions, and a rule
    set can have 20,000 fields (one rule of that many leaves) and 1,000 versions (1,000 rules
    that set a field and fire): 3 s a pack, against a 4 ms pass."""
    plan = walk.plan
    timeline, event = ev._timeline, ev._first.event
    appends = _appends_only(timeline)
    ks, steps, tags_n = walk.ks, plan.steps, plan.tags
    wanted: dict[int, set[int]] = {}   # base version -> numbers (in `fields`) of the fields read there
    tag_reads: set[int] = set()        # versions the tags are read at
    bpos = None if appends else walk.bpos
    for i in coded:
        kind, _, _, _, _, fn, _ = steps[i][ks[i] % FIRST_BASE - 1]
        if kind > COPY_VALUE and kind != REGEX:
            continue
        if fn == tags_n:
            tag_reads.add(walk.vpos[i] if len(timeline) > 1 else 0)
            continue
        wanted.setdefault(0 if bpos is None else bpos[i], set()).add(fn if tags_n < 0 or fn < tags_n else fn - 1)
    reads, names = plan.seen_reads, plan.seen_names
    read = sorted(set().union(*wanted.values())) if wanted else []
    number = {j: m for m, j in enumerate(read)}   # (the table names only the fields read)
    _, ticket, vars, _ = timeline[0]
    last: dict[int, Any] = {j: reads[j](ticket, event, vars) for j in read}
    values: list[list[Any]] = [[0, [seen_copy(last[j]) for j in read]]]
    for b in sorted(wanted):
        if b == 0:
            continue
        _, ticket, vars, _ = timeline[b]
        changed = []
        for j in sorted(wanted[b]):
            x = reads[j](ticket, event, vars)
            if x is not last[j]:
                changed.append([number[j], seen_copy(x)])
                last[j] = x
        if changed:
            values.append([b, changed])
    out: dict[str, Any] = {"fields": names if len(read) == len(names) else [names[j] for j in read],
                           "values": values}
    if tags_n < 0:
        return out
    field = plan.fields[tags_n]
    if len(timeline) > 1 and appends:
        prefix = _tag_prefix(field, timeline, event)
        if prefix is not None:
            out["tag_list"], out["tags"] = prefix
            return out
    versions = []
    last_tags, last_len = _MISS, None
    for step in sorted(tag_reads):
        _, ticket, vars, length = timeline[step]
        raw = field.read(ticket, event, vars)
        cut = length if length is not None and raw is ticket.get("tags") else None
        if raw is not last_tags or cut != last_len:
            versions.append([step, seen_copy(raw if cut is None else raw[:cut])])
            last_tags, last_len = raw, cut
    out["tags"] = versions
    return out


def _tag_prefix(field: Any, timeline: Any, event: dict[str, Any]) -> tuple[list[Any], list[list[Any]]] | None:
    """On a pass whose fires only appended tags: the tags list the pass appended to and the length
    of it at each version (version 0: the ticket's own tags, its first items), when every one of
    those is its own seen_copy (the whole list's JSON within SEEN_MAX_BYTES); else None."""
    _, ticket0, vars0, _ = timeline[0]
    _, ticket1, vars1, _ = timeline[-1]
    first, last = field.read(ticket0, event, vars0), field.read(ticket1, event, vars1)
    if type(first) is not list or last is not ticket1.get("tags") or type(last) is not list:
        return None
    lengths = [[0, len(first)], *([step, t[3]] for step, t in enumerate(timeline) if step)]
    full = last[:timeline[-1][3]]   # (the lengths only grow)
    if full[:len(first)] != first or len(dumps_any(full)) > SEEN_MAX_BYTES:
        return None
    return full, lengths


def unpack(packed: dict[str, Any], plan_at: Any) -> list[dict[str, Any]]:
    """The entries of a packed record. `plan_at(position)` gives (the RecordPlan describing the
    rule there, its index in it), or None when the rule's revision is not known: its entry then
    says so in `notes` (`failed` without the condition)."""
    ids, revs, codes, at = packed["ids"], packed["revs"], packed["codes"], packed["at"]
    if not (type(ids) is list and type(revs) is list and type(codes) is list
            and len(ids) == len(revs) == len(codes) and type(at) is list and at):
        raise ValueError("a packed record whose lists disagree")
    fired = set(packed["fired"])
    full = {int(i): e for i, e in packed["full"]}
    look = _SeenLookup(packed["seen"])
    out: list[dict[str, Any]] = []
    for i, rid in enumerate(ids):
        whole = full.get(i)
        if type(whole) is dict:
            out.append(whole)
            continue
        found = plan_at(i)
        entry = None if found is None else _unpacked(found, rid, i in fired, codes[i], look, bisect_right(at, i) - 1)
        if entry is None:
            why = (f"revision {revs[i]} of rule {rid} is not stored" if found is None else
                   f"the stored entry of rule {rid} does not fit its revision {revs[i]}")
            entry = {"id": rid, "name": None, "matched": i in fired, "failed": None,
                     "notes": [f"{why}: its entry cannot be shown"]}
        entry["revision"] = revs[i]
        out.append(entry)
    return out


def _unpacked(found: tuple[RecordPlan, int], rid: Any, fired: bool, code: Any, look: _SeenLookup,
              version: int) -> dict[str, Any] | None:
    """One packed entry expanded with the plan of its rule's revision, or None when the code
    does not fit that plan: a step it does not have, one `pack` never codes (a failure that
    words itself, a rule of more than FIRST_INLINE steps), a field the record holds no value of.
    Only a revision that is not the rule the record was made with (a stored revision changed
    by hand, or an engine that numbers steps another way) does that; it reads as a note, not a
    wrong entry or a failed read."""
    plan, j = found
    if type(code) is not int or j in plan.deep or not 0 <= j < len(plan.steps):
        return None
    steps, groups = plan.steps[j], plan.groups[j]
    # a code is the failing step + 1 (0: none) in its low digit, the held branch of each `any`
    # step in the digits above, each of radix (children + 1) (rules/codegen.py radix_of)
    if not 0 <= code < (groups[-1][2] * groups[-1][3] if groups else FIRST_BASE) or (fired and code % FIRST_BASE):
        return None
    try:
        entry: dict[str, Any]
        if fired:
            entry = {"id": rid, "name": plan.heads[j][1], "matched": True, "failed": None}
            held = _decoded(groups, -1, code) if groups else None
        else:
            k = code % FIRST_BASE - 1
            if not 0 <= k < len(steps):
                return None
            kind, path, fname, op, value, _fn, _node = steps[k]
            if kind == ANY_GROUP:
                failed: dict[str, Any] = {"path": path, "field": None, "op": "any", "value": None, "seen": None}
            elif kind == OWN:
                return None
            else:
                got = look.at(fname, version)
                failed = {"path": path, "field": fname, "op": op, "value": json_copy(value),
                          "seen": json_copy(got)}
            entry = {"id": rid, "name": plan.heads[j][1], "matched": False, "failed": failed}
            held = _decoded(groups, k, code) if groups and groups[0][0] < k else None
    except (LookupError, TypeError, ValueError, ZeroDivisionError):   # (the stored table, short)
        return None
    if held:
        entry["any_held"] = held
    return entry


class _SeenLookup:
    """A packed record's `seen` table read back: a field's value at a version (_seen_table)."""

    def __init__(self, seen: dict[str, Any]) -> None:
        self.number = {name: j for j, name in enumerate(seen["fields"])}
        values = seen["values"]
        self.bases = [b for b, _ in values]
        self.first = values[0][1]
        self.later = [dict((j, v) for j, v in changed) for _, changed in values[1:]]
        tags = seen.get("tags") or []
        self.tag_steps = [step for step, _ in tags]
        self.tags = [v for _, v in tags]
        self.tag_list = seen.get("tag_list")

    def at(self, name: str, version: int) -> Any:
        if name == "tags" and name not in self.number:
            got = self.tags[max(0, bisect_right(self.tag_steps, version) - 1)]
            return got if self.tag_list is None else self.tag_list[:got]
        j = self.number[name]
        for b in range(bisect_right(self.bases, version) - 1, 0, -1):
            later = self.later[b - 1]
            if j in later:
                return later[j]
        return self.first[j]


class _AnyCalendar(dict):  # type: ignore[type-arg]
    """Every calendar name resolves (to one placeholder): a rule read back for its plan may name
    a calendar that is gone since, and a step that names one is stored whole anyway."""

    placeholder: Any = None

    def get(self, key: Any, default: Any = None) -> Any:
        if _AnyCalendar.placeholder is None:
            from .calendar import Calendar
            _AnyCalendar.placeholder = Calendar.from_spec(
                {"timezone": "UTC", "week": {"mon": [["09:00", "17:00"]]}}, "calendar")
        return _AnyCalendar.placeholder

    def __bool__(self) -> bool:   # (empty, yet it knows every name: `calendars or {}` keeps it)
        return True


def rule_plan(raw: dict[str, Any]) -> RecordPlan:
    """The RecordPlan of one rule (as stored at a revision): what `unpack` needs to describe its
    entries, the same steps and codes as its bucket's plan had (rules/codegen.py step_nodes,
    radix_of). Raises RuleError for a rule that does not compile.

    Made from the rule's steps alone, without compiling the rest: a reader makes one per rule
    revision its runs name, and the whole rule cost 3-6 s (1,000 regexes of 1,000 characters,
    re's parser is Python; on the event loop, up to 32 a read) or 0.15-0.3 s (an `any` or `all`
    of 20,000 leaves) and kept 1.7-5 MB per plan (PLANS_KEPT of them). So: an `any` step keeps only its children's count and paths; a leaf step
    is compiled alone, a `matches` leaf with a stand-in pattern (its entries show its own);
    a rule of more than FIRST_INLINE steps (stored whole too) is not read further."""
    from .codegen import FIRST_INLINE, radix_of
    from .compile import compile_rule, rule_label
    from .conditions import _leaf

    head = compile_rule({**raw, "conditions": None, "actions": _STAND_IN_ACTIONS}, 0)
    label = rule_label(raw, 0)
    found: list[tuple[str, Any]] = []
    conditions = raw.get("conditions")
    if conditions is not None and conditions != {}:
        _raw_steps(conditions, "conditions", found, FIRST_INLINE + 1, label)
    if len(found) > FIRST_INLINE:
        return RecordPlan([head], [[]], [()], [[]], frozenset({0}))
    steps: list[Node] = []
    patterns: dict[int, Any] = {}   # step number -> a `matches` leaf's own pattern
    problems: list[tuple[str, str]] = []
    for path, node in found:
        if "any" in node:
            steps.append(Group(path, "any", cast(list[Node], _Kids(path, len(node["any"]))), _never))
            continue
        if node.get("op") == "matches":   # (compiled with a stand-in: re's parser is Python)
            patterns[len(steps)] = node.get("value")
            node = {**node, "value": "x"}
        if "calendar" in node:   # (any name resolves; a business_hours object is compiled)
            node = {**node, "calendar": "x"}
        leaf = _leaf(node, problems, path, _AnyCalendar())
        if leaf is None or problems:
            where, why = problems[0] if problems else (path, "not a condition")
            raise RuleError(label, where, why)
        steps.append(leaf)
    finders = tuple((k, None) for k, node in enumerate(steps) if isinstance(node, Group) and node.children)
    plan = RecordPlan([head], [steps], [finders], [radix_of(steps)], frozenset())
    # kept by readers for many rules: without the compiled nodes (predicates, regexes) and fields
    plan.steps = [tuple((*step[:4], patterns[k] if k in patterns else step[4], step[5], None)
                        for k, step in enumerate(plan.steps[0]))]
    plan.fields, plan.seen_reads = [], []
    # the most an entry's `failed.value` adds (a condition's value is bounded by the body only)
    plan.value_bytes = max((len(dumps_any(step[4])) for step in plan.steps[0] if step[4] is not None), default=0)
    return plan


_STAND_IN_ACTIONS = [{"type": "add_tags", "tags": ["x"]}]


def _never(s: State) -> bool:
    return False


class _Paths:
    """The paths of an `any` group's n children ("<group>.any[b]", conditions.parse's), made
    when asked: a plan kept for an `any` of 20,000 leaves held 1.5 MB of them."""

    __slots__ = ("group", "n")

    def __init__(self, group: str, n: int) -> None:
        self.group, self.n = group, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, b: int) -> str:
        if not 0 <= b < self.n:
            raise IndexError(b)
        return f"{self.group}.any[{b}]"


class _Kids:
    """An `any` step's children as rule_plan's Group holds them: only how many (radix_of,
    RecordPlan read their number and, through paths(), their paths)."""

    __slots__ = ("group", "n")

    def __init__(self, group: str, n: int) -> None:
        self.group, self.n = group, n

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def paths(self) -> _Paths:
        return _Paths(self.group, self.n)


def _raw_steps(node: Any, path: str, out: list[tuple[str, Any]], most: int, label: str) -> None:
    """The steps of a stored condition tree as (path, node), in written order, as
    codegen.step_nodes numbers them (every `all` flattened); stops at `most` steps."""
    if type(node) is not dict:
        raise RuleError(label, path, "a condition must be an object")
    if "all" in node and "any" not in node and len(node) == 1:
        items = node["all"]
        if type(items) is not list:
            raise RuleError(label, f"{path}.all", "must be a list of conditions")
        for i, child in enumerate(items):
            _raw_steps(child, f"{path}.all[{i}]", out, most, label)
            if len(out) >= most:
                return
        return
    if "any" in node and (len(node) != 1 or type(node["any"]) is not list):
        raise RuleError(label, path, "an `any` group is a list of conditions alone")
    out.append((path, node))
