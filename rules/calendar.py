"""Business-hours calendars: adding and measuring business time, DST- and holiday-correct.

A calendar is API.md's `business_hours` object:

    {"timezone": "Europe/Oslo", "week": {"mon": ["09:00", "17:00"], ...}, "holidays": ["2026-12-25"]}

A day may also list several windows: `"mon": [["09:00", "12:00"], ["13:00", "17:00"]]`; `"24:00"`
ends a window at midnight. Windows are wall-clock times in the calendar's zone (zoneinfo, with the
tzdata package where the OS has no zone database), and all arithmetic is done on UTC instants, so a
DST change inside a window counts the hours that really passed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
# How far ahead `add` looks for open hours before giving up (a calendar open one hour a year still
# answers; one with no open hours at all fails fast instead of looping).
_HORIZON_DAYS = 3 * 366


class CalendarError(ValueError):
    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Calendar:
    zone: ZoneInfo
    week: tuple[tuple[tuple[int, int], ...], ...]  # per weekday: (start_min, end_min) windows
    holidays: frozenset[date]

    @classmethod
    def from_spec(cls, spec: Any, path: str = "business_hours") -> Calendar:
        if type(spec) is not dict:
            raise CalendarError(path, "must be an object with timezone, week and optional holidays")
        extra = set(spec) - {"timezone", "week", "holidays"}
        if extra:
            raise CalendarError(f"{path}.{sorted(extra)[0]}", "unknown key")
        try:
            zone = ZoneInfo(spec.get("timezone", "UTC"))
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise CalendarError(f"{path}.timezone", f"unknown time zone {spec.get('timezone')!r}") from None
        week_spec = spec.get("week")
        if type(week_spec) is not dict or not week_spec:
            raise CalendarError(f"{path}.week", "must map days (mon..sun) to opening hours")
        week: list[tuple[tuple[int, int], ...]] = []
        for day in _DAYS:
            week.append(_windows(week_spec.get(day), f"{path}.week.{day}"))
        unknown_days = set(week_spec) - set(_DAYS)
        if unknown_days:
            raise CalendarError(f"{path}.week.{sorted(unknown_days)[0]}", "days are mon, tue, wed, thu, fri, sat, sun")
        if not any(week):
            raise CalendarError(f"{path}.week", "has no open hours")
        holidays = spec.get("holidays", [])
        if type(holidays) is not list:
            raise CalendarError(f"{path}.holidays", "must be a list of dates like 2026-12-25")
        days: set[date] = set()
        for i, h in enumerate(holidays):
            try:
                if not (isinstance(h, str) and len(h) == 10):
                    raise ValueError(h)
                days.add(date.fromisoformat(h))
            except ValueError:
                raise CalendarError(f"{path}.holidays[{i}]", "must be a date like 2026-12-25") from None
        return cls(zone, tuple(week), frozenset(days))

    def _open_windows(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's windows as UTC instants (none on a holiday)."""
        if day in self.holidays:
            return []
        out = []
        for start, end in self.week[day.weekday()]:
            out.append((_instant(day, start, self.zone), _instant(day, end, self.zone)))
        return out

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when `duration` of business time has passed since `start`."""
        remaining = duration
        t = start.astimezone(timezone.utc)
        day = t.astimezone(self.zone).date() - timedelta(days=1)  # a window may start the day before
        for _ in range(_HORIZON_DAYS):
            for ws, we in self._open_windows(day):
                if we <= t:
                    continue
                s = max(ws, t)
                available = we - s
                if remaining <= available:
                    return s + remaining
                remaining -= available
            day += timedelta(days=1)
        raise CalendarError("business_hours", "no open hours within three years")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants (zero if end is not after start)."""
        a, b = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
        total = timedelta(0)
        if b <= a:
            return total
        day = a.astimezone(self.zone).date() - timedelta(days=1)
        last = b.astimezone(self.zone).date()
        while day <= last:
            for ws, we in self._open_windows(day):
                lo, hi = max(ws, a), min(we, b)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def is_open(self, at: datetime) -> bool:
        t = at.astimezone(timezone.utc)
        day = t.astimezone(self.zone).date()
        return any(ws <= t < we for d in (day - timedelta(days=1), day) for ws, we in self._open_windows(d))


def _minutes(text: Any, path: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        # A YAML 1.1 reader turns unquoted 17:00 into 1020 (base 60); deskflow's import keeps it a
        # string, but a document made elsewhere may carry the number.
        raise CalendarError(path, f'must be a time like "17:00" (got the number {text}: write times '
                                  'in quotes, e.g. "17:00", or YAML reads them as base-60 numbers)')
    if not isinstance(text, str) or not _CLOCK.fullmatch(text):
        raise CalendarError(path, "must be a time like 09:00 (00:00 to 24:00)")
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def _windows(raw: Any, path: str) -> tuple[tuple[int, int], ...]:
    if raw is None or raw == []:
        return ()
    pairs = [raw] if type(raw) is list and len(raw) == 2 and all(isinstance(x, (str, int)) for x in raw) else raw
    if type(pairs) is not list:
        raise CalendarError(path, 'must be ["09:00", "17:00"] or a list of such windows')
    out = []
    for i, pair in enumerate(pairs):
        p = path if pairs is not raw else f"{path}[{i}]"
        if type(pair) is not list or len(pair) != 2:
            raise CalendarError(p, 'a window is ["HH:MM", "HH:MM"]')
        start, end = _minutes(pair[0], f"{p}[0]"), _minutes(pair[1], f"{p}[1]")
        if end <= start:
            raise CalendarError(p, "a window must end after it starts")
        out.append((start, end))
    out.sort()
    for (s1, e1), (s2, _) in zip(out, out[1:]):
        if s2 < e1:
            raise CalendarError(path, "windows overlap")
    return tuple(out)


def _instant(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """Local wall-clock `day` + `minutes` in `zone`, as a UTC instant ("24:00" is next midnight)."""
    if minutes == 24 * 60:
        local = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
    else:
        local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)
    return local.astimezone(timezone.utc)
