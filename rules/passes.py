"""One ordered pass of a trigger bucket's rules over a ticket: the loop `RuleSet.evaluate` runs.

The cost is meant to follow the work:

- The fields the bucket reads are read and folded once (the generated reader, rules/codegen.py)
  and the generated matcher returns the rules holding on the event's ticket, in order.
- A fire changes the answer only of the later rules reading what it wrote (rules/plan.py,
  dependencies); those alone are checked again, on the ticket as it then is.
- The common broad rule's action adds a tag nobody reads. Such a fire (an *append plan*) copies
  nothing: the pass owns one tags list, made once per pass, and appends to it in place. Every
  earlier version of the ticket stays readable: the timeline records, beside the ticket dict,
  the length the owned tags list had then, and a list that is only appended to holds each
  earlier version as a prefix. Any other change (a `set`, `remove_tags`, a Firing) copies the
  ticket as before and never appends to a list a timeline entry shows without its length.
- When every change of the pass was such an append, `changes` is known without a diff: exactly
  the items appended (they were appended only when their folded form was not there yet).
- When at least BATCH_AT rules hold, every one such a fire, and the tags they add are their own (no other rule of
  the bucket adds any of them, `_Bucket.batch`) and not on the ticket yet, the fires are done in
  one batch (`_appends`): every item is appended, and each fire's timeline entry follows from
  the running count, with no Python step per fire (at 10,000 broad rules, 108 fires an event,
  that step was about half the pass). The result is the loop's, entry for entry.
"""
from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate, chain, repeat
from operator import itemgetter
from typing import Any

from .actions import Firing, Handler
from .slots import read_slots
from .fields import FIXED_FIELDS
from .ops import State
from .plan import QUIET, Tags, run_plan
from .record import turn_code

_TAGS = FIXED_FIELDS["tags"]
# The batch of appends pays from this many fires: below it, its set-up (the iterators, one call)
# costs more than the loop's steps (callgrind, run_pass alone: +10,600 instructions an event at
# 1 fire, +750 at 11; at 108 fires, CPU time, 360 -> 300 us)
BATCH_AT = 16
# (position after which it holds, ticket, vars, length of the owned tags list or None)
Timeline = list[tuple[int, dict[str, Any], dict[str, Any], int | None]]


def run_pass(bucket: Any, first: State, handlers: dict[str, Handler] | None, skipped: frozenset[int],
             record: bool = False) -> tuple[dict[int, Firing], Timeline, int | None, list[dict[str, Any]],
                                           dict[str, Any] | None, frozenset[int] | set[int], Any, list[int] | None,
                                           dict[int, int] | None]:
    """(fired, timeline, stopped_at, effects, changes or None when a diff must work them out,
    the positions checked again after a fire (and the skipped ones), the slot vector of the
    event's ticket: the run record's `first` reads it again, rules/record.py; and with `record`
    every rule's `first` code on that ticket and each rule's checked again at its turn, by
    position, else None and None).

    With `record` (the caller builds the run record) the rules holding on the event's ticket are
    found by the bucket's generated `first`, which codes every rule for the record and appends
    those that hold, instead of by `match`: the record then asks no rule again, and the pass pays
    `first` (about the cost of asking every rule) instead of `match` (the index's candidates)."""
    before, event, prev, clock = first.ticket, first.event, first.previous, first.now
    timeline: Timeline = [(0, before, {}, None)]
    fired: dict[int, Firing] = {}
    effects: list[dict[str, Any]] = []
    stopped_at = None
    rules = bucket.rules
    state = first
    if bucket.read is not None:
        slots: Any = bucket.read(before, event, {})
    else:
        slots = read_slots(bucket.slots, state)
    slots0 = slots
    codes = None
    if record:
        todo: list[int] = []
        codes = bucket.first(slots, state, todo)
    else:
        todo = bucket.match(slots, state)
    if skipped:
        todo = [i for i in todo if i not in skipped]
    if not todo:
        return fired, timeline, None, effects, {}, skipped, slots0, codes, None
    if len(todo) >= BATCH_AT:
        # (itemgetter picks the rules' entries in one C call; a map of list.__getitem__ made a
        # call and an argument tuple per rule, which cost more than the loop's steps it saved)
        pick = itemgetter(*todo)
        if all(pick(bucket.batch)):
            done = _appends(bucket, first, todo, pick, timeline)
            if done is not None:
                return done[0], timeline, None, effects, done[1], skipped, slots0, codes, None
    plans, appends, concerns, explainers = bucket.plans, bucket.appends, bucket.concerns, bucket.explainers
    recheck: set[int] | frozenset[int] = skipped  # (empty or never visited: a free start)
    cur_ticket: dict[str, Any] = before
    cur_vars: dict[str, Any] = {}
    current: State | None = state       # the State of cur_ticket, made when a re-check needs one
    own: list[Any] | None = None        # the tags list this pass made and appends to in place
    folded: set[str] = set()            # the folded str items of `own`
    base = 0                            # own's length when made (the ticket's tags before)
    only_appends = True                 # every change so far appended to `own` from `before`'s tags
    tags: Tags | None = None            # folded tags for the general plans (rules/plan.py)
    simple = bucket.simple
    # (for the record: the code of each rule checked again, at its turn, made from the answer the
    # check gave on the State it checked; the record made a State and read the slots again per
    # version for it, half its cost at 100 rules of ~14 fires, bench/RESULTS.md)
    at_turn: dict[int, int] | None = {} if record else None
    groups = bucket.record.groups if record else None
    k = 0
    while k < len(todo):
        i = todo[k]
        k += 1
        if i in recheck:
            if current is None:
                current = state = State(cur_ticket, event, cur_vars, prev, clock, state)
                if own is not None and cur_ticket.get("tags") is own:
                    # the parent State may have cached this very list when it was shorter
                    current.remember("tags", own, frozenset(folded))
                elif tags is not None:
                    tags.seed(current)
                slots = read_slots(bucket.slots, current)
            failing = explainers[i](slots, current)
            if at_turn is not None:
                at_turn[i] = turn_code(groups[i], failing, slots, current)  # type: ignore[index]
            if failing >= 0:  # (a failing step: it does not hold)
                continue
        was = cur_ticket
        add = appends[i]
        if add is not None:
            if own is None or cur_ticket.get("tags") is not own:
                cur = cur_ticket.get("tags")
                if own is not None or cur_ticket is not before:
                    only_appends = False
                own = list(cur) if type(cur) is list else []
                base = len(own)
                folded = (set(first.folded(_TAGS)) if cur is before.get("tags") and type(cur) is list
                          else {x.casefold() for x in own if isinstance(x, str)})
                cur_ticket = dict(cur_ticket)
                cur_ticket["tags"] = own
            assert own is not None   # made above, or the ticket's tags are already this pass's own
            for item, f in add:
                if f not in folded:
                    folded.add(f)
                    own.append(item)
            fired[i] = QUIET
            timeline.append((i + 1, cur_ticket, cur_vars, len(own)))
            current = None
            if simple[i]:   # the common broad rule's: no stop, no later rule reads what it added
                continue
            rule = rules[i]
            mutates = True
        else:
            rule = rules[i]
            plan = plans[i]
            if plan is not None:  # ticket changes only: no Firing
                if tags is None:
                    tags = Tags()
                cur_ticket = run_plan(plan, cur_ticket, tags, first)
                fired[i] = QUIET
                mutates = True
            else:
                mutates = rule.mutates
                firing = Firing(dict(cur_ticket) if mutates else cur_ticket, event, cur_vars, handlers)
                for action in rule.actions:
                    action.apply(firing)
                fired[i] = firing
                effects.extend(firing.effects)
                cur_ticket, cur_vars = firing.ticket, firing.vars
            if mutates:
                only_appends = False
                current = None
                timeline.append((i + 1, cur_ticket, cur_vars,
                                 len(own) if cur_ticket.get("tags") is own and own is not None else None))
        if rule.stop:
            stopped_at = i
            break
        if mutates and concerns[i] and (new := bucket.affected(i, skipped, was, cur_ticket)):
            recheck = new.union(recheck)
            todo, k = sorted(new.union(todo[k:])), 0
    changes = None
    if only_appends:
        added = own[base:] if own is not None else []
        changes = {"tags": {"added": added, "removed": []}} if added else {}
    return fired, timeline, stopped_at, effects, changes, recheck, slots0, codes, at_turn


def _appends(bucket: Any, first: State, todo: list[int], pick: Callable[[list[Any]], tuple[Any, ...]],
             timeline: Timeline) -> tuple[dict[int, Firing], dict[str, Any]] | None:
    """The fires of `todo` (every one a batch rule, `_Bucket.batch`) on the event's ticket, all
    at once: (fired, changes), the timeline extended as the loop extends it; None, with nothing
    done, when a tag they add is on the ticket already (the loop then works out which are new).
    `pick(xs)` is the tuple of the entries of `xs` at the positions of `todo`."""
    before = first.ticket
    cur = before.get("tags")
    if type(cur) is list and not first.folded(_TAGS).isdisjoint(
            chain.from_iterable(pick(bucket.add_folds))):
        return None
    own = list(cur) if type(cur) is list else []
    base = len(own)
    own.extend(chain.from_iterable(pick(bucket.add_items)))
    ticket = dict(before)
    ticket["tags"] = own
    # (the tags' length after each fire: the running count of the items added)
    ends = accumulate(pick(bucket.add_counts), initial=base)
    next(ends)
    timeline.extend(zip(pick(bucket.after), repeat(ticket), repeat({}), ends))
    return dict.fromkeys(todo, QUIET), {"tags": {"added": own[base:], "removed": []}}
