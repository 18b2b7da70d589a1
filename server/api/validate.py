"""Input validation for events and groups: every problem found, each with a path and a reason.

The size limits here are part of the contract (README "Limits"); a reason that cites one names it
and its maximum, so a client can tell which limit it hit."""

from __future__ import annotations

import re
from typing import Any

import orjson

from rules import ACTORS
from rules.fields import CONTROL as _CONTROL
from rules.fields import MAX_TAG_CHARS, MAX_TAGS
from server.api.query import did_you_mean
from server.automation import SERVICE_FIELDS, format_time, parse_time

__all__ = ["EVENT_TYPES", "STATUSES", "PRIORITIES", "validate_event", "GROUP_NAME", "MAX_ID",
           "MAX_TAGS", "MAX_TAG_CHARS", "MAX_GROUPS", "group_names_problems", "MAX_CUSTOM_BYTES", "AUTHORS", "EVENT_KEYS",
           "TICKET_KEYS", "CONTACT_KEYS", "COMPANY_KEYS", "MESSAGE_KEYS", "MAX_COMPANY_NAME",
           "MAX_DOMAIN", "ignored_hints", "ignored_problems"]

EVENT_TYPES = ("ticket.created", "ticket.updated", "message.received", "message.sent")
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
# Who wrote a message. `automation` too (rules/actors.py): a help desk reporting back a message one
# of our own rules sent, which the loop guard counts as generated.
AUTHORS = ACTORS
# The keys each object of an event may have (API.md "Events"); any other is not applied and is
# listed in the answer's `ignored` (with `?strict=true`, a 422). A client's own data goes in
# `custom`, which takes any keys.
EVENT_KEYS = frozenset({"id", "type", "occurred_at", "ticket", "message", "actor"})
TICKET_KEYS = frozenset({"id", "subject", "description", "status", "priority", "channel",
                         "department", "assignee", "tags", "custom", "contact"})
CONTACT_KEYS = frozenset({"id", "email", "name", "groups", "custom", "company"})
COMPANY_KEYS = frozenset({"id", "name", "domain", "groups", "custom"})
# auto_reply and headers: what the auto-reply guard reads (server/guards.py)
MESSAGE_KEYS = frozenset({"author", "body", "channel", "auto_reply", "headers"})
_KNOWN = {"": EVENT_KEYS, "ticket": TICKET_KEYS, "ticket.contact": CONTACT_KEYS,
          "ticket.contact.company": COMPANY_KEYS, "message": MESSAGE_KEYS}
MAX_IGNORED = 50  # keys listed in one event's `ignored`; any more are not applied either
MAX_KEY_CHARS = 100  # of an ignored key as listed (a longer one is cut, ending in …)
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_TEXT = ("subject", "description", "channel", "department", "assignee")
MAX_ID = 200  # characters of an event, ticket or contact id
# MAX_TAGS (tags on a ticket in one event, 100) and MAX_TAG_CHARS (characters of one tag or group
# name, 200) are rules/fields.py's: what rules' actions and scripts add is held to the same
MAX_GROUPS = 100  # groups of a contact in one event
MAX_CUSTOM_BYTES = 16 * 1024  # a `custom` object (ticket's, contact's, company's), as compact JSON
MAX_COMPANY_NAME = 200  # characters of a company's name in an event
MAX_DOMAIN = 253  # characters of a company's domain (the DNS name limit)
# Ids end up in store keys, logs and headers: no control characters (NUL, newlines, escapes):
# _CONTROL is rules/fields.py's CONTROL, the pattern tags and group names from rules are held to.

Problems = list[dict[str, str]]


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")


def _id(value: Any, path: str, problems: Problems) -> None:
    if not isinstance(value, str) or not value.strip():
        problems.append({"path": path, "reason": f"must be a non-empty string, got {_kind(value)}"})
    elif len(value) > MAX_ID:
        problems.append({"path": path, "reason": f"is {len(value)} characters; the id length "
                                                 f"limit is {MAX_ID} characters"})
    elif _CONTROL.search(value):
        problems.append({"path": path, "reason": "must not contain control characters"})


def _str_list(value: Any, path: str, problems: Problems, what: str, most: int) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append({"path": path, "reason": "must be a list of non-empty strings"})
    elif len(value) > most:
        problems.append({"path": path, "reason": f"has {len(value)} {what}; the limit is {most} "
                                                 f"{what}"})
    elif any(len(v) > MAX_TAG_CHARS for v in value):
        problems.append({"path": path, "reason": f"each of the {what} must be at most "
                                                 f"{MAX_TAG_CHARS} characters (the limit)"})


def group_names_problems(value: Any, path: str = "groups") -> Problems:
    """The one check of a list of group names, wherever one comes in (an event's contact or
    company, PUT /v1/contacts/{id}/groups, PUT /v1/companies/{id}/groups): non-empty strings, at
    most MAX_GROUPS of at most MAX_TAG_CHARS characters, no control characters -- group names
    are parts of store keys (keys.group_members), and "\x00" was the contact index's own marker:
    a ZADD on it failed a commit half-way (tests/server/test_attack_group_marker.py)."""
    problems: Problems = []
    _str_list(value, path, problems, "groups", MAX_GROUPS)
    if not problems and not all(g.strip() for g in value):
        problems.append({"path": path, "reason": "must be a list of non-empty strings"})
    elif not problems and any(_CONTROL.search(g) for g in value):
        problems.append({"path": path, "reason": "must not contain control characters"})
    return problems


def _obj(value: Any, path: str, problems: Problems) -> bool:
    if value is not None and not isinstance(value, dict):
        problems.append({"path": path, "reason": f"must be an object or null, got {_kind(value)}"})
        return False
    return isinstance(value, dict)


def _custom(value: Any, path: str, problems: Problems) -> None:
    if not _obj(value, path, problems):
        return
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # nested past what JSON output allows
        size = MAX_CUSTOM_BYTES + 1
    if size > MAX_CUSTOM_BYTES:
        problems.append({"path": path, "reason": f"is {size} bytes as JSON; the custom field size "
                                                 f"limit is {MAX_CUSTOM_BYTES} bytes"})


def _contact(c: Any, path: str, problems: Problems) -> None:
    if not _obj(c, path, problems):
        return
    if "id" in c:
        _id(c["id"], f"{path}.id", problems)
    for key in ("email", "name"):
        if key in c and c[key] is not None and not isinstance(c[key], str):
            problems.append({"path": f"{path}.{key}", "reason": "must be a string or null"})
    if "groups" in c and c["groups"] is not None:
        problems += group_names_problems(c["groups"], f"{path}.groups")
    if "custom" in c:
        _custom(c["custom"], f"{path}.custom", problems)
    if "company" in c:
        _company(c["company"], f"{path}.company", problems)


def _company(c: Any, path: str, problems: Problems) -> None:
    """`ticket.contact.company`: null (the contact leaves its company) or an object with an id."""
    if not _obj(c, path, problems):
        return
    _id(c.get("id"), f"{path}.id", problems)
    for key, most, what in (("name", MAX_COMPANY_NAME, "company name"),
                            ("domain", MAX_DOMAIN, "domain")):
        value = c.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append({"path": f"{path}.{key}",
                             "reason": f"must be a string or null, got {_kind(value)}"})
        elif len(value) > most:
            problems.append({"path": f"{path}.{key}", "reason": f"is {len(value)} characters; "
                             f"the {what} length limit is {most} characters"})
        elif _CONTROL.search(value):
            problems.append({"path": f"{path}.{key}", "reason": "must not contain control characters"})
    if "groups" in c and c["groups"] is not None:
        problems += group_names_problems(c["groups"], f"{path}.groups")
    if "custom" in c:
        _custom(c["custom"], f"{path}.custom", problems)


def _ticket(t: Any, path: str, problems: Problems) -> None:
    if not isinstance(t, dict):
        problems.append({"path": path, "reason": f"must be an object with an `id`, got {_kind(t)}"})
        return
    _id(t.get("id"), f"{path}.id", problems)
    for key in _TEXT:
        if key in t and t[key] is not None and not isinstance(t[key], str):
            problems.append({"path": f"{path}.{key}",
                             "reason": f"must be a string or null, got {_kind(t[key])}"})
    if "status" in t and t["status"] not in STATUSES:
        problems.append({"path": f"{path}.status", "reason": f"must be one of {', '.join(STATUSES)}"})
    if "priority" in t and t["priority"] not in PRIORITIES:
        problems.append({"path": f"{path}.priority",
                         "reason": f"must be one of {', '.join(PRIORITIES)}"})
    if "tags" in t and t["tags"] is not None:
        before = len(problems)
        _str_list(t["tags"], f"{path}.tags", problems, "tags", MAX_TAGS)
        # tags are shown in the admin page, logs and webhooks and matched by rules: no NUL, newline
        # or escape sequence in them, like ids and group names
        if len(problems) == before and any(_CONTROL.search(tag) for tag in t["tags"]):
            problems.append({"path": f"{path}.tags", "reason": "must not contain control characters"})
    if "custom" in t:
        _custom(t["custom"], f"{path}.custom", problems)
    if "contact" in t:
        _contact(t["contact"], f"{path}.contact", problems)


def _unknown(obj: dict[str, Any], where: str, out: list[str]) -> None:
    for key in obj:
        if key not in _KNOWN[where] and len(out) < MAX_IGNORED:
            key = key if len(key) <= MAX_KEY_CHARS else key[:MAX_KEY_CHARS] + "…"
            out.append(f"{where}.{key}" if where else key)


def _known(obj: dict[str, Any], where: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k in _KNOWN[where]}


def _ignored(obj: dict[str, Any]) -> list[str]:
    """Paths of the event's keys that are not part of the event format (bounded)."""
    out: list[str] = []
    _unknown(obj, "", out)
    ticket = obj.get("ticket")
    if isinstance(ticket, dict):
        _unknown(ticket, "ticket", out)
        if isinstance(ticket.get("contact"), dict):
            _unknown(ticket["contact"], "ticket.contact", out)
            if isinstance(ticket["contact"].get("company"), dict):
                _unknown(ticket["contact"]["company"], "ticket.contact.company", out)
    if isinstance(obj.get("message"), dict):
        _unknown(obj["message"], "message", out)
    return out


def ignored_hints(ignored: list[str]) -> dict[str, str]:
    """{ignored path: the known key it is probably a misspelling of}, where one is close."""
    hints = {}
    for path in ignored:
        where, _, key = path.rpartition(".")
        known = _KNOWN.get(where)
        hint = did_you_mean(key, known) if known is not None else None
        if hint:
            hints[path] = hint
    return hints


def ignored_problems(ignored: list[str], path: str = "") -> Problems:
    """The ignored keys as problems (?strict=true), each saying what it might have meant."""
    p = f"{path}." if path else ""
    hints = ignored_hints(ignored)
    problems = []
    for key in ignored:
        if key in hints:
            reason = f"is not part of the event format; did you mean `{hints[key]}`?"
        elif key.startswith("ticket.") and key[7:] in SERVICE_FIELDS:
            reason = "is set by the service; an event cannot set it (leave it out)"
        elif key.startswith("message."):
            reason = f"is not part of a message (it has {', '.join(sorted(MESSAGE_KEYS))})"
        elif key.startswith("ticket.contact.company."):
            reason = ("is not part of a company (its own data goes in "
                      "`ticket.contact.company.custom`)")
        elif key.startswith("ticket.contact."):
            reason = "is not part of a contact (its own data goes in `ticket.contact.custom`)"
        elif key.startswith("ticket."):
            reason = "is not part of a ticket (its own data goes in `ticket.custom`)"
        else:
            reason = "is not part of an event (ticket data goes in `ticket`, yours in " \
                     "`ticket.custom`)"
        problems.append({"path": f"{p}{key}", "reason": reason})
    return problems


def validate_event(obj: Any, received_at: str, *, path: str = "",
                   require_id: bool = True) -> tuple[dict[str, Any] | None, Problems]:
    """Check one event; returns (normalized event, problems). Normalized: occurred_at defaulted
    to the receive time and written as UTC; unknown top-level keys dropped; the paths of every
    key that is not part of the format listed in `ignored` (left out when there are none)."""
    problems: Problems = []
    p = f"{path}." if path else ""
    if not isinstance(obj, dict):
        return None, [{"path": path, "reason": f"an event must be an object, got {_kind(obj)}"}]
    if require_id or "id" in obj:
        _id(obj.get("id"), f"{p}id", problems)
    etype = obj.get("type")
    if etype not in EVENT_TYPES:
        problems.append({"path": f"{p}type", "reason": f"must be one of {', '.join(EVENT_TYPES)}"})
    occurred = obj.get("occurred_at")
    if occurred is not None:
        if parse_time(occurred) is None:
            problems.append({"path": f"{p}occurred_at",
                             "reason": "must be an RFC 3339 timestamp like 2026-11-23T08:00:00Z"})
    _ticket(obj.get("ticket"), f"{p}ticket", problems)
    actor = obj.get("actor")
    if actor is not None and actor not in ACTORS:
        problems.append({"path": f"{p}actor", "reason": f"must be one of {', '.join(ACTORS)} or null "
                                                        f"(left out: derived from the message author and type)"})
    message = obj.get("message")
    if isinstance(etype, str) and etype.startswith("message."):
        if not isinstance(message, dict):
            problems.append({"path": f"{p}message",
                             "reason": f"{etype} needs a message object (author, body, channel)"})
    if isinstance(message, dict):
        for key in ("author", "body", "channel"):
            if key in message and message[key] is not None and not isinstance(message[key], str):
                problems.append({"path": f"{p}message.{key}", "reason": "must be a string or null"})
        if isinstance(message.get("author"), str) and message["author"] not in AUTHORS:
            problems.append({"path": f"{p}message.author", "reason": f"must be one of "
                             f"{', '.join(AUTHORS)} or null (left out: agent for message.sent, "
                             f"customer for message.received), got {message['author'][:100]!r}"})
    elif message is not None and not (isinstance(etype, str) and etype.startswith("message.")):
        problems.append({"path": f"{p}message", "reason": "must be an object or null"})
    if problems:
        return None, problems
    at = parse_time(occurred) if occurred else parse_time(received_at)
    ticket = _known(obj["ticket"], "ticket")
    if isinstance(ticket.get("contact"), dict):
        ticket["contact"] = _known(ticket["contact"], "ticket.contact")
        if isinstance(ticket["contact"].get("company"), dict):
            ticket["contact"]["company"] = _known(ticket["contact"]["company"],
                                                  "ticket.contact.company")
    event = {"id": obj.get("id"), "type": etype,
             "occurred_at": format_time(at) if at else received_at, "ticket": ticket}
    if message is not None:
        event["message"] = _known(message, "message") if isinstance(message, dict) else message
    if actor is not None:
        event["actor"] = actor
    ignored = _ignored(obj)
    if ignored:
        event["ignored"] = ignored
    return event, []
