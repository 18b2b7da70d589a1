"""`event.actor` (issue 8): customer, agent, system or automation -- the event's own `actor`, else
derived from the message author or the event type (rules.actor_of, shared with the service)."""

from __future__ import annotations

from typing import Any

import pytest

import rules
from ruletools import NOW, make_event, make_rule, make_ticket

ALL = ["ticket.created", "ticket.updated", "message.received", "message.sent", "time.reached",
       "sla.warning", "sla.breached", "ticket.woke"]

ROWS = [
    # event, actor
    (make_event("message.received", message={"author": "customer", "body": "hi"}), "customer"),
    (make_event("message.received", message={"author": "agent", "body": "hi"}), "agent"),
    (make_event("message.received", message={"body": "no author"}), "customer"),
    (make_event("message.received", message={"author": None}), "customer"),
    (make_event("message.sent", message={"body": "no author"}), "agent"),
    (make_event("message.sent", message={"author": "Automation"}), "automation"),
    (make_event("message.sent", message={"author": " system "}), "system"),
    (make_event("message.received", message={"author": "bot-42"}), None),
    (make_event("message.received", message={"author": ""}), None),
    (make_event("message.received", message="not an object"), "customer"),
    (make_event("message.received"), "customer"),
    (make_event("time.reached"), "system"),
    (make_event("sla.warning"), "system"),
    (make_event("sla.breached"), "system"),
    (make_event("ticket.woke"), "system"),
    (make_event("ticket.created"), None),
    (make_event("ticket.updated"), None),
    (make_event("ticket.updated", actor="agent"), "agent"),
    (make_event("message.received", message={"author": "customer"}, actor="automation"), "automation"),
    (make_event("time.reached", actor="AUTOMATION"), "automation"),
    (make_event("ticket.updated", actor="robot"), None),          # not one of the four: ignored
    (make_event("message.sent", message={"author": "agent"}, actor=7), "agent"),
    ({"type": None}, None),
    ({}, None),
]


@pytest.mark.parametrize("event, expected", ROWS)
def test_actor_of(event: dict[str, Any], expected: str | None) -> None:
    assert rules.actor_of(event) == expected


def test_actor_of_odd_values() -> None:
    assert rules.actor_of(None) is None
    assert rules.actor_of(["message.received"]) is None
    assert rules.ACTORS == ("customer", "agent", "system", "automation")


@pytest.mark.parametrize("event, expected", ROWS)
def test_event_actor_condition(impl: Any, event: dict[str, Any], expected: str | None) -> None:
    """Each actor value as a rule sees it: `is`, `in`, `is_empty`, and `seen` in the explain."""
    event = {**event, "type": event.get("type") if event.get("type") in ALL else "ticket.updated"}
    conds = {
        "is-customer": {"field": "event.actor", "op": "is", "value": "customer"},
        "staff": {"field": "event.actor", "op": "in", "value": ["agent", "system"]},
        "unknown": {"field": "event.actor", "op": "is_empty"},
        "not-automation": {"field": "event.actor", "op": "is_not", "value": "Automation"},
    }
    ruleset = impl.compile_rules([make_rule(name, conditions=c, triggers=ALL) for name, c in conds.items()])
    ev = ruleset.evaluate(event, make_ticket(), now=NOW)
    actor = rules.actor_of(event)
    want = [name for name, holds in (("is-customer", actor == "customer"),
                                     ("staff", actor in ("agent", "system")),
                                     ("unknown", actor is None),
                                     ("not-automation", actor != "automation")) if holds]
    assert ev.matched == want
    for entry in ev.explain:
        if not entry["matched"]:
            assert entry["failed"]["field"] == "event.actor"
            assert entry["failed"]["seen"] == actor


def test_actor_is_a_text_field(impl: Any) -> None:
    event = make_event("message.received", message={"author": "customer"})
    rule = make_rule("r", conditions={"field": "event.actor", "op": "starts_with", "value": "CUST"})
    assert impl.compile_rules([rule]).evaluate(event, make_ticket(), now=NOW).matched == ["r"]


@pytest.mark.parametrize("leaf, path, reason", [
    ({"field": "event.actor", "op": "is", "value": "robot"}, "conditions.value",
     "must be one of customer, agent, system, automation"),
    ({"field": "event.actor", "op": "in", "value": ["agent", "bot"]}, "conditions.value",
     "every item must be one of customer, agent, system, automation"),
    ({"field": "event.actor", "op": "changed"}, "conditions.op",
     "'changed' compares ticket versions; event.actor is not a ticket field"),
    ({"field": "event.actor", "op": "older_than", "value": "1h"}, "conditions.op", None),
])
def test_actor_compile_errors(engine: Any, leaf: dict[str, Any], path: str, reason: str | None) -> None:
    with pytest.raises(engine.RuleError) as err:
        engine.compile_rules([make_rule("r", conditions=leaf)])
    assert err.value.path == path
    if reason is not None:
        assert err.value.reason == reason


def test_actor_is_in_the_field_list(engine: Any) -> None:
    with pytest.raises(engine.RuleError) as err:
        engine.compile_rules([make_rule("r", conditions={"field": "event.actr", "op": "is_empty"})])
    assert "event.actor" in err.value.reason
