"""Business-hours arithmetic, computed with fixed instants (no clock)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from rules.calendar import Calendar, CalendarError

UTC = timezone.utc
OSLO_OFFICE = {"timezone": "Europe/Oslo",
               "week": {d: ["09:00", "17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
               "holidays": ["2026-12-25"]}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_inside_one_window() -> None:
    cal = Calendar.from_spec(OSLO_OFFICE)
    # Mon 2026-11-23 10:00 Oslo = 09:00Z (CET, +1)
    assert cal.add(utc(2026, 11, 23, 9, 0), timedelta(minutes=15)) == utc(2026, 11, 23, 9, 15)


def test_rolls_over_the_night_and_the_weekend() -> None:
    cal = Calendar.from_spec(OSLO_OFFICE)
    # Fri 2026-11-27 16:30 Oslo (15:30Z) + 1h -> 30 min Friday, 30 min from Mon 09:00 Oslo (08:00Z)
    assert cal.add(utc(2026, 11, 27, 15, 30), timedelta(hours=1)) == utc(2026, 11, 30, 8, 30)
    # Saturday: the clock starts on Monday morning
    assert cal.add(utc(2026, 11, 28, 12, 0), timedelta(minutes=15)) == utc(2026, 11, 30, 8, 15)


def test_holiday_is_skipped() -> None:
    cal = Calendar.from_spec(OSLO_OFFICE)
    # Thu 2026-12-24 16:00 Oslo + 2h: 1h Thursday, Friday 25th is a holiday, 1h Monday the 28th
    assert cal.add(utc(2026, 12, 24, 15, 0), timedelta(hours=2)) == utc(2026, 12, 28, 9, 0)


def test_dst_change_counts_real_hours() -> None:
    # A 24-hour Sunday window on 2026-10-25, when Oslo goes from +2 back to +1 at 03:00: 25 real hours.
    cal = Calendar.from_spec({"timezone": "Europe/Oslo", "week": {"sun": ["00:00", "24:00"]}})
    start = datetime(2026, 10, 25, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    end = datetime(2026, 10, 26, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert cal.elapsed(start, end) == timedelta(hours=25)
    assert cal.add(start, timedelta(hours=25)) == end
    # After the spring change (2026-03-29), 09:00 Oslo is 07:00Z, not 08:00Z.
    office = Calendar.from_spec(OSLO_OFFICE)
    assert office.add(utc(2026, 3, 27, 16, 0), timedelta(minutes=30)) == utc(2026, 3, 30, 7, 30)  # Fri 17:00 CET, closed


def test_elapsed_and_add_agree() -> None:
    cal = Calendar.from_spec(OSLO_OFFICE)
    start = utc(2026, 11, 20, 12, 34)
    for minutes in (1, 59, 480, 481, 2000, 5000):
        due = cal.add(start, timedelta(minutes=minutes))
        assert cal.elapsed(start, due) == timedelta(minutes=minutes)


def test_split_windows_and_is_open() -> None:
    cal = Calendar.from_spec({"timezone": "UTC", "week": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]}})
    assert cal.add(utc(2026, 11, 23, 11, 30), timedelta(hours=1)) == utc(2026, 11, 23, 13, 30)
    assert cal.is_open(utc(2026, 11, 23, 9, 0)) and not cal.is_open(utc(2026, 11, 23, 12, 30))


@pytest.mark.parametrize("spec, path", [
    ({"timezone": "Mars/Olympus", "week": {"mon": ["09:00", "17:00"]}}, "business_hours.timezone"),
    ({"timezone": "UTC", "week": {"mon": ["17:00", "09:00"]}}, "business_hours.week.mon"),
    ({"timezone": "UTC", "week": {"mon": ["9am", "17:00"]}}, "business_hours.week.mon[0]"),
    ({"timezone": "UTC", "week": {"someday": ["09:00", "17:00"]}}, "business_hours.week.someday"),
    ({"timezone": "UTC", "week": {}}, "business_hours.week"),
    ({"timezone": "UTC", "week": {"mon": ["09:00", "17:00"]}, "holidays": ["25/12/2026"]}, "business_hours.holidays[0]"),
    ({"timezone": "UTC", "week": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "business_hours.week.mon"),
])
def test_bad_calendars_name_the_path(spec: dict[str, object], path: str) -> None:
    with pytest.raises(CalendarError) as err:
        Calendar.from_spec(spec)
    assert err.value.path == path
