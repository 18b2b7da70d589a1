"""Business-time arithmetic is bounded (rules/calendar.py): whole weeks from prefix sums, sizes
limited at compile time; checked against the old day-by-day walk as an oracle."""
from __future__ import annotations

import random
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from rules import RuleError, compile_rules
from rules.calendar import MAX_HOLIDAYS, MAX_WINDOWS_PER_DAY, Calendar, CalendarError
from rules.sla import compile_policy

UTC = timezone.utc
ZONES = ["UTC", "Europe/Oslo", "America/New_York", "Australia/Lord_Howe", "America/Havana",
         "Asia/Tehran", "Africa/Casablanca", "Pacific/Apia", "America/Sao_Paulo"]


# -- the oracle: the old walk, day by day (slow, correct) ------------------------------------

def old_add(cal: Calendar, start: datetime, duration: timedelta) -> datetime | None:
    remaining = duration
    t = start.astimezone(UTC)
    day = t.astimezone(cal.zone).date() - timedelta(days=1)
    for _ in range(3 * 366):
        for ws, we in cal._open_windows(day):
            if we <= t:
                continue
            s = max(ws, t)
            if remaining <= we - s:
                return s + remaining
            remaining -= we - s
        day += timedelta(days=1)
    return None


def old_elapsed(cal: Calendar, start: datetime, end: datetime) -> timedelta:
    a, b = start.astimezone(UTC), end.astimezone(UTC)
    total = timedelta(0)
    if b <= a:
        return total
    day = a.astimezone(cal.zone).date() - timedelta(days=1)
    while day <= b.astimezone(cal.zone).date():
        for ws, we in cal._open_windows(day):
            lo, hi = max(ws, a), min(we, b)
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total


def _random_calendar(rng: random.Random, zone: str, around: date) -> Calendar:
    week: dict[str, Any] = {}
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        if rng.random() < 0.25:
            continue
        cuts = sorted(rng.sample(range(0, 24 * 60 + 1, 30), 2 * rng.randint(1, 3)))
        windows = []
        for s, e in zip(cuts[::2], cuts[1::2]):
            if e > s:
                windows.append([f"{s // 60:02d}:{s % 60:02d}" if s < 1440 else "24:00",
                                f"{e // 60:02d}:{e % 60:02d}" if e < 1440 else "24:00"])
        if windows:
            week[day] = windows
    if not week:
        week["mon"] = ["00:00", "24:00"]
    holidays = sorted({(around + timedelta(days=rng.randint(-60, 200))).isoformat()
                       for _ in range(rng.randint(0, 12))})
    return Calendar.from_spec({"timezone": zone, "week": week, "holidays": holidays})


@pytest.mark.parametrize("zone", ZONES)
def test_add_and_elapsed_agree_with_the_old_walk(zone: str) -> None:
    rng = random.Random(zone)
    for _ in range(60):
        base = datetime(rng.choice([1975, 2003, 2011, 2026, 2031]), rng.choice([1, 3, 4, 9, 10, 11, 12]),
                        rng.randint(1, 28), rng.randint(0, 23), rng.choice([0, 15, 30, 59]), tzinfo=UTC)
        cal = _random_calendar(rng, zone, base.date())
        start = base + timedelta(minutes=rng.randint(-3000, 3000))
        end = start + timedelta(minutes=rng.randint(0, 60 * 24 * rng.choice([1, 10, 40, 200])))
        assert cal.elapsed(start, end) == old_elapsed(cal, start, end), (zone, start, end)
        span = timedelta(minutes=rng.randint(0, 60 * rng.choice([1, 10, 100, 1000])))
        want = old_add(cal, start, span)
        if want is not None:
            assert cal.add(start, span) == want, (zone, start, span)
            assert cal.elapsed(start, want) == span


def test_a_sparse_calendar_and_an_ancient_timestamp_are_fast() -> None:
    """719 one-minute windows on Mondays and occurred_at 1990 took 5.7 s; year 1 took minutes."""
    windows = [[f"{h:02d}:{m:02d}", f"{h:02d}:{m + 1:02d}"] for h in range(0, 24, 2) for m in (0,)]
    cal = {"timezone": "Europe/Oslo", "week": {d: windows for d in ("mon", "wed")},
           "holidays": [f"{y}-12-25" for y in range(1990, 2030)]}
    rs = compile_rules([{"id": f"old-{span}", "name": span, "triggers": ["time.reached"],
                         "conditions": {"field": "custom.at", "op": "older_than_business",
                                        "value": span, "calendar": cal},
                         "actions": [{"type": "add_tags", "tags": [span]}]}
                        for span in ("1h", "500h", "100000h")])
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    for stamp in ("1990-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2026-12-01T00:00:00Z",
                  "9999-12-31T00:00:00Z"):
        t0 = time.process_time()
        for _ in range(20):
            ev = rs.evaluate({"type": "time.reached"}, {"custom": {"at": stamp}}, now=now)
            rs.next_check({"custom": {"at": stamp}}, now=now)
        assert time.process_time() - t0 < 1.0, stamp
        # 24 open minutes a week: 500h is 24 years of them; 100000h is past 2200 (never).
        # Business time before 1900 is not counted: year 1 counts from 1900.
        want = ["old-1h", "old-500h"] if stamp.startswith(("1990", "0001")) else []
        assert ev.matched == want, stamp


def test_calendar_sizes_are_limited() -> None:
    many = [[f"{h:02d}:00", f"{h:02d}:30"] for h in range(MAX_WINDOWS_PER_DAY + 1)]
    with pytest.raises(CalendarError) as info:
        Calendar.from_spec({"week": {"mon": many}})
    assert "MAX_WINDOWS_PER_DAY" in info.value.reason
    Calendar.from_spec({"week": {"mon": many[:MAX_WINDOWS_PER_DAY]}})
    days = [(date(2000, 1, 1) + timedelta(days=i)).isoformat() for i in range(MAX_HOLIDAYS + 1)]
    with pytest.raises(CalendarError) as info:
        Calendar.from_spec({"week": {"mon": ["09:00", "17:00"]}, "holidays": days})
    assert "MAX_HOLIDAYS" in info.value.reason
    with pytest.raises(RuleError):
        compile_policy({"name": "p", "targets": {"resolution": "1h"},
                        "business_hours": {"week": {"mon": many}}})


def test_sla_due_times_are_bounded_too() -> None:
    policy = compile_policy({"name": "p", "targets": {"resolution": "100000h"},
                             "business_hours": {"timezone": "UTC", "week": {"mon": ["09:00", "09:01"]}}})
    t0 = time.process_time()
    due = policy.add(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=100000))
    assert time.process_time() - t0 < 1.0
    assert due.year == 9999  # past the calendar's range: never
