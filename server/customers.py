"""Counts about a contact's tickets and a ticket's messages, kept by the apply commit.

Why counts and not scans: a rule on `contact.open_tickets gte 3` is checked on every event, so the
number must be at hand when the event's snapshot is loaded (store/tickets.load reads the contact's
count hash in the same round trip as the contact) and kept current by the commit that changes it.

How it stays exact without being checked by the commit: every ticket's commit subtracts what the
ticket counted for before the event (its contact's `open` and creation-day bucket) and adds what it
counts for after. Those are HINCRBY deltas, which commute, and each ticket's commits are ordered by
the ticket's own check-and-set, so status transitions (open -> solved -> reopened), a ticket moving
from one contact to another, and an event re-run after a conflict (nothing was written) all leave
the counts right. A ticket stored before this existed counted for nothing, so its first commit
subtracts nothing (`automation.counted` says whether a ticket is counted).

There is no ticket deletion in the API; if one is added it must subtract the ticket's
contribution the same way (`deltas(ticket, None)`).

Pure: no Redis, no clock (`now` is passed in).
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from typing import Any

from server.automation import parse_time

__all__ = ["CLOSED", "WINDOW_DAYS", "RECENT_KEPT", "is_open", "contact_id", "deltas",
           "counts", "stored_counts", "count_message", "stat_writes", "with_counts", "without_counts",
           "MESSAGE_FIELDS", "CONTACT_COUNT_FIELDS"]

CLOSED = frozenset({"solved", "closed"})   # any other status counts as open
WINDOW_DAYS = 30                           # contact.tickets_30d
RECENT_KEPT = 50                           # tickets kept per contact in keys.contact_recent
MESSAGE_FIELDS = ("message_count", "customer_messages_since_agent")   # on the ticket, stored
CONTACT_COUNT_FIELDS = ("open_tickets", "tickets_30d")   # on ticket.contact during a pass only


def is_open(ticket: dict[str, Any] | None) -> bool:
    return ticket is not None and ticket.get("status") not in CLOSED


def contact_id(ticket: dict[str, Any] | None) -> str | None:
    c = (ticket or {}).get("contact")
    cid = c.get("id") if isinstance(c, dict) else None
    return cid if isinstance(cid, str) and cid else None


@functools.lru_cache(maxsize=1024)
def _ymd(day: date) -> str:
    """A day bucket's name, once per day: strftime of an aware datetime was ~5 us, and an event
    asked for three or four (deltas twice per pass and commit, the window's bounds)."""
    return day.strftime("%Y-%m-%d")


def _day_of(when: datetime) -> str:
    return _ymd(when.date())   # (date() is in when's own zone, as strftime's fields were)


def _day(ticket: dict[str, Any] | None) -> str | None:
    when = parse_time((ticket or {}).get("created_at"))
    return _day_of(when) if when else None


def _counted(ticket: dict[str, Any] | None) -> bool:
    auto = (ticket or {}).get("automation")
    return isinstance(auto, dict) and auto.get("counted") is True


def deltas(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[tuple[str, str], int]:
    """(contact id, stats field) -> increment, for a ticket going from `before` to `after`."""
    out: dict[tuple[str, str], int] = {}

    def add(ticket: dict[str, Any] | None, sign: int) -> None:
        cid = contact_id(ticket)
        if cid is None:
            return
        if is_open(ticket):
            out[(cid, "open")] = out.get((cid, "open"), 0) + sign
        day = _day(ticket)
        if day:
            out[(cid, "d:" + day)] = out.get((cid, "d:" + day), 0) + sign

    if _counted(before):
        add(before, -1)
    add(after, +1)
    return {k: v for k, v in out.items() if v}


def _stat(stats: dict[Any, Any], key: str) -> int:
    raw = stats.get(key, stats.get(key.encode(), 0)) if stats else 0
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def counts(stats: dict[Any, Any], before: dict[str, Any] | None, ticket: dict[str, Any],
           now: datetime) -> dict[str, int]:
    """contact.open_tickets and contact.tickets_30d for `ticket`'s contact as the event leaves it
    (the stored counts, `stats`, plus this event's own delta), clamped at 0."""
    cid = contact_id(ticket)
    if cid is None:
        return {"open_tickets": 0, "tickets_30d": 0}
    mine = {f: n for (c, f), n in deltas(before, {**ticket, "automation": None}).items() if c == cid}
    return stored_counts(stats, now, mine)


def stored_counts(stats: dict[Any, Any], now: datetime,
                  mine: dict[str, int] | None = None) -> dict[str, int]:
    """The counts in a contact's count hash, plus `mine` (field -> increment) if given."""
    mine = mine or {}
    first = _day_of(now - timedelta(days=WINDOW_DAYS))
    days: dict[str, int] = {}
    for key in stats or {}:
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name.startswith("d:"):
            days[name] = _stat(stats, name)
    for name, n in mine.items():
        if name.startswith("d:"):
            days[name] = days.get(name, 0) + n
    recent = sum(n for name, n in days.items() if name[2:] >= first)
    return {"open_tickets": max(0, _stat(stats, "open") + mine.get("open", 0)),
            "tickets_30d": max(0, recent)}


def count_message(ticket: dict[str, Any], event: dict[str, Any]) -> None:
    """Count a message event on the merged ticket (in place): ticket.message_count and
    ticket.customer_messages_since_agent (customer messages since the last agent message)."""
    for name in MESSAGE_FIELDS:
        if type(ticket.get(name)) is not int:
            ticket[name] = 0
    message = event.get("message")
    etype = event.get("type")
    if not (isinstance(message, dict) and isinstance(etype, str) and etype.startswith("message.")):
        return
    author = message.get("author") or ("agent" if etype == "message.sent" else "customer")
    ticket["message_count"] += 1
    if author == "customer":
        ticket["customer_messages_since_agent"] += 1
    elif author == "agent":
        ticket["customer_messages_since_agent"] = 0


def with_counts(ticket: dict[str, Any], numbers: dict[str, int]) -> dict[str, Any]:
    """The ticket the rules see: its contact carries open_tickets and tickets_30d."""
    c = ticket.get("contact")
    if not isinstance(c, dict):
        return ticket
    return {**ticket, "contact": {**c, **numbers}}


def without_counts(ticket: dict[str, Any]) -> dict[str, Any]:
    """The ticket as stored: the contact's counts are the count hash's, not the ticket's (they
    would be stale on the next event of another of the contact's tickets)."""
    c = ticket.get("contact")
    if not isinstance(c, dict) or not any(k in c for k in CONTACT_COUNT_FIELDS):
        return ticket
    return {**ticket, "contact": {k: v for k, v in c.items() if k not in CONTACT_COUNT_FIELDS}}


def stat_writes(keys: Any, workspace: str, before: dict[str, Any] | None,
                after: dict[str, Any], stats: dict[Any, Any], now: datetime,
                ticket_id: str) -> list[tuple[Any, ...]]:
    """The commit's writes for the counts: HINCRBYs, dropping day buckets past the window (of the
    loaded contact's hash: at most 32 fields stay), and the contact's recent-tickets index."""
    out: list[tuple[Any, ...]] = []
    for (owner, name), n in sorted(deltas(before, after).items()):
        out.append(("HINCRBY", keys.contact_stats(workspace, owner), name, n))
    cid = contact_id(after)
    if cid is not None and stats:
        last = _day_of(now - timedelta(days=WINDOW_DAYS + 1))
        old = [n for n in ((k.decode() if isinstance(k, bytes) else str(k)) for k in stats)
               if n.startswith("d:") and n[2:] < last]
        if old:
            out.append(("HDEL", keys.contact_stats(workspace, cid), *old))
    was = contact_id(before) if _counted(before) else None
    if was is not None and was != cid:
        out.append(("ZREM", keys.contact_recent(workspace, was), ticket_id))
    if cid is not None and (was != cid or before is None):
        when = parse_time(after.get("created_at"))
        recent = keys.contact_recent(workspace, cid)
        out.append(("ZADD", recent, int(when.timestamp()) if when else 0, ticket_id))
        out.append(("ZREMRANGEBYRANK", recent, 0, -(RECENT_KEPT + 1)))
    return out
