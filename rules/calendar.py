"""Business-hours calendars: adding and measuring business time, DST- and holiday-correct.

A calendar is API.md's `business_hours` object:

    {"timezone": "Europe/Oslo", "week": {"mon": ["09:00", "17:00"], ...}, "holidays": ["2026-12-25"]}

A day may also list several windows: `"mon": [["09:00", "12:00"], ["13:00", "17:00"]]`; `"24:00"`
ends a window at midnight. Windows are wall-clock times in the calendar's zone (zoneinfo, with the
tzdata package where the OS has no zone database), and all arithmetic is done on UTC instants, so a
DST change inside a window counts the hours that really passed.

Cost. A calendar and the timestamps it measures come from tenants, and the process is shared, so
no computation walks day by day over a span a tenant chooses (a timestamp in 1990 or year 1, a
target of 10,000 hours). Business time is counted on whole local weeks (Monday to Sunday) from
prefix sums: a week's open time is the calendar's nominal week unless a holiday falls in it or the
zone's UTC offset changes during it (then its seven days are walked once, exactly), and the sums
are built lazily per block of _BLOCK_WEEKS weeks and shared by equal calendars. Only the two
partial weeks at the ends of a span are walked window by window. So `add` and `elapsed` cost
O(windows in two weeks + log) once a block is built, and a block costs _BLOCK_WEEKS offset checks.
The sums assume the zone changes its offset at most once within a week, true of every tz zone.

Business time is counted between BUSINESS_EPOCH (1900-01-01) and BUSINESS_END (2200-01-01): an
earlier instant counts from 1900, and a due time past 2200 is "never" (CalendarError). Calendar
sizes are bounded when compiled: MAX_WINDOWS_PER_DAY windows a day, MAX_HOLIDAYS holidays.
"""
from __future__ import annotations

import itertools
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
MAX_WINDOWS_PER_DAY = 12
MAX_HOLIDAYS = 1000
BUSINESS_EPOCH = date(1900, 1, 1)  # a Monday: week k starts BUSINESS_EPOCH + 7k days
BUSINESS_END = date(2200, 1, 1)
_LO = datetime(1900, 1, 2, tzinfo=timezone.utc)    # instants are clamped here (local dates then
_HI = datetime(2199, 12, 30, tzinfo=timezone.utc)  # fall inside [BUSINESS_EPOCH, BUSINESS_END))
_LAST_WEEK = (BUSINESS_END - BUSINESS_EPOCH).days // 7
_BLOCK_WEEKS = 256
_US = timedelta(microseconds=1)
_TABLES: dict[tuple[Any, ...], dict[int, list[int]]] = {}  # equal calendars share their sums
_MAX_TABLES = 256


class CalendarError(ValueError):
    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Calendar:
    zone: ZoneInfo
    week: tuple[tuple[tuple[int, int], ...], ...]  # per weekday: (start_min, end_min) windows
    holidays: frozenset[date]
    _sorted: tuple[date, ...] = field(default=(), init=False, repr=False, compare=False)
    _nominal: int = field(default=0, init=False, repr=False, compare=False)  # µs in a plain week

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sorted", tuple(sorted(self.holidays)))
        object.__setattr__(self, "_nominal", sum(e - s for day in self.week for s, e in day) * 60_000_000)

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
        if len(holidays) > MAX_HOLIDAYS:
            raise CalendarError(f"{path}.holidays", f"has {len(holidays)} dates; at most {MAX_HOLIDAYS} "
                                                    "(MAX_HOLIDAYS)")
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

    # -- whole weeks, from prefix sums ------------------------------------------------------

    def _week_walked(self, k: int) -> int:
        """Open time of week k, in µs, window by window (a holiday or offset change is in it)."""
        monday = BUSINESS_EPOCH + timedelta(days=7 * k)
        total = timedelta(0)
        for i in range(7):
            for ws, we in self._open_windows(monday + timedelta(days=i)):
                total += we - ws
        return total // _US

    def _block(self, j: int) -> list[int]:
        """Prefix sums (µs) over the weeks of block j: entry i = open time of its first i weeks.
        Each week is the nominal week but those with a holiday or an offset change, walked."""
        key = (self.zone.key, self.week, self._sorted)
        table = _TABLES.get(key)
        if table is None:
            if len(_TABLES) >= _MAX_TABLES:
                _TABLES.pop(next(iter(_TABLES)), None)
            table = _TABLES.setdefault(key, {})
        sums = table.get(j)
        if sums is None:
            first, stop = j * _BLOCK_WEEKS, min((j + 1) * _BLOCK_WEEKS, _LAST_WEEK)
            lo = bisect_left(self._sorted, BUSINESS_EPOCH + timedelta(days=7 * first))
            hi = bisect_left(self._sorted, BUSINESS_EPOCH + timedelta(days=7 * stop))
            special = _offset_change_weeks(self.zone, j) | {self._week_of(d) for d in self._sorted[lo:hi]}
            sums = [0]
            nominal = self._nominal
            for k in range(first, stop):
                sums.append(sums[-1] + (self._week_walked(k) if k in special else nominal))
            table[j] = sums
        return sums

    def _weeks_open(self, k0: int, k1: int) -> int:
        """Open time of weeks [k0, k1), in µs."""
        total = 0
        while k0 < k1:
            j, i = divmod(k0, _BLOCK_WEEKS)
            sums = self._block(j)
            stop = min(k1 - j * _BLOCK_WEEKS, len(sums) - 1)
            total += sums[stop] - sums[i]
            k0 = j * _BLOCK_WEEKS + stop
        return total

    def _week_reaching(self, k0: int, need: int) -> tuple[int, int]:
        """(k, before): the first week k >= k0 by whose end `need` µs of open time have passed
        since week k0 began, and the open time of weeks [k0, k). CalendarError past BUSINESS_END."""
        before = 0
        while k0 < _LAST_WEEK:
            j, i = divmod(k0, _BLOCK_WEEKS)
            sums = self._block(j)
            target = sums[i] + need - before
            if sums[-1] >= target:
                at = bisect_left(sums, target, lo=i + 1)
                return j * _BLOCK_WEEKS + at - 1, before + sums[at - 1] - sums[i]
            before += sums[-1] - sums[i]
            k0 = (j + 1) * _BLOCK_WEEKS
        raise CalendarError("business_hours", f"no such open hours before {BUSINESS_END.year}")

    @staticmethod
    def _week_of(day: date) -> int:
        return (day - BUSINESS_EPOCH).days // 7

    def _walk(self, first: date, last: date, t: datetime, remaining: timedelta
              ) -> tuple[datetime | None, timedelta]:
        """Walk days first..last from instant t: (due, _) when `remaining` is reached, else
        (None, what is still remaining)."""
        day = first
        while day <= last:
            for ws, we in self._open_windows(day):
                if we <= t:
                    continue
                s = max(ws, t)
                available = we - s
                if remaining <= available:
                    return s + remaining, remaining
                remaining -= available
            day += timedelta(days=1)
        return None, remaining

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when `duration` of business time has passed since `start` (CalendarError
        when that is past BUSINESS_END)."""
        t = min(max(start.astimezone(timezone.utc), _LO), _HI)
        if start.astimezone(timezone.utc) > _HI:
            raise CalendarError("business_hours", f"no such open hours before {BUSINESS_END.year}")
        day = t.astimezone(self.zone).date()
        k = self._week_of(day)
        sunday = BUSINESS_EPOCH + timedelta(days=7 * k + 6)
        # a window may start the day before: the partial week is walked from there
        due, remaining = self._walk(day - timedelta(days=1), sunday, t, duration)
        if due is not None:
            return due
        need = -(-remaining // _US)
        week, before = self._week_reaching(k + 1, need)
        monday = BUSINESS_EPOCH + timedelta(days=7 * week)
        due, _ = self._walk(monday, monday + timedelta(days=6), _instant(monday, 0, self.zone) - timedelta(days=1),
                            remaining - before * _US)
        if due is None:  # cannot happen: the week was chosen because it holds what remains
            raise CalendarError("business_hours", "open hours miscounted")
        return due

    def _clipped(self, first: date, last: date, a: datetime, b: datetime) -> timedelta:
        total = timedelta(0)
        day = first
        while day <= last:
            for ws, we in self._open_windows(day):
                lo, hi = max(ws, a), min(we, b)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants (zero if end is not after start)."""
        a = min(max(start.astimezone(timezone.utc), _LO), _HI)
        b = min(max(end.astimezone(timezone.utc), _LO), _HI)
        if b <= a:
            return timedelta(0)
        da, db = a.astimezone(self.zone).date(), b.astimezone(self.zone).date()
        ka, kb = self._week_of(da), self._week_of(db)
        if kb - ka < 2:
            return self._clipped(da - timedelta(days=1), db, a, b)
        head_end = BUSINESS_EPOCH + timedelta(days=7 * ka + 6)
        tail_start = BUSINESS_EPOCH + timedelta(days=7 * kb)
        return (self._clipped(da - timedelta(days=1), head_end, a, b)
                + self._weeks_open(ka + 1, kb) * _US
                + self._clipped(tail_start, db, a, b))

    def is_open(self, at: datetime) -> bool:
        t = at.astimezone(timezone.utc)
        day = t.astimezone(self.zone).date()
        return any(ws <= t < we for d in (day - timedelta(days=1), day) for ws, we in self._open_windows(d))


_CHANGES: dict[tuple[str, int], frozenset[int]] = {}  # (zone, block) -> weeks with an offset change


def _offset_change_weeks(zone: ZoneInfo, j: int) -> frozenset[int]:
    """The weeks of block j during which `zone` changes its UTC offset (its offset at the week's
    first and last instant differ): per zone, not per calendar, so it is computed once a process
    for each of the few hundred zones. Assumes at most one change within a week."""
    key = (zone.key, j)
    hit = _CHANGES.get(key)
    if hit is not None:
        return hit
    out = set()
    first, stop = j * _BLOCK_WEEKS, min((j + 1) * _BLOCK_WEEKS, _LAST_WEEK)
    start = _instant(BUSINESS_EPOCH + timedelta(days=7 * first), 0, zone)
    before = start.astimezone(zone).utcoffset()
    for k in range(first, stop):
        end = _instant(BUSINESS_EPOCH + timedelta(days=7 * k + 7), 0, zone)
        after = (end - _US).astimezone(zone).utcoffset()
        at_end = end.astimezone(zone).utcoffset()
        if after != before or at_end != after:
            out.add(k)
        before = at_end
    hit = frozenset(out)
    _CHANGES[key] = hit
    return hit


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
    if len(pairs) > MAX_WINDOWS_PER_DAY:
        raise CalendarError(path, f"has {len(pairs)} windows; at most {MAX_WINDOWS_PER_DAY} a day "
                                  "(MAX_WINDOWS_PER_DAY)")
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
    for (_, e1), (s2, _) in itertools.pairwise(out):
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

