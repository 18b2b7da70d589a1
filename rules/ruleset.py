"""`compile_rules` and the RuleSet: one ordered pass per event, indexed two ways.

1. By trigger: an event only looks at the rules that listen to its type.
2. By value: each rule whose conditions require `field is V`, `field in [...]` or
   `list-field includes V` (a top-level conjunct) is filed under V for that field; of a rule's
   indexable conjuncts, the one whose values the fewest other rules share is chosen (see
   _Bucket). An event checks the rules filed under the values its ticket has, plus the rules with
   no such conjunct. The index is compiled into the bucket's generated matcher (rules/codegen.py):
   a dict from each folded value to a function checking its rules inline.

A rule that fires and changes the ticket (or vars) can only change the answer of
the later rules that read what it wrote (rules/plan.py, dependencies): those are checked again on
the ticket as it now is; every other rule's answer on the event's ticket stands. The result is
exactly that of checking every rule in order, at a cost that follows the fires' effects rather
than fires x candidates. Explanations are computed only when `.explain` is read, from the ticket
as it stood at each rule's turn.
"""
from __future__ import annotations

import weakref
from bisect import bisect_right
from collections.abc import Callable, Collection
from datetime import datetime
from functools import cached_property
from types import CodeType
from typing import Any

from .actions import Firing, Handler
from .business import compile_calendars
from .calendar import Calendar, CalendarError
from .compile import CompiledRule, compile_rule
from .compile_cache import CompileCache
from .conditions import Leaf, conjuncts, failure, leaves, trace
from .durations import aware
from .errors import RuleError
from .ops import State, flip_time
from .codegen import generate
from .slots import raw_index
from .evaluation import Evaluation
from .passes import run_pass
from .record import RecordPlan
from .plan import (append_plan, dependents, quick_plan, read_keys, scalar_keys, scalar_writes,
                   write_keys)
from .updates import diff

_SLOW_OPS = frozenset({"matches", "older_than_business", "newer_than_business"})

_SCALAR, _LIST = 0, 1
# The most places in the value index one rule is filed under (its key's values, times the second
# key's): a rule filed under a value is checked in that value's generated function, so a rule of
# `subject in [1,000 values]` was written 1,000 times into its bucket's source (22-24 MB of source,
# 8 s of CPython's compile and 2 GB for one 64 KiB rule, tests/server/test_redteam17_compile.py).
# A rule whose keys hold more is checked on every event instead, as a rule with no key is: its
# `in` is one set lookup.
MAX_FILED = 64
# Fields with few distinct values make poor index keys: a rule filed under `status is open` is a
# candidate for most events. Prefer any other conjunct when a rule has one.
_COARSE = frozenset({"status", "priority", "channel", "message.author", "message.channel", "event.type",
                     "event.actor"})


def _index_key(leaf: Leaf) -> tuple[int, list[str]] | None:
    """(mode, values) if `leaf` can file its rule in a value table; any one value must be present."""
    v, ftype = leaf.value, leaf.field.type
    if leaf.field.name == "event.type":
        return None
    if leaf.op == "is" and isinstance(v, str) and ftype in ("text", "any"):
        return _SCALAR, [v]
    if leaf.op == "in" and ftype in ("text", "any") and all(isinstance(x, str) for x in v):
        return _SCALAR, list(v)
    if leaf.op == "includes" and isinstance(v, str) and ftype in ("list", "any"):
        return _LIST, [v]
    if leaf.op == "includes_any" and ftype in ("list", "any") and all(isinstance(x, str) for x in v):
        return _LIST, list(v)
    if leaf.op == "includes_all" and ftype in ("list", "any") and isinstance(v[0], str):
        return _LIST, [v[0]]
    return None


def _share_regexes(rules: list[CompiledRule]) -> None:
    """Let the `matches` conditions of one trigger's rules that search with the same pattern
    (and case) share their answers within a pass (rules/regexes.py, RegexBudget.answers).

    For the whole set at once, setting every matcher's sharing either way: a rule compiled for
    an earlier set (rules/compile_cache.py) brings its matchers as that set left them, and the
    set must search exactly as a set compiled afresh does."""
    same: dict[tuple[str, str, bool], list[Any]] = {}
    found: list[Any] = []
    for rule in rules:
        for leaf in leaves(rule.conditions):
            m = getattr(leaf.pred, "matcher", None)
            if m is not None:
                found.append(m)
                for t in rule.triggers:
                    same.setdefault((t, m.pattern, leaf.case_sensitive), []).append(m)
    shared = {id(m) for group in same.values() if len(group) > 1 for m in group}
    for m in found:
        m.share(id(m) in shared)


class _Bucket:
    """The rules of one trigger, in order, with their value index."""

    def __init__(self, rules: list[CompiledRule], codes: Callable[[str], CodeType] | None = None) -> None:
        self.rules = rules
        self.positions = {rule.label: i for i, rule in enumerate(rules)}
        keyed = [[(leaf, key) for leaf in conjuncts(rule.conditions) if (key := _index_key(leaf))]
                 for rule in rules]
        # How many rules could be filed under each (field, mode, value): a value many rules test
        # (`plan is pro`) is likely common in tickets too, so each rule is filed under the
        # conjunct whose values the fewest other rules share -- statistics, as a query planner
        # keeps them, standing in for the ticket data we do not have at compile time.
        shared: dict[tuple[str, int, str], int] = {}
        for options in keyed:
            for leaf, (mode, values) in options:
                for v in values:
                    k = (leaf.field.name, mode, v.casefold())
                    shared[k] = shared.get(k, 0) + 1

        def score(option: tuple[Leaf, tuple[int, list[str]]]) -> tuple[bool, int]:
            leaf, (mode, values) = option
            return (leaf.field.name in _COARSE, sum(shared[(leaf.field.name, mode, v.casefold())] for v in values))

        # A rule with a second selective conjunct (not a coarse field, its values shared by few
        # rules) is filed under both and is checked only when the ticket has both: `tags
        # includes X` alone admits every rule on tag X; with `contact.groups includes Y` beside
        # it, only those also on group Y. Coarse second keys would make every event walk long
        # lists, so they are left to the rule's own (cheapest-first) check.
        selective = max(8, len(rules) // 50)
        filings: list[Any] = []  # the keys the generated matcher files each rule under
        for i, options in enumerate(keyed):
            # (a key of more values than MAX_FILED is no key: see there)
            ranked = sorted((o for o in options if len(o[1][1]) <= MAX_FILED), key=score)
            if not ranked:
                filings.append(())
                continue
            chosen = ranked[:1] + [o for o in ranked[1:2] if score(o) < (False, selective)
                                   and len(o[1][1]) * len(ranked[0][1][1]) <= MAX_FILED]
            filings.append(tuple((leaf.field, mode, [v.casefold() for v in values])
                                 for leaf, (mode, values) in chosen))
        gen = generate([rule.conditions for rule in rules], filings, codes)
        if gen.namespace is not None:
            # Why: a worker freezes what its compiles made out of the collector's reach
            # (server/gcpolicy.py), and a frozen cycle is never freed; without it, each bucket of
            # a rule set that was replaced would wait for a full collection, which walks every
            # workspace's compiled rules holding the interpreter (1.1 s with 5 at the limits)
            weakref.finalize(self, gen.namespace.clear)
        self.match, self.slots, self.explainers, self.steps = gen.match, gen.slots, gen.explainers, gen.steps
        self.read = gen.read
        self.first, self.branches = gen.first, gen.branches
        self.record = RecordPlan(rules, gen.steps, gen.branches or [() for _ in rules], gen.radix, gen.deep,
                                 raw_index(gen.slots) if gen.read is not None else None)
        self.writes = [tuple(write_keys(rule.actions)) for rule in rules]
        self.plans = [quick_plan(rule.actions) for rule in rules]
        self.appends = [append_plan(p) for p in self.plans]
        self.labels = [rule.label for rule in rules]
        self.deps = dependents([read_keys(rule.conditions) for rule in rules])
        # whether any later rule reads what rule i writes (most broad rules' writes concern none)
        self.scalars = [scalar_writes(rule.actions) for rule in rules]
        last: dict[str, int] = {}  # field -> the last position reading it in any way
        for dep, readers in self.deps.items():
            last[dep[0]] = max(last.get(dep[0], -1), readers[-1])
        self.concerns = [any((later := self.deps.get(wk)) and later[-1] > i for wk in self.writes[i])
                         or any(last.get(f.name, -1) > i for f in self.scalars[i])
                         for i in range(len(rules))]
        # whether a rule's fire is only its append plan (no stop, no later rule reading what it
        # adds): rules/passes.py then skips the general loop's steps after the append
        self.simple = [add is not None and not rule.stop and not concerned
                       for add, rule, concerned in zip(self.appends, rules, self.concerns, strict=True)]
        # rules/passes.py's batch of appends: a simple rule whose tags (folded) no other rule of
        # the bucket adds and that names none twice, so a batch of such fires adds each item
        # once when the ticket has none of them; per rule its items, their folded forms, how
        # many, and its position + 1 (the timeline's key after its fire)
        adders: dict[str, int] = {}
        for add in self.appends:
            for _, f in add or ():
                adders[f] = adders.get(f, 0) + 1
        self.batch = [bool(simple) and bool(add) and all(adders[f] == 1 for _, f in add or ())
                      for simple, add in zip(self.simple, self.appends, strict=True)]
        self.add_items = [tuple(item for item, _ in add or ()) for add in self.appends]
        self.add_folds = [tuple(f for _, f in add or ()) for add in self.appends]
        self.add_counts = [len(add or ()) for add in self.appends]
        self.after = list(range(1, len(rules) + 1))

    def affected(self, i: int, skip: frozenset[int], before: dict[str, Any], after: dict[str, Any]) -> set[int]:
        """Positions after i whose answer rule i's fire (from ticket `before` to `after`) can
        change (not in skip)."""
        out: set[int] = set()
        deps = self.deps
        keys = self.writes[i]
        if self.scalars[i]:
            keys = (*keys, *scalar_keys(self.scalars[i], before, after))
        for key in keys:
            hit = deps.get(key)
            if hit:
                out.update(hit[bisect_right(hit, i):])
        return out - skip if skip else out


class RuleSet:
    """Compiled rules. Immutable and safe to share between events (and threads)."""

    def __init__(self, rules: list[CompiledRule], codes: Callable[[str], CodeType] | None = None) -> None:
        """`codes`: how to compile a bucket's generated source (rules/codegen.py `generate`)."""
        self.rules = rules
        _share_regexes(rules)
        triggers = sorted({t for r in rules for t in r.triggers})
        self._buckets = {t: _Bucket([r for r in rules if t in r.triggers], codes) for t in triggers}

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def needs_handlers(self) -> bool:
        """Whether any rule calls a script or makes an HTTP request (the service then runs the
        pass where its handlers can wait for those)."""
        return any(a.type in ("run_script", "http_request") for r in self.rules for a in r.actions)

    @cached_property
    def needs_thread(self) -> bool:
        """Whether a pass may take long enough to matter to other workspaces (regexes, business
        time: bounded, but up to the regex budget): the service then runs it off its event loop,
        where a regex match that releases the GIL lets the loop keep serving."""
        return bool(self._slow_ops)

    @cached_property
    def loop_first(self) -> bool:
        """Whether a pass that needs_thread may be tried on the event loop first, under
        rules.regexes.on_loop (which moves it to a thread once its regexes would take longer):
        its only slow conditions are regexes (business time has no such allowance)."""
        return self._slow_ops == {"matches"}

    @cached_property
    def _slow_ops(self) -> frozenset[str]:
        """The slow condition ops (_SLOW_OPS) the rules use."""
        return frozenset(leaf.op for r in self.rules for leaf in leaves(r.conditions)
                         if leaf.op in _SLOW_OPS)

    @cached_property
    def text_scans(self) -> int:
        """How many inline text scans (`contains`, `not_contains`) the rules make at most in a
        pass: times the length of the ticket's texts, what a pass costs where no regex is."""
        from .scans import text_scans

        return sum(text_scans(r.conditions) for r in self.rules)

    def evaluate(self, event: dict[str, Any], ticket: dict[str, Any], previous: dict[str, Any] | None = None,
                 now: datetime | None = None, handlers: dict[str, Handler] | None = None,
                 exclude: Collection[str] = (), record: bool = False) -> Evaluation:
        """One ordered pass of the rules listening to `event["type"]` over `ticket` (already merged).

        `previous` is the ticket before this event (None: before its first event, all empty).
        `exclude` names rules (by id, or name where no id) not to check in this pass: the service
        passes the time rules that already fired for this ticket. `record`: the caller will build the
        run record (`rule_entries`, or rules/packed.py `pack`, as the worker does for every event):
        the pass then codes every rule for it as it matches (rules/passes.py), and the record need
        not ask them again; the answers are the same either way. Never raises on odd data; never
        changes its arguments.
        """
        event = event if type(event) is dict else {}
        before = ticket if type(ticket) is dict else {}
        prev = previous if type(previous) is dict else {}
        clock = aware(now)
        first = State(before, event, {}, prev, clock)
        t = event.get("type")
        bucket = self._buckets.get(t) if isinstance(t, str) else None
        if bucket is None:
            return Evaluation(None, {}, [(0, before, {}, None)], first, None, before, [], frozenset(), {})
        skipped: frozenset[int] = frozenset()
        if exclude:
            skipped = frozenset(p for label in exclude if (p := bucket.positions.get(label)) is not None)
        fired, timeline, stopped_at, effects, changes, rechecked, slots, codes, at_turn = run_pass(
            bucket, first, handlers, skipped, record)
        return Evaluation(bucket, fired, timeline, first, stopped_at, before, effects, skipped, changes,
                          rechecked, slots, codes, at_turn)

    def next_check(self, ticket: dict[str, Any], now: datetime | None = None,
                   previous: dict[str, Any] | None = None, exclude: Collection[str] = ()) -> datetime | None:
        """When to check this ticket's time rules (those listening to `time.reached`) next.

        `now` if one of them, other than those in `exclude`, holds already (a change other than
        time made it true); else the next moment after `now` at which one of their time conditions
        changes its answer; None if neither will happen.
        """
        bucket = self._buckets.get("time.reached")
        if bucket is None:
            return None
        clock = aware(now)
        state = _time_state(ticket, previous, clock)
        skip = set(exclude)
        if any(rule.label not in skip and rule.pred(state) for rule in bucket.rules if rule.time_leaves):
            return clock
        times = [at for rule in bucket.rules for leaf in rule.time_leaves
                 if (at := flip_time(leaf.field, leaf.op, leaf.value, state, leaf.calendar)) is not None]
        return min(times) if times else None

    def holding(self, labels: Collection[str], ticket: dict[str, Any], now: datetime | None = None,
                previous: dict[str, Any] | None = None) -> set[str]:
        """Which of these time rules' conditions still hold for the ticket (the others may fire again)."""
        bucket = self._buckets.get("time.reached")
        if bucket is None:
            return set()
        state = _time_state(ticket, previous, aware(now))
        out = set()
        for label in labels:
            pos = bucket.positions.get(label)
            if pos is not None and bucket.rules[pos].pred(state):
                out.add(label)
        return out

    @property
    def time_rules(self) -> list[str]:
        """Labels of the rules that listen to `time.reached` and have a time condition."""
        bucket = self._buckets.get("time.reached")
        return [r.label for r in bucket.rules if r.time_leaves] if bucket else []


def _time_state(ticket: Any, previous: Any, clock: datetime) -> State:
    """What a time rule sees when its time comes: the ticket, a `time.reached` event, no vars."""
    return State(ticket if type(ticket) is dict else {}, {"type": "time.reached"}, {},
                 previous if type(previous) is dict else {}, clock)


def _calendars(calendars: Any) -> dict[str, Calendar]:
    try:
        return compile_calendars(calendars)
    except CalendarError as exc:
        raise RuleError("calendars", exc.path, exc.reason) from None
    except TypeError as exc:
        raise RuleError("calendars", "", str(exc)) from None


def compile_rules(rules: Any, calendars: Any = None, cache: CompileCache | None = None) -> RuleSet:
    """Check and compile rule dicts, in order; `enabled: false` rules are left out.

    `calendars` maps names to business-hours calendars (a `Calendar` or an API.md business_hours
    object) that `older_than_business` / `newer_than_business` conditions may name; the service
    passes its SLA policies' calendars, by policy name.
    Raises RuleError for the first invalid rule (its `.errors` lists every problem found in all rules).
    `cache`: rules compiled before from the same definitions are taken from it, not compiled
    again (rules/compile_cache.py); the RuleSet is the same as without it.
    """
    if type(rules) is not list:
        raise RuleError("rules", "", "compile_rules takes a list of rule objects")
    named = _calendars(calendars)
    if cache is not None:
        cache.begin()
    compiled: list[CompiledRule] = []
    errors: list[RuleError] = []
    seen_ids: set[str] = set()
    for i, raw in enumerate(rules):
        if type(raw) is dict and raw.get("enabled", True) is False:
            continue
        try:
            rule = compile_rule(raw, i, named) if cache is None else cache.compile(raw, i, named)
        except RuleError as exc:
            errors.extend(exc.errors)
            continue
        if rule.id is not None:
            if rule.id in seen_ids:
                errors.append(RuleError(rule.label, "id", "another rule has the same id", index=i))
                continue
            seen_ids.add(rule.id)
        compiled.append(rule)
    if errors:
        first = errors[0]
        raise RuleError(first.rule, first.path, first.reason, index=first.index, errors=errors)
    return RuleSet(compiled, cache.code if cache is not None else None)


def dry_run(rule: dict[str, Any], event: dict[str, Any], ticket: dict[str, Any],
            previous: dict[str, Any] | None = None, now: datetime | None = None,
            calendars: Any = None) -> dict[str, Any]:
    """Test one rule on a sample: every condition with what it saw, and what the rule would change.

    Applies nothing; `enabled` is ignored (a draft can be tested). Raises RuleError if invalid.
    """
    compiled = compile_rule(rule, 0, _calendars(calendars))
    event = event if type(event) is dict else {}
    before = ticket if type(ticket) is dict else {}
    state = State(before, event, {}, previous if type(previous) is dict else {}, aware(now))
    etype = event.get("type")
    triggered = etype in compiled.triggers
    held = bool(compiled.pred(state))
    matched = triggered and held
    failed = None
    if not triggered:
        failed = {"path": "triggers", "field": "event.type", "op": "in", "value": list(compiled.triggers),
                  "seen": etype}
    elif not held:
        failed = failure(compiled.conditions, state)
    changes: dict[str, Any] = {}
    effects: list[dict[str, Any]] = []
    errors: list[str] = []
    notes: list[str] = []
    if matched:
        firing = Firing(dict(before), event, {}, None)
        for action in compiled.actions:
            action.apply(firing)
        changes, effects, errors, notes = diff(before, firing.ticket), firing.effects, firing.errors, firing.notes
    return {
        "matched": matched,
        "rule": {"id": compiled.id, "name": compiled.name, "matched": matched, "failed": failed,
                 "errors": errors, "notes": notes, "conditions": trace(compiled.conditions, state)},
        "changes": changes,
        "effects": effects,
    }
