"""`older_than_business` / `newer_than_business`: time conditions counted in business hours.

Like `older_than D` / `newer_than D`, but only the open hours of a calendar (rules/calendar.py)
count: `older_than_business D` holds when at least D of business time has passed between the
field's timestamp and `now`; `newer_than_business D` is its negation on a readable timestamp
(neither holds when the timestamp is unreadable). The calendar is given per condition (`"calendar"`:
a name from the calendars passed to `compile_rules`, or an inline business_hours object).

Both are decided through one instant, `due = calendar.add(t, D)` (the first moment D of business
time has passed since t): older holds iff due <= now, and `due` is also when the answer flips, so
`next_check` can set the time-rule timer to it. Computing `due` costs two weeks of windows plus a
lookup in the calendar's weekly prefix sums, whatever the age of the timestamp or the size of D.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .calendar import Calendar, CalendarError
from .durations import duration_seconds

if TYPE_CHECKING:
    from .fields import Field
    from .state import State

BUSINESS_OPS = frozenset({"older_than_business", "newer_than_business"})


def _span(value: str) -> timedelta | None:
    seconds = duration_seconds(value)
    assert seconds is not None  # checked at compile time
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        return None


def _due(calendar: Calendar, t: datetime, span: timedelta) -> datetime | None:
    """When `span` of business time has passed since t; None when that is not within reach
    (past the calendar's range, 2200, or the datetime range)."""
    try:
        return calendar.add(t, span)
    except (OverflowError, ValueError):  # CalendarError is a ValueError: no open hours in reach
        return None


def _reached(calendar: Calendar, t: datetime, span: timedelta, now: datetime) -> bool | None:
    """Has `span` of business time passed between t and now? None: cannot tell (unusable t).
    `due` is exact over the whole range calendars count (rules/calendar.py); a due time past
    it is later than any `now`."""
    due = _due(calendar, t, span)
    return due is not None and due <= now


def business_test(value: str, older: bool, calendar: Calendar) -> Callable[[State, Field], bool]:
    span = _span(value)

    def test(s: State, f: Field) -> bool:
        t = s.timestamp(f)
        if t is None:
            return False
        if span is None:  # longer than any span between two datetimes: never reached
            return not older
        reached = _reached(calendar, t, span, s.now)
        if reached is None:
            return False
        return reached if older else not reached
    return test


def business_flip(field: Field, value: str, calendar: Calendar, state: State) -> datetime | None:
    """When a business-time condition next changes its answer (after state.now), or None."""
    t = state.timestamp(field)
    span = duration_seconds(value)
    if t is None or span is None:
        return None
    try:
        due = _due(calendar, t, timedelta(seconds=span))
    except OverflowError:
        return None
    return due if due is not None and due > state.now else None


def resolve_calendar(spec: Any, calendars: dict[str, Calendar] | None, path: str
                     ) -> tuple[Calendar | None, str | None, tuple[str, str] | None]:
    """(calendar, name, problem) for a condition's `calendar` key: a name or an inline object."""
    if isinstance(spec, str) and spec:
        known = calendars or {}
        cal = known.get(spec)
        if cal is None:
            names = ", ".join(sorted(known)) or "none were given"
            return None, None, (path, f"unknown calendar {spec!r}; calendars: {names} "
                                      "(or give a business_hours object inline)")
        return cal, spec, None
    if type(spec) is dict:
        try:
            return Calendar.from_spec(spec, path), None, None
        except CalendarError as exc:
            return None, None, (exc.path, exc.reason)
    return None, None, (path, "must be a calendar name or a business_hours object "
                              "{timezone, week, holidays}")


def compile_calendars(calendars: Any) -> dict[str, Calendar]:
    """`compile_rules(..., calendars=)`: names to Calendar objects or business_hours specs."""
    if calendars is None:
        return {}
    if type(calendars) is not dict:
        raise TypeError("calendars must map names to Calendar objects or business_hours specs")
    out: dict[str, Calendar] = {}
    for name, spec in calendars.items():
        if not (isinstance(name, str) and name):
            raise TypeError("calendar names must be non-empty strings")
        out[name] = spec if isinstance(spec, Calendar) else Calendar.from_spec(spec, f"calendars.{name}")
    return out


__all__ = ["BUSINESS_OPS", "business_test", "business_flip", "resolve_calendar", "compile_calendars"]
