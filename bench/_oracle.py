"""A plain reading of API.md's semantics for the ops the bench generates (conditions only).

Used as a fourth opinion in the agreement check, so a disagreement can be pinned on one engine,
and to tune the generator's selectivity before/without the deskflow engine.
"""

from __future__ import annotations

import re
from typing import Any

_MISSING = None


def _read(f: str, event: dict[str, Any], ticket: dict[str, Any]) -> Any:
    if f.startswith("message."):
        msg = event.get("message")
        return msg.get(f.split(".", 1)[1]) if isinstance(msg, dict) else _MISSING
    if f.startswith("custom."):
        custom = ticket.get("custom")
        return custom.get(f.split(".", 1)[1]) if isinstance(custom, dict) else _MISSING
    if f == "contact.groups":
        contact = ticket.get("contact")
        return contact.get("groups") if isinstance(contact, dict) else _MISSING
    return ticket.get(f)


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return False


def holds(c: dict[str, Any], event: dict[str, Any], ticket: dict[str, Any]) -> bool:
    x, op, v = _read(c["field"], event, ticket), c["op"], c.get("value")
    if op == "is":
        return _eq(x, v)
    if op == "in":
        return any(_eq(x, item) for item in v)
    if op == "contains":
        return isinstance(x, str) and v.casefold() in x.casefold()
    if op == "matches":
        return isinstance(x, str) and re.search(v, x, re.IGNORECASE) is not None
    if op == "includes":
        return isinstance(x, list) and any(_eq(e, v) for e in x)
    if op == "gt":
        num = (int, float)
        return isinstance(x, num) and not isinstance(x, bool) and x > v
    raise ValueError(f"oracle does not know op {op}")


def oracle_matcher(rules: list[dict[str, Any]]) -> Any:
    def match(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        return [r["id"] for r in rules if event["type"] in r["triggers"]
                and all(holds(c, event, ticket) for c in r["conditions"]["all"])]
    return match


def _apply(action: dict[str, Any], ticket: dict[str, Any]) -> None:
    """The generator's actions, as API.md states them (only what conditions could read matters)."""
    if action["type"] == "set":
        f = action["field"]
        if f.startswith("custom."):
            ticket["custom"] = {**ticket.get("custom", {}), f.split(".", 1)[1]: action["value"]}
        else:
            ticket[f] = action["value"]
    elif action["type"] == "add_tags":
        tags = list(ticket.get("tags", []))
        for t in action["tags"]:
            if all(t.casefold() != x.casefold() for x in tags):
                tags.append(t)
        ticket["tags"] = tags
    else:
        raise ValueError(f"oracle does not apply {action['type']}")


def sequential_matcher(rules: list[dict[str, Any]]) -> Any:
    """One ordered pass: each rule sees the ticket as earlier rules' actions left it."""
    def match(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        current = dict(ticket)
        out = []
        for r in rules:
            if event["type"] in r["triggers"] and all(
                    holds(c, event, current) for c in r["conditions"]["all"]):
                out.append(r["id"])
                for a in r["actions"]:
                    _apply(a, current)
        return out
    return match
