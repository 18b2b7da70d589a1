"""What one pass of the rules did (`Evaluation`), and its explanation, built when read."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .actions import Firing
from .slots import read_slots
from .conditions import Group, Leaf
from .jsondata import json_copy, seen_copy
from .ops import State
from .record import any_held
from .updates import diff

if TYPE_CHECKING:
    from .pass_view import Bucket as _Bucket

_CHANGE_OPS = frozenset({"changed", "changed_from", "changed_to"})


def _failed(node: Leaf | Group, s: State, seen: dict[str, Any] | None = None) -> dict[str, Any]:
    """explain's `failed` for a failing step: the leaf and what it saw, or the `any` group.

    `seen` caches the copy of each field's value for one state: at 10,000 rules a thousand
    entries may show the same 100-item tags list, and copying it for each was most of the cost.
    The entries of one explain may therefore share a `seen` list (never with the ticket)."""
    if isinstance(node, Leaf):
        if seen is None or node.op in _CHANGE_OPS:
            return node.failure(s)
        name = node.field.name
        if name not in seen:
            seen[name] = seen_copy(s.read(node.field))
        return {**node.describe(), "seen": seen[name], **node.note(s)}  # a regex cut short says so
    return {"path": node.path, "field": None, "op": "any", "value": None, "seen": None}


class Evaluation:
    """What one pass did. `ticket` and `explain` are built on first read.

    `timeline` holds (position, ticket, vars, tags length) after each fire that changed them,
    starting with (0, the event's ticket, {}, None); a length says the ticket's tags list was
    appended to in place later (rules/passes.py) and that its first `length` items are the tags
    as they stood then. The States explain reads are built from it only when read."""

    def __init__(self, bucket: _Bucket | None, fired: dict[int, Firing],
                 timeline: list[tuple[int, dict[str, Any], dict[str, Any], int | None]], first: State,
                 stopped_at: int | None, before: dict[str, Any], effects: list[dict[str, Any]],
                 skipped: frozenset[int] = frozenset(), changes: dict[str, Any] | None = None,
                 rechecked: frozenset[int] | set[int] = frozenset(), slots: Any = None,
                 codes: list[int] | None = None, at_turn: dict[int, int] | None = None) -> None:
        self._bucket = bucket
        self._slots = slots   # the slot vector of `first` (the pass's; None: not read)
        self._codes = codes   # every rule's `first` code on `first` (a pass for the record; else None)
        self._at_turn = at_turn   # ... and of each rule it checked again, at its turn
        self._fired = fired
        self._timeline = timeline
        self._first = first
        self._stopped_at = stopped_at
        self._skipped = skipped
        self._rechecked = rechecked
        self._before = before
        # the pass's fires (if any) only appended tags to one ticket dict of its own, no vars:
        # every field but the tags is the same at every rule's turn (rules/passes.py says so by
        # knowing the changes; rules/packed.py's quick pack reads it)
        self._appended = changes is not None
        self._final_ticket, self._final_vars = timeline[-1][1], timeline[-1][2]
        self.effects = effects
        labels = bucket.labels if bucket else []
        self.matched: list[str] = [labels[i] for i in fired]
        # (the pass knows the changes when it only appended tags; else the diff works them out)
        self.changes: dict[str, Any] = (changes if changes is not None else
                                        diff(before, self._final_ticket) if fired else {})
        self._explain: list[dict[str, Any]] | None = None

    @property
    def ticket(self) -> dict[str, Any]:
        """The ticket after automation: a fresh copy, so changing it changes nothing else."""
        return json_copy(self._final_ticket)  # type: ignore[no-any-return]

    @property
    def vars(self) -> dict[str, Any]:
        return dict(self._final_vars)

    @property
    def explain(self) -> list[dict[str, Any]]:
        if self._explain is None:
            self._explain = self._build_explain()
        return self._explain

    def rule_entries(self) -> list[dict[str, Any]]:
        """What the worker's run record stores per rule: `{id, name, matched, failed[, errors]
        [, any_held]}` of each `explain` item, built without building `explain` (rules/record.py)."""
        from .record import entries
        return entries(self)

    def _state_at(self, step: int, parent: State) -> State:
        """The State of timeline entry `step` (the tags list cut to its length then)."""
        _, ticket, vars, n = self._timeline[step]
        if n is not None:
            ticket = {**ticket, "tags": ticket["tags"][:n]}
        f = self._first
        return State(ticket, f.event, vars, f.previous, f.now, parent)

    def _build_explain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._bucket is None:
            return out
        bucket = self._bucket
        step, timeline, state = 0, self._timeline, self._first
        explainers, steps, v = bucket.explainers, bucket.steps, None
        seen: dict[Any, Any] = {}
        groups = bucket.record.groups
        for i, rule in enumerate(bucket.rules):
            if self._stopped_at is not None and i > self._stopped_at:
                break
            while step + 1 < len(timeline) and timeline[step + 1][0] <= i:
                step += 1
                state = self._state_at(step, state)
                v, seen = None, {}
            entry: dict[str, Any] = {"id": rule.id, "name": rule.name, "matched": i in self._fired,
                                     "failed": None, "errors": [], "notes": []}
            firing = self._fired.get(i)
            k = -1
            if firing is not None:
                entry["errors"] = list(firing.errors)
                entry["notes"] = list(firing.notes)
            elif i in self._skipped:
                entry["skipped"] = "fired already for this ticket; checked again once its conditions stop holding"
            else:
                if v is None:
                    v = read_slots(bucket.slots, state)
                k = explainers[i](v, state)
                entry["failed"] = None if k < 0 else _failed(steps[i][k], state, seen)
            if groups[i] and i not in self._skipped:
                if v is None:
                    v = read_slots(bucket.slots, state)
                held = any_held(groups[i], k, v, state)
                if held:
                    entry["any_held"] = held
            out.append(entry)
        return out
