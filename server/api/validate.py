"""Input validation for events and groups: every problem found, each with a path and a reason.

The size limits here are part of the contract (README "Limits"); a reason that cites one names it
and its maximum, so a client can tell which limit it hit."""

from __future__ import annotations

import re
from typing import Any

import orjson

from rules import ACTORS
from server.automation import format_time, parse_time

__all__ = ["EVENT_TYPES", "STATUSES", "PRIORITIES", "validate_event", "GROUP_NAME", "MAX_ID",
           "MAX_TAGS", "MAX_TAG_CHARS", "MAX_GROUPS", "MAX_CUSTOM_BYTES"]

EVENT_TYPES = ("ticket.created", "ticket.updated", "message.received", "message.sent")
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_TEXT = ("subject", "description", "channel", "department", "assignee")
MAX_ID = 200  # characters of an event, ticket or contact id
MAX_TAGS = 100  # tags on a ticket in one event
MAX_TAG_CHARS = 200  # characters of one tag or group name in an event
MAX_GROUPS = 100  # groups of a contact in one event
MAX_CUSTOM_BYTES = 16 * 1024  # a `custom` object (ticket's or contact's), as compact JSON
# Ids end up in store keys, logs and headers: no control characters (NUL, newlines, escapes).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

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
        _str_list(c["groups"], f"{path}.groups", problems, "groups", MAX_GROUPS)
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
        _str_list(t["tags"], f"{path}.tags", problems, "tags", MAX_TAGS)
    if "custom" in t:
        _custom(t["custom"], f"{path}.custom", problems)
    if "contact" in t:
        _contact(t["contact"], f"{path}.contact", problems)


def validate_event(obj: Any, received_at: str, *, path: str = "",
                   require_id: bool = True) -> tuple[dict[str, Any] | None, Problems]:
    """Check one event; returns (normalized event, problems). Normalized: occurred_at defaulted
    to the receive time and written as UTC; unknown top-level keys dropped."""
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
        if not isinstance(occurred, str) or not _RFC3339.match(occurred) or not parse_time(occurred):
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
    elif message is not None and not (isinstance(etype, str) and etype.startswith("message.")):
        problems.append({"path": f"{p}message", "reason": "must be an object or null"})
    if problems:
        return None, problems
    at = parse_time(occurred) if occurred else parse_time(received_at)
    event = {"id": obj.get("id"), "type": etype,
             "occurred_at": format_time(at) if at else received_at, "ticket": obj["ticket"]}
    if message is not None:
        event["message"] = message
    if actor is not None:
        event["actor"] = actor
    return event, []
