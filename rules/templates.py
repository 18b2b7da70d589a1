"""`{{ticket.subject}}`-style templates: plain data lookups, never evaluation.

Anything between `{{` and `}}` is a placeholder; one that is not a dotted path renders empty. A path
is a dotted path into the ticket, its contact, the event's message or vars. Paths are looked up key
by key in dicts only (no attributes, no calls, no indexing), so `{{ticket.__class__}}` or
`{{ticket.subject.upper}}` render as empty, like any unknown placeholder.

A template is written by a tenant and rendered on a process every workspace shares, so its cost is
bounded by construction: rendering is one left-to-right scan (`str.find` for `{{`, then for `}}`;
a `{{` with no `}}` after it ends the scan, so no input is looked at twice -- the old regex
`\\{\\{(.*?)\\}\\}` retried every `{{` against the whole rest of the text, quadratic on `"{{" * N`),
templates are at most MAX_TEMPLATE_CHARS (checked when the rule is compiled), and the rendered text
stops at MAX_RENDERED_CHARS (placeholders can resolve to large values: 800 placeholders of a 64 KiB
subject would be 50 MB).
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_TEMPLATE_CHARS = 16 * 1024   # a template's length, refused at compile time past this
MAX_RENDERED_CHARS = 64 * 1024   # a rendered message's length; the rest is cut, with TRUNCATED
TRUNCATED = "\u2026[truncated]"
_PATH = re.compile(r"[A-Za-z0-9_.\-]+")
_MISSING = object()


def template_problem(template: Any) -> str | None:
    """Why `template` cannot be used (too long), or None. Type checks are the caller's."""
    if isinstance(template, str) and len(template) > MAX_TEMPLATE_CHARS:
        return (f"template is {len(template)} characters; the limit (MAX_TEMPLATE_CHARS) is "
                f"{MAX_TEMPLATE_CHARS}")
    return None


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


def _text(value: Any, room: int) -> str:
    """The value as text, at most about `room` characters (a list stops once it has filled it)."""
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value[:room]
    if type(value) is list:
        parts: list[str] = []
        used = 0
        for v in value:
            if used > room:
                break
            part = _text(v, room - used)
            parts.append(part)
            used += len(part) + 2
        return ", ".join(parts)[:room]
    return json.dumps(value, ensure_ascii=False)[:room]


def render(template: str, ticket: dict[str, Any], event: dict[str, Any], vars: dict[str, Any]) -> str:
    """The template with each placeholder replaced; at most MAX_RENDERED_CHARS (+ TRUNCATED)."""
    out: list[str] = []
    size = 0
    pos, n = 0, len(template)
    while pos < n and size <= MAX_RENDERED_CHARS:
        start = template.find("{{", pos)
        end = template.find("}}", start + 2) if start >= 0 else -1
        if end < 0:  # no placeholder left: the rest is literal text
            piece = template[pos:]
            pos = n
        else:
            path = template[start + 2:end].strip()
            value = _resolve(path, ticket, event, vars) if _PATH.fullmatch(path) else _MISSING
            out.append(template[pos:start])
            size += start - pos
            piece = _text(value, max(0, MAX_RENDERED_CHARS - size + 1))
            pos = end + 2
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    if size > MAX_RENDERED_CHARS or pos < n:
        return text[:MAX_RENDERED_CHARS] + TRUNCATED
    return text
