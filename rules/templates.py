"""`{{ticket.subject}}`-style templates: plain data lookups, never evaluation.

Anything between `{{` and `}}` is a placeholder; one that is not a dotted path renders empty. A path is a dotted path into the ticket, its contact, the event's message or vars. Paths are
looked up key by key in dicts only (no attributes, no calls, no indexing), so `{{ticket.__class__}}`
or `{{ticket.subject.upper}}` render as empty, like any unknown placeholder.
"""
from __future__ import annotations

import json
import re
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PATH = re.compile(r"^[A-Za-z0-9_.\-]+$")
_MISSING = object()


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if type(obj) is not dict:
            return _MISSING
        obj = obj.get(part, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


def _resolve(path: str, ticket: dict[str, Any], event: dict[str, Any], vars: dict[str, Any]) -> Any:
    root, _, rest = path.partition(".")
    if not rest:
        return _MISSING
    if root == "ticket":
        if rest.startswith("custom."):  # custom keys are flat: the rest is one key
            custom = ticket.get("custom")
            return custom.get(rest[7:], _MISSING) if type(custom) is dict else _MISSING
        return _dig(ticket, rest)
    if root == "contact":
        contact = ticket.get("contact")
        if rest.startswith("custom.") and type(contact) is dict:
            custom = contact.get("custom")
            return custom.get(rest[7:], _MISSING) if type(custom) is dict else _MISSING
        return _dig(contact, rest)
    if root == "message":
        return _dig(event.get("message"), rest)
    if root == "vars":
        return vars.get(rest, _MISSING)
    return _MISSING


def _text(value: Any) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if type(value) is list:
        return ", ".join(_text(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


def render(template: str, ticket: dict[str, Any], event: dict[str, Any], vars: dict[str, Any]) -> str:
    def one(m: re.Match[str]) -> str:
        path = m.group(1).strip()
        return _text(_resolve(path, ticket, event, vars)) if _PATH.fullmatch(path) else ""
    return _PLACEHOLDER.sub(one, template)
