"""Ordinal comparison on `priority` and `status` (issue 8): `gt`/`gte`/`lt`/`lte` with a value from
the field's order compare positions, low < normal < high < urgent and new < open < pending <
on_hold < solved < closed. Every row runs on the oracle and on the engine (`impl`)."""

from __future__ import annotations

from typing import Any

import pytest

from ruletools import MISSING, NOW, make_event, make_rule, make_ticket, place

PRIORITY_ROWS = [
    # ticket value, op, rule value, holds
    ("high", "gt", "normal", True), ("normal", "gt", "normal", False), ("low", "gt", "normal", False),
    ("urgent", "gt", "high", True), ("normal", "gte", "normal", True), ("low", "gte", "normal", False),
    ("low", "lt", "normal", True), ("normal", "lt", "normal", False), ("urgent", "lt", "urgent", False),
    ("urgent", "lte", "urgent", True), ("high", "lte", "normal", False), ("low", "lte", "low", True),
    ("HIGH", "gt", "normal", True),            # ticket values are found in the order ignoring case
    ("critical", "gt", "low", False),          # not in the order: no comparison holds
    ("critical", "lt", "urgent", False),
    ("", "lte", "urgent", False), (None, "lt", "urgent", False), (MISSING, "gte", "low", False),
    (3, "gt", "low", False), (["high"], "gt", "low", False), ({"p": 1}, "lte", "urgent", False),
    (True, "gte", "low", False),
]
STATUS_ROWS = [
    ("open", "gt", "new", True), ("new", "gt", "new", False), ("pending", "gte", "open", True),
    ("on_hold", "lt", "solved", True), ("solved", "lt", "solved", False), ("closed", "gt", "solved", True),
    ("closed", "lte", "closed", True), ("new", "lte", "new", True), ("open", "lt", "new", False),
    ("On_Hold", "gt", "pending", True), ("reopened", "gte", "new", False), ("reopened", "lte", "closed", False),
    (None, "gte", "new", False), (2, "gt", "new", False),
]


def run(impl: Any, field: str, current: Any, op: str, value: str, cs: bool | None = None) -> Any:
    ticket, event = make_ticket(), make_event("ticket.updated")
    place(field, current, ticket, event)
    leaf: dict[str, Any] = {"field": field, "op": op, "value": value}
    if cs is not None:
        leaf["case_sensitive"] = cs
    ruleset = impl.compile_rules([make_rule("r", conditions=leaf)])
    return ruleset.evaluate(event, ticket, now=NOW)


@pytest.mark.parametrize("current, op, value, holds", PRIORITY_ROWS)
def test_priority_order(impl: Any, current: Any, op: str, value: str, holds: bool) -> None:
    ev = run(impl, "priority", current, op, value)
    assert ev.matched == (["r"] if holds else [])
    if not holds:
        seen = None if current is MISSING else current
        assert ev.explain[0]["failed"] == {"path": "conditions", "field": "priority", "op": op,
                                           "value": value, "seen": seen}


@pytest.mark.parametrize("current, op, value, holds", STATUS_ROWS)
def test_status_order(impl: Any, current: Any, op: str, value: str, holds: bool) -> None:
    assert run(impl, "status", current, op, value).matched == (["r"] if holds else [])


def test_case_sensitive_needs_the_exact_spelling(impl: Any) -> None:
    assert run(impl, "priority", "HIGH", "gt", "normal", cs=True).matched == []
    assert run(impl, "priority", "high", "gt", "normal", cs=True).matched == ["r"]


def test_ordinal_sees_the_ticket_as_earlier_rules_left_it(impl: Any) -> None:
    rules = [make_rule("raise", actions=[{"type": "set", "field": "priority", "value": "urgent"}]),
             make_rule("escalate", conditions={"field": "priority", "op": "gt", "value": "high"})]
    ev = impl.compile_rules(rules).evaluate(make_event(), make_ticket(priority="low"), now=NOW)
    assert ev.matched == ["raise", "escalate"]


def test_numbers_keep_their_meaning_on_any_fields(impl: Any) -> None:
    """gt..lte with a number on custom.* still compare numbers; a string there never holds."""
    ticket, event = make_ticket(custom={"score": 7, "level": "high"}), make_event()
    rules = [make_rule("num", conditions={"field": "custom.score", "op": "gt", "value": 5}),
             make_rule("text", conditions={"field": "custom.level", "op": "gt", "value": 5})]
    assert impl.compile_rules(rules).evaluate(event, ticket, now=NOW).matched == ["num"]


BAD = [
    ({"field": "priority", "op": "gt", "value": "meh"},
     "must be one of low, normal, high, urgent (priority compares in that order)"),
    ({"field": "priority", "op": "gt", "value": "HIGH"},
     "must be one of low, normal, high, urgent (priority compares in that order)"),
    ({"field": "status", "op": "lte", "value": 3},
     "must be one of new, open, pending, on_hold, solved, closed (status compares in that order)"),
    ({"field": "status", "op": "gte"}, "'gte' needs a value"),
]


@pytest.mark.parametrize("leaf, reason", BAD)
def test_value_outside_the_order_is_a_compile_error(engine: Any, leaf: dict[str, Any], reason: str) -> None:
    with pytest.raises(engine.RuleError) as err:
        engine.compile_rules([make_rule("r", conditions={"all": [leaf]})])
    assert (err.value.path, err.value.reason) == ("conditions.all[0].value", reason)


@pytest.mark.parametrize("field", ["subject", "department", "channel", "message.author", "event.actor"])
def test_other_text_fields_still_refuse_gt(engine: Any, field: str) -> None:
    with pytest.raises(engine.RuleError) as err:
        engine.compile_rules([make_rule("r", conditions={"field": field, "op": "gt", "value": "high"})])
    assert err.value.path == "conditions.op"
    assert "does not apply" in err.value.reason


def test_string_on_any_field_is_still_a_compile_error(engine: Any) -> None:
    with pytest.raises(engine.RuleError) as err:
        engine.compile_rules([make_rule("r", conditions={"field": "custom.p", "op": "gt", "value": "high"})])
    assert err.value.reason == "must be a number"


def test_op_list_in_the_error_names_the_ordinal_ops(engine: Any) -> None:
    with pytest.raises(engine.RuleError) as err:
        engine.compile_rules([make_rule("r", conditions={"field": "priority", "op": "includes", "value": "x"})])
    assert "gt" in err.value.reason and "is_not" in err.value.reason
