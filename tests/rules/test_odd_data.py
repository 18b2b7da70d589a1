"""Evaluation never raises on odd ticket or event data: any JSON value may sit in any slot."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings, strategies as st

from rules import compile_rules

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
SLOTS = ["subject", "status", "priority", "department", "tags", "custom", "contact", "created_at",
         "last_customer_message_at"]
FIELDS_OPS = [
    ("subject", "contains", "a"), ("subject", "matches", "a+"), ("status", "in", ["open", "new"]),
    ("tags", "includes", "x"), ("tags", "includes_all", ["x", "y"]), ("contact.groups", "includes_any", ["v"]),
    ("contact.email", "ends_with", ".com"), ("contact.custom.k", "gt", 3), ("custom.k", "is", 5),
    ("custom.k", "includes", "a"), ("custom.k", "older_than", "1m"), ("created_at", "newer_than", "1h"),
    ("message.body", "starts_with", "hi"), ("vars.x", "is_empty", None), ("tags", "changed", None),
    ("status", "changed_to", "open"), ("custom.k", "changed_from", 1),
]
RULES = [{"id": f"r{i}", "triggers": ["ticket.updated"],
          "conditions": ({"field": f, "op": op, "value": v} if v is not None else {"field": f, "op": op}),
          "actions": [{"type": "add_tags", "tags": ["t"]}, {"type": "add_to_group", "group": "g"},
                      {"type": "set", "field": "custom.k", "value": 1},
                      {"type": "send_message", "template": "{{ticket.subject}} {{contact.custom.k}} {{message.body}}"}]}
         for i, (f, op, v) in enumerate(FIELDS_OPS)]
RULESET = compile_rules(RULES)


@settings(max_examples=300, deadline=None)
@given(ticket=st.fixed_dictionaries({}, optional={k: JSON for k in SLOTS}),
       previous=st.one_of(st.none(), JSON, st.fixed_dictionaries({}, optional={k: JSON for k in SLOTS})),
       message=JSON)
def test_any_json_in_any_slot_evaluates(ticket: dict[str, Any], previous: Any, message: Any) -> None:
    event = {"type": "ticket.updated", "message": message}
    ev = RULESET.evaluate(event, ticket, previous, datetime(2026, 11, 23, tzinfo=timezone.utc))
    assert ev.matched == [e["id"] for e in ev.explain if e["matched"]]
    assert isinstance(ev.changes, dict) and isinstance(ev.ticket, dict)


@settings(max_examples=100, deadline=None)
@given(event=JSON, ticket=JSON)
def test_non_dict_event_or_ticket_reads_as_empty(event: Any, ticket: Any) -> None:
    ev = RULESET.evaluate(event, ticket)
    assert isinstance(ev.matched, list)
