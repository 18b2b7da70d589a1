"""Input validation for events and groups: every problem found, each with a path and a reason."""

from __future__ import annotations

import re
from typing import Any

from server.automation import format_time, parse_time

__all__ = ["EVENT_TYPES", "STATUSES", "PRIORITIES", "validate_event", "GROUP_NAME"]

EVENT_TYPES = ("ticket.created", "ticket.updated", "message.received", "message.sent")
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_TEXT = ("subject", "description", "channel", "department", "assignee")
_MAX_ID = 200

Problems = list[dict[str, str]]


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")


def _id(value: Any, path: str, problems: Problems) -> None:
    if not isinstance(value, str) or not value.strip():
        problems.append({"path": path, "reason": f"must be a non-empty string, got {_kind(value)}"})
    elif len(value) > _MAX_ID:
        problems.append({"path": path, "reason": f"must be at most {_MAX_ID} characters"})


def _str_list(value: Any, path: str, problems: Problems) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append({"path": path, "reason": "must be a list of non-empty strings"})


def _obj(value: Any, path: str, problems: Problems) -> bool:
    if value is not None and not isinstance(value, dict):
        problems.append({"path": path, "reason": f"must be an object or null, got {_kind(value)}"})
        return False
    return isinstance(value, dict)


def _contact(c: Any, path: str, problems: Problems) -> None:
    if not _obj(c, path, problems):
        return
    if "id" in c:
        _id(c["id"], f"{path}.id", problems)
    for key in ("email", "name"):
        if key in c and c[key] is not None and not isinstance(c[key], str):
            problems.append({"path": f"{path}.{key}", "reason": "must be a string or null"})
    if "groups" in c and c["groups"] is not None:
        _str_list(c["groups"], f"{path}.groups", problems)
    if "custom" in c:
        _obj(c["custom"], f"{path}.custom", problems)


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
        _str_list(t["tags"], f"{path}.tags", problems)
    if "custom" in t:
        _obj(t["custom"], f"{path}.custom", problems)
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
    return event, []
