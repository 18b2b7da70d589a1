"""The packed run record: what the worker stores per event, expanded when it is read.

Why: the entries (rules/record.py) are one `{id, name, matched, failed, ...}` per rule listening to the
event's type, ~25 KB of JSON an event at 1,000 rules and ~1 MB at 10,000, built and stored for
every event though most are never read (bench/RESULTS.md: the record cost 3.5-6.5x the pass).
What decides an entry is small: the rule (id and revision: its conditions never change under a
revision), its `first` code (the failing step and held branches) and the values its fields had
at its turn. So the worker stores those (`pack`) and a reader expands them with each rule's
plan at its revision (`unpack`, `rule_plan`): the same entries, in the same order, byte for
byte (tests/rules/test_property.py). A rule the pass checked again after a fire is coded on
the ticket at its turn (`_code_at`). Entries a code cannot describe (fired with errors,
skipped, a rule of many steps, a failure that words itself: `changed*`, calendars, `matches`
in a pass that cut a regex short) are stored whole, as before.

  {"packed": 1, "ids": [rule id per position], "revs": [its revision], "codes": [first code],
   "fired": [positions that fired, described by their code], "full": [[position, entry]],
   "at": [the position each ticket version starts at], "seen": {field: [[version, value]]}}

A field's value is stored at each version where it may differ (the tags at every version, any
other field where the pass replaced the ticket or its vars), already bounded (seen_copy); an
entry shows the last one at or before its rule's version.
"""
from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

from .codegen import FIRST_BASE
from .jsondata import SEEN_MAX_BYTES, SEEN_MAX_CHARS, dumps_any, seen_copy
from .ops import State
from .record import ANY_GROUP, OWN, REGEX, RecordPlan, Walk, _first_slots, slots_of, state_at, turn_code
from .unpack import unpack as unpack   # (the reading side, rules/unpack.py: imported from here too)

if TYPE_CHECKING:
    from .pass_view import Pass as Evaluation

_MISS = object()
_ITEM: Any = dict.__getitem__
_AT = itemgetter(0)
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


PACKED = 1
# What `pack` knows of each rule's entry (per rule and `first` code, kept in the plan's table:
# RecordPlan.packing): an int n >= 0: described by its code, showing field n (RecordPlan.fields)
# as `seen`; NO_READ: described, showing no field (an `any` group failed); WHOLE: stored whole (a
# failure that words itself, a rule that held, a rule of many steps); (in pack's list only, FIRED
# and STORED: a rule that fired, one the pass's facts make stored whole); REGEX_READ - n: a `matches`
# step on field n, described by its code unless a regex was cut short in the pass (its failure
# then carries a note). One int, so the table's answers for a whole bucket are gathered, and the
# fields the entries show found, in a few C-level list and set operations rather than a loop of
# Python per rule (that loop was about as costly as the pass itself at 1,000 rules).
NO_READ, WHOLE, FIRED, STORED, REGEX_READ = -1, -2, -3, -4, -5


def _described(steps: Any, deep: bool, code: int) -> int:
    """What a rule's entry for `first` code `code` needs when it did not fire (above): `steps`
    its steps in the plan (RecordPlan.steps), `deep` whether it is one of the plan's `deep`."""
    k = code % FIRST_BASE - 1
    if k < 0 or deep:
        return WHOLE
    step = steps[k]
    kind, fn = step[0], cast(int, step[5])
    if kind == OWN:
        return WHOLE
    if kind == ANY_GROUP:
        return NO_READ
    return REGEX_READ - fn if kind == REGEX else fn


class Described(dict):  # type: ignore[type-arg]
    """One rule's _described answers by `first` code, kept for the next event (CODES_PER_RULE
    codes at most) and worked out on a miss, so pack reads a bucket's answers with one C-level
    map (dict.__getitem__ calls __missing__ on a subclass). It keeps the rule's steps, not the
    plan, which keeps it (RecordPlan.packing): plan and table would be a reference cycle, which
    a worker's frozen compiles never free (server/gcpolicy.py)."""

    __slots__ = ("steps", "deep")

    def __init__(self, plan: RecordPlan, i: int) -> None:
        super().__init__()
        self.steps, self.deep = plan.steps[i], i in plan.deep

    def __missing__(self, code: int) -> int:
        c = _described(self.steps, self.deep, code)
        if len(self) < CODES_PER_RULE:
            self[code] = c
        return c


def _shown(c: int, cut: bool) -> int:
    """The field an entry described by its code shows (`got` value c), or -1 (none, or not
    described by its code)."""
    if c >= 0:
        return c
    return -1 if cut or c > REGEX_READ else REGEX_READ - c


def pack(ev: Evaluation, revisions: dict[str, Any]) -> dict[str, Any] | None:
    """The packed form of `entries(ev)` with each rule's revision (above); None when a rule of
    the bucket has no id (it could not be found again: the caller stores the entries)."""
    bucket = ev._bucket
    if bucket is None:
        return None
    plan: RecordPlan = bucket.record
    if len(plan.ids) != len(plan.heads):
        return None
    if plan.quick and ev._appended:
        quick = _pack_quick(ev, bucket, plan, revisions)
        if quick is not None:
            return quick
    walk = Walk(ev, bucket)
    n, ks = walk.n, walk.ks
    table, revs = plan.packing(revisions, Described)
    got: list[int] = list(map(_ITEM, table[:n], ks[:n]))
    fired_at, full_at = [], []
    fired, skipped, again, deep = ev._fired, ev._skipped, ev._rechecked, plan.deep
    views: dict[int, tuple[State, Any]] = {}
    for i in walk.special:
        if i >= n:
            continue
        firing = fired.get(i)
        if i in skipped or i in deep or (firing is not None and firing.errors):
            got[i] = STORED
            continue
        if i in again:   # checked again at its turn: described by its code there
            ks[i] = code = _code_at(ev, walk, views, i)
            if firing is None:
                got[i] = table[i][code]
                continue
        fired_at.append(i)
        got[i] = FIRED
    cut = bool(ev._first.budget.cut)   # (after `first` and the codes at turn: they may spend the budget too)
    if cut or WHOLE in got or STORED in got:
        full_at = [i for i, c in enumerate(got) if c == STORED or c == WHOLE or (cut and c <= REGEX_READ)]
    full = []
    for i in full_at:
        entry = walk.slow(ev, i) or walk.at_turn(ev, i)
        entry["revision"] = revisions.get(str(entry["id"]))
        full.append([i, entry])
    fired_at.sort()
    timeline = ev._timeline
    return {"packed": PACKED, "ids": plan.ids if n == len(plan.ids) else plan.ids[:n],
            "revs": revs if n == len(revs) else revs[:n], "codes": ks if n == len(ks) else ks[:n],
            "fired": fired_at, "full": full, "at": [t[0] for t in timeline],
            "seen": _seen_table(ev, walk, got, cut)}


def _pack_quick(ev: Evaluation, bucket: Any, plan: RecordPlan, revisions: dict[str, Any]) -> dict[str, Any] | None:
    """`pack`'s answer (the same entries read back) for the common pass: fires (if any) that only
    appended tags, none erred, nothing skipped or checked again, no regex cut short, in a quick
    bucket (RecordPlan.quick). Each entry is then its code on the event's ticket, or `fired`, and
    every field but the tags is the same at every turn: each is stored once, at version 0, and
    no rule is asked what it shows (~60% of pack). None for any other pass (the general way)."""
    fired, skipped = ev._fired, ev._skipped
    if skipped or ev._rechecked or ev._first.budget.cut:
        return None
    for firing in fired.values():
        if firing.errors:
            return None
    timeline, event = ev._timeline, ev._first.event
    _, ticket, vars, _ = timeline[0]
    v, at = ev._slots, plan.seen_at
    # each value bounded (seen_copy), the common str and number without a call
    raws = (map(v.__getitem__, at) if at is not None and type(v) is list else
            [read(ticket, event, vars) for read in plan.seen_reads])
    seen: dict[str, Any] = {"fields": plan.seen_names, "values": [[0, [
        x if ((tx := type(x)) is str and len(x) <= SEEN_MAX_CHARS) or tx is int or tx is float or x is None
        else seen_copy(x) for x in raws]]]}
    if plan.tags >= 0:
        tags = plan.fields[plan.tags].read(ticket, event, vars)
        if len(timeline) > 1:
            # (_tag_prefix's answer, inline: every fire appended to the one list the pass made of
            # these tags, rules/passes.py, so the last version's list holds every version's)
            own, length = timeline[-1][1].get("tags"), timeline[-1][3]
            if type(tags) is not list or type(own) is not list or length is None:
                return None
            full = own[:length]
            if full[:len(tags)] != tags or len(dumps_any(full)) > SEEN_MAX_BYTES:
                return None   # (a long tags list: stored per version read, the general way)
            lengths = [[k, t[3]] for k, t in enumerate(timeline)]
            lengths[0][1] = len(tags)
            seen["tag_list"], seen["tags"] = full, lengths
        else:
            seen["tags"] = [[0, seen_copy(tags)]]
    codes = ev._codes
    if codes is None:
        codes = bucket.first(_first_slots(ev, bucket), ev._first, [])
    n = len(plan.heads) if ev._stopped_at is None else ev._stopped_at + 1
    _, revs = plan.packing(revisions, Described)
    return {"packed": PACKED, "ids": plan.ids if n == len(plan.ids) else plan.ids[:n],
            "revs": revs if n == len(revs) else revs[:n], "codes": codes if n == len(codes) else codes[:n],
            # (fired in position order: with nothing checked again the pass fired in that order)
            "fired": list(fired), "full": [], "at": list(map(_AT, timeline)), "seen": seen}


def _code_at(ev: Evaluation, walk: Walk, views: dict[int, tuple[State, Any]], i: int) -> int:
    """Rule i's `first` code on the ticket at its turn (the pass checked it again there): the
    pass's own (a pass for the record codes what it checks again, on the State and slots it
    checked them on: rules/passes.py), else worked out here on the version at its turn (`views`
    keeps each version's State and slots)."""
    at_turn = ev._at_turn
    if at_turn is not None:
        code = at_turn.get(i)
        if code is not None:
            return code
    step = walk.vpos[i]
    view = views.get(step)
    if view is None:
        state = state_at(ev, walk.states, step)
        view = views[step] = (state, slots_of(walk.bucket, state))
    s, v = view
    return turn_code(walk.plan.groups[i], walk.bucket.explainers[i](v, s), v, s)


def _seen_table(ev: Evaluation, walk: Walk, got: list[int], cut: bool) -> dict[str, Any]:
    """Each field the entries described by their code (`got`, pack's) show, bounded
    (seen_copy), at each version one of them reads it: what `entries` reads for a rule at its
    version (the tags at vpos, the others at bpos; _Versions). `values`: the other fields
    (`fields`: those an entry reads, in the plan's order) at version 0, then at each later base
    version an entry reads, the fields read there whose object changed since, as [number in
    `fields`, value] pairs; `tags`: [version, value] at the versions read where
    they changed, or, with `tag_list`, [version, length of tag_list].

    Only what is read: every field at every base version made it fields x versions, and a rule
    set can have 20,000 fields (one rule of that many leaves) and 1,000 versions (1,000 rules
    that set a field and fire): 3 s a pack, against a 4 ms pass. On a pass whose fires only
    appended tags every field but the tags is read at version 0, so the fields read are the
    set of `got`'s answers, found without a loop per rule."""
    plan = walk.plan
    timeline, event = ev._timeline, ev._first.event
    appends = _appends_only(timeline)
    tags_n = plan.tags
    wanted: dict[int, set[int]] = {}   # base version -> numbers (in `fields`) of the fields read there
    tag_reads: set[int] | None = None  # versions the tags are read at (None: not worked out yet)
    if appends:
        shown = {_shown(c, cut) for c in set(got)}
        shown.discard(-1)
        tags_read = tags_n in shown
        shown.discard(tags_n)
        if shown:
            wanted[0] = {fn if tags_n < 0 or fn < tags_n else fn - 1 for fn in shown}
        if not tags_read:
            tag_reads = set()
    else:
        # by run of positions sharing a ticket version (Walk._positions' runs), each run's fields
        # a set made in C: a loop of Python per rule was most of the record's cost on passes
        # whose fires set fields (100 rules of ~10 fires: bench/RESULTS.md, session 18)
        tag_reads = set()
        shown_of = {c: _shown(c, cut) for c in set(got)}
        fns = list(map(shown_of.__getitem__, got))
        total, base = len(walk.bucket.rules), 0
        for step in range(len(timeline)):
            start = timeline[step][0]
            if start >= len(fns):
                break
            end = timeline[step + 1][0] if step + 1 < len(timeline) else total
            if step and not (timeline[step][1] is timeline[step - 1][1]
                             and timeline[step][2] is timeline[step - 1][2]):
                base = step
            seg = set(fns[start:end])
            seg.discard(-1)
            if tags_n in seg:
                tag_reads.add(step)
                seg.discard(tags_n)
            if seg:
                wanted.setdefault(base, set()).update(
                    fn if tags_n < 0 or fn < tags_n else fn - 1 for fn in seg)
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
    if tag_reads is None:   # (a pass that only appended, whose tags are not one prefix list)
        tag_reads = {walk.vpos[i] if len(timeline) > 1 else 0
                     for i, c in enumerate(got) if _shown(c, cut) == tags_n}
    versions = []
    last_tags, last_len = _MISS, None
    for step in sorted(tag_reads):
        _, ticket, vars, length = timeline[step]
        raw = field.read(ticket, event, vars)
        cut_at = length if length is not None and raw is ticket.get("tags") else None
        if raw is not last_tags or cut_at != last_len:
            versions.append([step, seen_copy(raw if cut_at is None else raw[:cut_at])])
            last_tags, last_len = raw, cut_at
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
