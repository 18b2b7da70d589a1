"""A rule's actions checked, when the rule is saved, against the bounds their run applies.

The run bounds what an `http_request` or `webhook` action sends (the broker: header count, size,
names and line breaks, the URL's length and characters), what a `map` JSONPath can read
(server/scripting.py json_path) and how late a `snooze` can last (server/timekeeping.py
LAST_TIME). A rule past one of them saved and then failed, or was capped, at every run; this
answers the 422 at the save instead, with the run's own constants and checks (one copy each).
Not in the engine (rules/): a stored rule the engine refuses is skipped by the worker
(server/rulecache.py), and rules saved before these checks must keep running as they did.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rules.durations import parse_duration, parse_timestamp
from sandbox.allowlist import _BAD_URL_CHARS, MAX_URL_CHARS
from sandbox.broker import header_problem
from sandbox.convert import MAX_HEADER_CHARS, MAX_HEADERS, fields_problem
from server.scripting import json_path_problem
from server.timekeeping import LAST_TIME

__all__ = ["action_bound_problems"]

_LAST = LAST_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")


def action_bound_problems(rule: Any) -> list[dict[str, str]]:
    """Every action of `rule` past a run-time bound, as {path, reason}. Values of the wrong type
    are the engine's to report (rules.validate_rule), so they pass here."""
    actions = rule.get("actions") if isinstance(rule, dict) else None
    if type(actions) is not list:
        return []
    out: list[dict[str, str]] = []
    for i, action in enumerate(actions):
        if type(action) is not dict:
            continue
        check = _CHECKS.get(str(action.get("type")))
        if check is not None:
            out += [{"path": f"actions[{i}].{key}", "reason": why} for key, why in check(action)]
    return out


def _request(action: dict[str, Any]) -> list[tuple[str, str]]:
    return [*_url(action.get("url")), *_headers(action.get("headers")), *_map(action.get("map"))]


def _url(url: Any) -> list[tuple[str, str]]:
    """The broker's URL check (sandbox/broker.py _check) on what the engine's URL shape lets
    through: past MAX_URL_CHARS, or a control character or backslash that is not whitespace."""
    if type(url) is not str:
        return []
    if len(url) > MAX_URL_CHARS:
        return [("url", f"is {len(url)} characters; the limit (MAX_URL_CHARS) is {MAX_URL_CHARS}")]
    bad = _BAD_URL_CHARS.search(url)
    if bad is not None and not bad.group().isspace():
        return [("url", "contains a control character or a backslash, which an outbound request may not carry")]
    return []


def _headers(headers: Any) -> list[tuple[str, str]]:
    """The broker's header bounds (sandbox/convert.py) and its check of each header, which reads
    at most MAX_HEADERS names: a dict over the count is one problem, however big."""
    if type(headers) is not dict:
        return []
    over = fields_problem(headers, "headers", MAX_HEADERS, MAX_HEADER_CHARS)
    if over is not None:
        return [("headers", f"{over} (MAX_HEADERS {MAX_HEADERS}, MAX_HEADER_CHARS {MAX_HEADER_CHARS})")]
    return [(f"headers.{name}", why) for name, value in headers.items()
            if type(name) is str and type(value) is str and (why := header_problem(name, value))]


def _map(mapping: Any) -> list[tuple[str, str]]:
    if type(mapping) is not dict:
        return []
    return [(f"map.{name}", why) for name, path in mapping.items()
            if type(path) is str and path.startswith("$") and (why := json_path_problem(path))]


def _snooze(action: dict[str, Any]) -> list[tuple[str, str]]:
    """A snooze is capped at LAST_TIME by the run (server/timekeeping.py): an `until` past it,
    or a `for` that from now on always ends past it, is refused instead of cut short."""
    until = parse_timestamp(action.get("until"))
    if until is not None and until > LAST_TIME:
        return [("until", f"is past {_LAST}, the latest time a snooze can last until (LAST_TIME)")]
    span = parse_duration(action.get("for"))
    if span is not None and span > LAST_TIME - datetime.now(UTC):
        return [("for", f"{action['for']} from now ends past {_LAST}, the latest time a snooze can "
                        f"last until (LAST_TIME)")]
    return []


_CHECKS = {"http_request": _request, "webhook": _request, "snooze": _snooze}
