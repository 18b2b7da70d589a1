"""One timestamp grammar (rules.parse_timestamp) behind every place that reads a time: event
occurred_at, a rule test's `now`, stored times. RFC 3339 with an offset; no dates alone, no naive
times; a fraction past microseconds is cut, not refused."""

from datetime import UTC, datetime

import pytest

from rules import format_timestamp, parse_timestamp
from server.api.validate import validate_event
from server.automation import format_time, parse_time

GOOD = [
    ("2026-11-23T08:00:00Z", datetime(2026, 11, 23, 8, tzinfo=UTC)),
    ("2026-11-23t08:00:00z", datetime(2026, 11, 23, 8, tzinfo=UTC)),
    ("2026-11-23 09:00:00+01:00", datetime(2026, 11, 23, 8, tzinfo=UTC)),
    ("2026-11-23T08:00:00.123456789Z", datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)),
]
BAD = ["2026-11-23", "2026-11-23T08:00:00", "2026-11-23T08:00Z", "yesterday", "",
       "2026-11-23T08:00:00+0100", "٢٠٢٦-11-23T08:00:00Z", 20261123, None]


@pytest.mark.parametrize("text,expected", GOOD)
def test_the_one_grammar_reads_rfc3339_with_an_offset(text, expected):
    assert parse_timestamp(text) == expected
    assert parse_time(text) == expected and parse_time(text).tzinfo == UTC


@pytest.mark.parametrize("text", BAD)
def test_dates_naive_times_and_other_digits_are_not_timestamps(text):
    assert parse_timestamp(text) is None
    assert parse_time(text) is None


@pytest.mark.parametrize("text", [t for t in BAD if isinstance(t, str) and t])
def test_an_event_with_such_an_occurred_at_is_refused_by_path(text):
    event = {"id": "e1", "type": "ticket.created", "occurred_at": text, "ticket": {"id": "t1"}}
    _, problems = validate_event(event, "2026-11-23T08:00:00Z")
    assert [p["path"] for p in problems] == ["occurred_at"]


def test_one_format_for_written_times():
    when = datetime(2026, 11, 23, 8, 0, 0, 5, tzinfo=UTC)
    assert format_time(when) == format_timestamp(when) == "2026-11-23T08:00:00.000005Z"
    assert format_time(when.replace(microsecond=0)) == "2026-11-23T08:00:00Z"
