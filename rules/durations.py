"""Durations ("1h30m") and RFC 3339 timestamps: the only time formats rules accept."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")  # ASCII digits only
# RFC 3339 date-time; a space may stand for the "T" (RFC 3339 section 5.6 allows it).
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)  # the one timestamp grammar: event times, rule and SLA times, stored times, query parameters
_MAX_TIMEDELTA_SECONDS = 999_999_999 * 86_400  # timedelta's own limit


def duration_seconds(text: object) -> int | None:
    """`"90s"`, `"5m"`, `"1h30m"`, `"2d"` -> whole seconds, unbounded; None if not a duration > 0."""
    if not isinstance(text, str) or not text or len(text) > 200:
        return None
    m = _DURATION.fullmatch(text)
    if m is None:
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    return seconds if seconds > 0 else None


def parse_duration(text: object) -> timedelta | None:
    """A duration as a timedelta; None when it is not one, or too long to add to a time (past
    about 2.7 million years). Conditions compare `duration_seconds` instead: no upper bound."""
    seconds = duration_seconds(text)
    if seconds is None or seconds > _MAX_TIMEDELTA_SECONDS:
        return None
    return timedelta(seconds=seconds)


def parse_timestamp(value: object) -> datetime | None:
    """An RFC 3339 string -> aware datetime; None when the value is not one (never raises).
    An offset is required; a fraction past microseconds is cut to microseconds."""
    if not isinstance(value, str) or _TIMESTAMP.fullmatch(value) is None:
        return None
    text = value.replace("t", "T").replace(" ", "T").replace("z", "Z")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # fromisoformat takes at most microseconds
        text = text.replace(frac.group(0), "." + frac.group(1)[:6], 1)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def aware(now: datetime | None) -> datetime:
    """The evaluation clock: the current time by default, a naive datetime read as UTC."""
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        return now.replace(tzinfo=timezone.utc)
    return now


def format_timestamp(when: datetime) -> str:
    """Aware datetime -> RFC 3339 UTC string with a Z (seconds precision, microseconds if any)."""
    text = when.astimezone(timezone.utc).isoformat()
    return text.replace("+00:00", "Z")
