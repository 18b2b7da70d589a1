"""Builders shared by the rules tests: a fixed clock, a full ticket, events, one-leaf rules."""

from __future__ import annotations

import copy
import os
from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, settings

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)

_TICKET: dict[str, Any] = {
    "id": "T-1",
    "subject": "Refund please",
    "description": "I was charged twice",
    "status": "open",
    "priority": "normal",
    "channel": "email",
    "department": None,
    "assignee": None,
    "tags": ["billing"],
    "custom": {"plan": "pro"},
    "contact": {"id": "C-1", "email": "ann@example.com", "name": "Ann", "groups": ["vip"],
                "custom": {}},
    "created_at": "2026-11-23T08:00:00Z",
    "updated_at": "2026-11-23T08:00:00Z",
    "last_customer_message_at": None,
    "last_agent_message_at": None,
}


def make_ticket(**fields: Any) -> dict[str, Any]:
    """A full ticket (as after `ticket.created`) with `fields` replacing the defaults."""
    ticket = copy.deepcopy(_TICKET)
    ticket.update(copy.deepcopy(fields))
    return ticket


def make_event(type: str = "ticket.updated", message: dict[str, Any] | None = None,
               **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"id": "evt-1", "type": type, "occurred_at": "2026-11-23T11:00:00Z",
                             "ticket": {"id": "T-1"}}
    if message is not None:
        event["message"] = message
    event.update(extra)
    return event


def make_rule(name: str = "r", conditions: Any = None, actions: list[dict[str, Any]] | None = None,
              triggers: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": name,
        "triggers": triggers or ["ticket.created", "ticket.updated", "message.received",
                                 "message.sent"],
        "actions": actions or [{"type": "add_tags", "tags": [f"hit-{name}"]}],
    }
    if conditions is not None:
        rule["conditions"] = conditions
    rule.update(extra)
    return rule


def place(field: str, value: Any, ticket: dict[str, Any], event: dict[str, Any]) -> None:
    """Put `value` where `field` reads it from (MISSING deletes the key)."""
    if field.startswith("custom."):
        target, key = ticket.setdefault("custom", {}), field[len("custom."):]
    elif field.startswith("contact.custom."):
        target, key = ticket["contact"].setdefault("custom", {}), field[len("contact.custom."):]
    elif field.startswith("contact."):
        target, key = ticket["contact"], field[len("contact."):]
    elif field.startswith("message."):
        target, key = event.setdefault("message", {}), field[len("message."):]
    elif field == "event.type":
        target, key = event, "type"
    else:
        target, key = ticket, field
    if value is MISSING:
        target.pop(key, None)
    else:
        target[key] = copy.deepcopy(value)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# Hypothesis profiles for test_property.py, registered here and applied per test (never loaded
# globally, so other packages' tests keep theirs). `./dev test` runs "rules-quick" (a third of the
# examples: 100 a full-scale test); DESKFLOW_FULL_TESTS=1 runs "rules" (300, the counts before
# 2026-12-03); DESKFLOW_RULES_PROFILE=rules-thorough runs ten times that (add --timeout=0: it
# outlasts pytest-timeout's 120 s per test).
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("rules-quick", max_examples=100, deadline=None,
                          suppress_health_check=_QUIET)
settings.register_profile("rules", max_examples=300, deadline=None, suppress_health_check=_QUIET)
settings.register_profile("rules-thorough", max_examples=3000, deadline=None,
                          suppress_health_check=_QUIET)


def default_rules_profile() -> str:
    """DESKFLOW_RULES_PROFILE if set, else "rules" under DESKFLOW_FULL_TESTS=1, else "rules-quick"."""
    full = os.environ.get("DESKFLOW_FULL_TESTS") == "1"
    return os.environ.get("DESKFLOW_RULES_PROFILE") or ("rules" if full else "rules-quick")


def rules_profile(scale: float = 1.0) -> settings:
    """The active rules profile with `scale` times its examples."""
    base = settings.get_profile(default_rules_profile())
    return settings(base, max_examples=max(1, int(base.max_examples * scale)))


def stored_entries(ev: Any, rules: list[dict[str, Any]], revisions: dict[str, Any]) -> list[dict[str, Any]] | None:
    """What the worker stores for a pass (rules/packed.py `pack`), through its JSON, expanded as a
    reader does (each rule's `rule_plan` from its dict, standing for its revision); None when pack
    declines (a rule without an id)."""
    import orjson

    from rules.packed import pack, unpack
    from rules.revision_plan import rule_plan

    packed = pack(ev, revisions)
    if packed is None:
        return None
    packed = orjson.loads(orjson.dumps(packed))
    by_id = {str(r["id"]): r for r in rules if isinstance(r, dict) and r.get("id") is not None}
    plans: dict[str, Any] = {}

    def plan_at(i: int) -> Any:
        rid = packed["ids"][i]
        if rid not in plans:
            plans[rid] = rule_plan(by_id[rid])
        return plans[rid], 0

    return unpack(packed, plan_at)
