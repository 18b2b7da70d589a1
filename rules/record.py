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
- what the worker stores is their JSON (`encoded`): per rule and `first` code, the bytes around
  the entry's `seen` are made once per rule set and kept, so an event pays for its `seen` values
  (serialized once per field and ticket version) and a join, not for a dict per rule and a
  serializer walking it;
- the value `seen` is read at the rule's turn and copied once per field and ticket version (the
  entries of one record may share it, as explain's do): a pass whose fires only appended tags
  left one ticket dict whose tags list grew, so only the tags are copied again per version.

`entries(ev)` equals `[{id, name, matched, failed[, errors][, any_held]} for each item of
ev.explain]` (tests/rules/test_property.py checks that on random rule sets).
"""
from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any, cast

from .codegen import FIRST_BASE
from .conditions import Group, Leaf, Node
from .jsondata import dumps_any, json_copy, seen_copy, seen_json
from .ops import State

if TYPE_CHECKING:
    from .pass_view import Pass as Evaluation

_OWN_FAILURE = frozenset({"changed", "changed_from", "changed_to", "matches"})
PLAIN, COPY_LIST, COPY_VALUE, OWN, ANY_GROUP = 0, 1, 2, 3, 4
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
        # encoded's bytes per rule and `first` code, for one revisions map (the worker's comes
        # with the rule set from its cache, so it is the same object for every event)
        self._chunks: tuple[Any, list[dict[int, tuple[bytes, bytes, int]]]] = (_MISS, [])
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


    def chunks_for(self, revisions: dict[str, Any] | None) -> list[dict[int, tuple[bytes, bytes, int]]]:
        """The per-rule byte chunks for this revisions map (a new map starts afresh). Shared by
        threads: a swap replaces the pair whole, and a chunk made twice is the same bytes."""
        ident = revisions if revisions else (_EMPTY if revisions is not None else None)
        revs, chunks = self._chunks
        if revs is not ident:
            chunks = [{} for _ in self.heads]
            self._chunks = (ident, chunks)
        return chunks


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

    __slots__ = ("bucket", "plan", "n", "ks", "vpos", "bpos", "special", "states")

    def __init__(self, ev: Evaluation, bucket: Any) -> None:
        self.bucket, self.plan = bucket, bucket.record
        rules, fired, skipped, stopped = bucket.rules, ev._fired, ev._skipped, ev._stopped_at
        timeline = ev._timeline
        n = self.n = len(rules) if stopped is None else stopped + 1
        assert bucket.first is not None   # every bucket with rules has its generated `first`
        self.ks: list[int] = bucket.first(_first_slots(ev, bucket), ev._first)
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
        self.vpos, self.bpos = vpos, bpos
        again = set(ev._rechecked) - fired.keys() - skipped if ev._rechecked else set()
        self.special = fired.keys() | skipped | again | self.plan.deep
        self.states: dict[int, State] = {0: ev._first}

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


def _json(value: Any) -> bytes:
    """orjson's bytes of a value; odd data (never from the API: a set, a non-str key) as the
    closest JSON rather than an exception in the worker."""
    return dumps_any(value)


Chunk = tuple[bytes, bytes, int]
_SLOW: Chunk = (b"", b"", -2)
_PLACE: Chunk = (b"", b"", -1)   # a slow-way entry's place, filled in after
_GET: Any = dict.get
# the `first` codes whose bytes one rule keeps (a code names the failing step and the branch of
# each `any` group before it: a rule of many groups could see many; the rest are made per use)
# (~300 bytes each: at 10,000 rules, 8 codes a rule is ~24 MB a rule set, the most kept)
CHUNKS_PER_RULE = 8


def _chunk(plan: RecordPlan, i: int, code: int, revisions: dict[str, Any] | None) -> Chunk:
    """Rule i's entry for `first` code `code` on the fast way, and a comma: (before, after,
    field number), the entry being before + the JSON of that field at the rule's turn + after;
    field number -1 when it shows no `seen` (an `any` group failed: all of it is `before`);
    _SLOW for the slow way (it holds, or a leaf whose `failed` takes its own code)."""
    k = code % FIRST_BASE - 1
    if k < 0:
        return _SLOW
    kind, path, fname, op, value, fn, _node = plan.steps[i][k]
    if kind == OWN:
        return _SLOW
    rid, name = plan.heads[i]
    g = plan.groups[i]
    held = _decoded(g, k, code) if g and g[0][0] < k else None
    tail = ((b',"any_held":' + _json(held) if held else b"")
            + (b',"revision":' + _json(revisions.get(str(rid))) if revisions is not None else b"") + b"},")
    head = b'{"id":' + _json(rid) + b',"name":' + _json(name) + b',"matched":false,"failed":'
    if kind == ANY_GROUP:
        return (head + b'{"path":' + _json(path) + b',"field":null,"op":"any","value":null,"seen":null}'
                + tail, b"", -1)
    described = _json({"path": path, "field": fname, "op": op, "value": value})
    return head + described[:-1] + b',"seen":', b"}" + tail, fn


def _fired_chunk(plan: RecordPlan, i: int, code: int, revisions: dict[str, Any] | None) -> Chunk:
    """Rule i's entry, and a comma, when it fired (with no errors) on the event's ticket with
    `first` code `code`."""
    rid, name = plan.heads[i]
    held = _decoded(plan.groups[i], -1, code) if plan.groups[i] else None
    entry: dict[str, Any] = {"id": rid, "name": name, "matched": True, "failed": None}
    if held:
        entry["any_held"] = held
    if revisions is not None:
        entry["revision"] = revisions.get(str(rid))
    return _json(entry) + b",", b"", -1


class _Seen(dict):  # type: ignore[type-arg]
    """The JSON of each field's `seen` (by field number) on a pass whose fires only appended
    tags: every field but the tags as on the event's ticket (every version shares them), the
    tags at timeline version `version`. Filled as asked (a hit is a dict lookup, in C)."""

    __slots__ = ("fields", "timeline", "event", "tags", "version")

    def __init__(self, fields: list[Any], timeline: Any, event: dict[str, Any], tags: int) -> None:
        super().__init__({-1: b"", -2: b""})
        self.fields, self.timeline, self.event, self.tags, self.version = fields, timeline, event, tags, 0

    def at(self, version: int) -> None:
        """Ask the tags at this version from now on."""
        if version != self.version:
            self.version = version
            self.pop(self.tags, None)

    def __missing__(self, fn: int) -> bytes:
        if fn == self.tags:   # the list the pass appends to, cut to its length then
            _, ticket, vars, length = self.timeline[self.version]
            raw = self.fields[fn].read(ticket, self.event, vars)
            out = seen_json(raw[:length] if length is not None and raw is ticket.get("tags") else raw)
        else:
            _, ticket, vars, _ = self.timeline[0]
            out = seen_json(self.fields[fn].read(ticket, self.event, vars))
        self[fn] = out
        return out


def _appends_only(timeline: Any) -> bool:
    """Whether every fire of the pass appended to one owned tags list of one ticket dict, with
    no vars: then each field but the tags is the same at every rule's turn."""
    if len(timeline) < 2:
        return True
    t1 = timeline[1][1]
    return all(t[1] is t1 and t[3] is not None and not t[2] for t in timeline[1:])


def encoded(ev: Evaluation, revisions: dict[str, Any] | None = None) -> tuple[bytes, int]:
    """`entries(ev)` as JSON, each entry with `"revision": revisions.get(str(id))` last when
    `revisions` is given (what the worker stores; server/runrecord.py): (the entries joined by
    commas, without the brackets; their number). The same bytes as `orjson.dumps` of those
    dicts, without the dicts: per rule and `first` code the bytes around `seen` are made once
    per rule set (and revisions map) and kept, each field's `seen` is serialized once per
    ticket version, and on a pass whose fires only appended tags (the common one) the per-rule
    work is a few list operations done in C, then one join."""
    bucket = ev._bucket
    if bucket is None:
        return b"", 0
    walk = _Walk(ev, bucket)
    plan: RecordPlan = bucket.record
    n, ks = walk.n, walk.ks
    timeline, event = ev._timeline, ev._first.event
    chunks = plan.chunks_for(revisions)
    got: list[Chunk | None] = list(map(_GET, chunks[:n], ks[:n]))
    slow = []
    fired, again, deep = ev._fired, ev._rechecked, plan.deep
    for i in walk.special:
        if i >= n:
            continue
        firing = fired.get(i)
        if firing is not None and not firing.errors and i not in again and i not in deep:
            # a fire on the event's ticket: its entry is its `first` code's (held branches)
            mine, key = chunks[i], ~ks[i]
            c = mine.get(key)
            if c is None:
                c = _fired_chunk(plan, i, ks[i], revisions)
                if len(mine) < CHUNKS_PER_RULE:
                    mine[key] = c
            got[i] = c
        else:
            got[i] = _PLACE
            slow.append(i)
    if None in got:
        for i in [i for i, c in enumerate(got) if c is None]:
            c = got[i] = _chunk(plan, i, ks[i], revisions)
            mine = chunks[i]
            if len(mine) < CHUNKS_PER_RULE:
                mine[ks[i]] = c
    if _SLOW in got:
        slow += [i for i, c in enumerate(got) if c is _SLOW]
    if not got:
        return b"", 0
    heads_: Any
    heads_, afters, fns = zip(*cast(list[Chunk], got), strict=True)
    fields, tags_n = plan.fields, plan.tags
    seens: Any
    if not _appends_only(timeline):
        seens = _general(ev, walk, fns)
    else:
        seen = _Seen(fields, timeline, event, tags_n)
        if len(timeline) == 1 or tags_n < 0 or tags_n not in fns:
            seens = map(seen.__getitem__, fns)
        else:   # per run of rules between two fires: the tags as they stood then
            seens = []
            for step in range(len(timeline)):
                start = timeline[step][0]
                end = timeline[step + 1][0] if step + 1 < len(timeline) else n
                if start < n:
                    seen.at(step)
                    seens += map(seen.__getitem__, fns[start:min(end, n)])
    befores: Any = heads_
    if slow:
        befores = list(heads_)
        for i in slow:
            entry = walk.slow(ev, i) or walk.at_turn(ev, i)
            if revisions is not None:
                entry["revision"] = revisions.get(str(entry["id"]))
            befores[i] = _json(entry) + b","
    return b"".join(chain.from_iterable(zip(befores, seens, afters, strict=True)))[:-1], n


def _general(ev: Evaluation, walk: _Walk, fns: tuple[int, ...]) -> list[bytes]:
    """encoded's `seen` JSON per position for a pass of any fires: each field read at the
    ticket version of the rule's turn and serialized once per version (a field whose object did
    not change shares its bytes)."""
    plan, vpos, bpos = walk.plan, walk.vpos, walk.bpos
    tags_n = plan.tags
    versions = _Versions(plan, ev, seen_json)
    return [b"" if fn < 0 else versions.get(fn, vpos[i] if fn == tags_n else bpos[i])
            for i, fn in enumerate(fns)]


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
    first = ev._first
    if bucket.read is not None:
        return bucket.read(first.ticket, first.event, first.vars)
    return _slots(bucket, first)
