"""What conditions read (`State`) and what a compiled condition is (`Predicate`).

Their own module, below every op family: rules/ops.py gathers the families (rules/business.py,
rules/ordinal.py, its own text, list and time ops), and each family builds predicates over a
State, so the State cannot live in the module that imports them.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .durations import parse_timestamp
from .fields import Field
from .regexes import RegexBudget


class State:
    """What conditions read: one event, the ticket as earlier rules left it, vars, the clock.

    Caches the case-folded text and parsed timestamps of fields, so a thousand rules testing the
    same message body fold it once. A State is never changed: a rule that changes the ticket makes
    a new one.
    """

    __slots__ = ("ticket", "event", "vars", "previous", "now", "_folded", "_times", "_parent", "budget")

    def __init__(self, ticket: dict[str, Any], event: dict[str, Any], vars: dict[str, Any],
                 previous: dict[str, Any], now: datetime, parent: State | None = None) -> None:
        self.ticket = ticket
        self.event = event
        self.vars = vars
        self.previous = previous
        self.now = now
        # field name -> (raw value, folded value). A State made after a rule fired keeps its
        # parent's entries for fields whose raw value is the very same object: actions replace
        # what they change and copy nothing else, so identity means "unchanged".
        self._folded: dict[str, tuple[Any, Any]] = {}
        self._times: dict[str, datetime | None] = {}
        self._parent = parent
        # One pass's regex time, shared by every State of the pass (rules/regexes.py).
        self.budget: RegexBudget = parent.budget if parent is not None else RegexBudget()

    def read(self, field: Field) -> Any:
        return field.read(self.ticket, self.event, self.vars)

    def remember(self, name: str, raw: Any, folded: Any) -> None:
        """Seed the folded cache: whoever built `raw` already knows its folded value."""
        self._folded[name] = (raw, folded)

    def read_previous(self, field: Field) -> Any:
        return field.read(self.previous, self.event, self.vars)

    def folded(self, field: Field) -> Any:
        """The field's value case-folded: a str, a frozenset of folded list items, or None."""
        name = field.name
        hit = self._folded.get(name)
        if hit is not None:
            return hit[1]
        raw = field.read(self.ticket, self.event, self.vars)
        parent = self._parent
        if parent is not None:
            hit = parent._folded.get(name)
            if hit is not None and hit[0] is raw:
                self._folded[name] = hit
                return hit[1]
        if isinstance(raw, str):
            out: Any = raw.casefold()
        elif type(raw) is list:
            out = frozenset(x.casefold() for x in raw if isinstance(x, str))
        else:
            out = None
        self._folded[name] = (raw, out)
        return out

    def timestamp(self, field: Field) -> datetime | None:
        try:
            return self._times[field.name]
        except KeyError:
            t = parse_timestamp(field.read(self.ticket, self.event, self.vars))
            self._times[field.name] = t
            return t


Predicate = Callable[[State], bool]


__all__ = ["Predicate", "State"]
