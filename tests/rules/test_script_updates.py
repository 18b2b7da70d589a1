"""A script's returned updates are rule actions in a shorthand (API.md "Scripts"): applied by the
actions' own code, so each key changes the ticket and emits exactly what its action does in a rule.
Their errors (path and reason) are the service's contract and stay as they were."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pytest

from rules import UpdateError, apply_updates, compile_rules
from rules.updates import UPDATE_KEYS, update_actions

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
TICKET: dict[str, Any] = {
    "id": "T-1", "subject": "Refund", "status": "open", "priority": "normal", "department": "billing",
    "assignee": None, "tags": ["billing", "Old"], "custom": {"plan": "pro", "gone": 1},
    "contact": {"id": "C-1", "email": "ann@example.com", "groups": ["trial", "EU"]},
}

# (a script's return, the rule actions it stands for)
SAME_AS: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
    ({"status": "pending"}, [{"type": "set", "field": "status", "value": "pending"}]),
    ({"priority": "urgent", "department": None},
     [{"type": "set", "field": "priority", "value": "urgent"},
      {"type": "set", "field": "department", "value": None}]),
    ({"assignee": "bob"}, [{"type": "set", "field": "assignee", "value": "bob"}]),
    ({"custom": {"plan": "free", "gone": None, "new": [1, {"a": 2}]}},
     [{"type": "set", "field": "custom.plan", "value": "free"},
      {"type": "set", "field": "custom.gone", "value": None},
      {"type": "set", "field": "custom.new", "value": [1, {"a": 2}]}]),
    ({"add_tags": ["vip", "BILLING"], "remove_tags": ["old"]},
     [{"type": "add_tags", "tags": ["vip", "BILLING"]}, {"type": "remove_tags", "tags": ["old"]}]),
    ({"add_groups": ["VIP", "trial"], "remove_groups": ["eu"]},
     [{"type": "add_to_group", "group": "VIP"}, {"type": "add_to_group", "group": "trial"},
      {"type": "remove_from_group", "group": "eu"}]),
    ({"sla_policy": "gold", "snooze": "2h"},
     [{"type": "apply_sla", "policy": "gold"}, {"type": "snooze", "for": "2h"}]),
    ({"snooze": "2026-11-24T09:00:00Z"}, [{"type": "snooze", "until": "2026-11-24T09:00:00Z"}]),
    ({"status": "solved", "actions": [{"type": "send_message", "template": "Hi {{ticket.status}}"},
                                      {"type": "webhook", "url": "https://hooks.example/x"}]},
     [{"type": "set", "field": "status", "value": "solved"},
      {"type": "send_message", "template": "Hi {{ticket.status}}"},
      {"type": "webhook", "url": "https://hooks.example/x"}]),
]


@pytest.mark.parametrize(("updates", "actions"), SAME_AS)
def test_a_return_applies_as_the_rule_actions_it_stands_for(updates: dict[str, Any],
                                                            actions: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(TICKET)
    ticket, effects = apply_updates(before, updates, event={"type": "ticket.created"})
    ev = compile_rules([{"id": "r", "triggers": ["ticket.created"], "actions": actions}]).evaluate(
        {"type": "ticket.created"}, copy.deepcopy(TICKET), now=NOW)
    assert ev.matched == ["r"]
    assert (ticket, effects) == (ev.ticket, ev.effects)
    assert ticket != TICKET or effects  # every case does something
    assert before == TICKET            # applied to a copy


def test_the_translation_keeps_the_order_updates_always_applied_in() -> None:
    """Fields, custom keys, tags, groups, then the effects; the script's own `actions` last."""
    got = update_actions({"snooze": "1h", "add_groups": ["g"], "actions": [{"type": "wake"}],
                          "add_tags": ["t"], "custom": {"k": 1}, "status": "open",
                          "sla_policy": "p", "remove_tags": []})
    assert [a["type"] for a in got] == ["set", "set", "add_tags", "add_to_group", "apply_sla", "snooze"]
    assert update_actions({}) == []


def test_an_empty_list_stands_for_no_action() -> None:
    for key in ("add_tags", "remove_tags", "add_groups", "remove_groups"):
        assert update_actions({key: []}) == []
        assert apply_updates(TICKET, {key: []}) == (TICKET, [])


def test_returned_actions_apply_after_the_keys_and_see_their_changes() -> None:
    ticket, effects = apply_updates(TICKET, {"status": "pending", "actions": [
        {"type": "send_message", "template": "now {{ticket.status}}"}, {"type": "add_tags", "tags": ["x"]}]},
        event={"type": "ticket.created"})
    assert effects == [{"type": "send_message", "template": "now {{ticket.status}}", "body": "now pending"}]
    assert ticket["tags"] == ["billing", "Old", "x"]


def test_a_bad_returned_action_applies_nothing() -> None:
    before = copy.deepcopy(TICKET)
    with pytest.raises(UpdateError) as err:
        apply_updates(before, {"add_tags": ["x"], "actions": [{"type": "close"}, {"type": "run_script", "script": "s"}]})
    assert (err.value.path, before) == ("actions[1].type", TICKET)


# The errors as the service returned them before returns became actions (external tests read them).
ERRORS: list[tuple[Any, str, str]] = [
    ("nope", "", "a script must return None or a dict of updates, not str"),
    ({"colour": "red", "status": "x"}, "colour", "unknown update key; allowed: " + ", ".join(UPDATE_KEYS)),
    ({"status": "done", "priority": "x"}, "status", "must be one of closed, new, on_hold, open, pending, solved"),
    ({"priority": 3}, "priority", "must be one of high, low, normal, urgent"),
    ({"department": ""}, "department", "must be a non-empty string or null"),
    ({"assignee": 7}, "assignee", "must be a non-empty string or null"),
    ({"custom": {"": 1}}, "custom", "must be an object with non-empty keys"),
    ({"custom": [1]}, "custom", "must be an object with non-empty keys"),
    ({"add_tags": "vip"}, "add_tags", "must be a list of non-empty strings"),
    ({"remove_groups": ["ok", ""]}, "remove_groups", "must be a list of non-empty strings"),
    # what an event's tags and groups may be (rules/fields.py), and no more
    ({"add_tags": ["ok", "line\nbreak"]}, "add_tags[1]", "must not contain control characters"),
    ({"add_groups": ["x" * 201]}, "add_groups[0]",
     "is 201 characters; a tag or group name is at most 200 characters (MAX_TAG_CHARS)"),
    ({"remove_tags": [f"t{i}" for i in range(101)]}, "remove_tags",
     "has 101 tags; the limit is 100 tags (MAX_TAGS)"),
    ({"actions": [{"type": "add_to_group", "group": "vip\x00"}]}, "actions[0].group",
     "must not contain control characters"),
    ({"sla_policy": ""}, "sla_policy", "must be a policy name"),
    ({"snooze": "soon"}, "snooze", "must be a duration like '2h' or an RFC 3339 timestamp"),
    ({"snooze": "2h", "actions": []}, "actions", "must be a non-empty list of actions"),
    ({"actions": None}, "actions", "must be a non-empty list of actions"),
    ({"actions": [{"type": "http_request", "url": "https://x.example"}]}, "actions[0].type",
     "unknown action type 'http_request'; one of add_tags, add_to_group, apply_sla, close, notify, "
     "remove_from_group, remove_tags, send_message, set, snooze, wake, webhook"),
    ({"actions": [{"type": "set", "field": "status", "value": "gone"}]}, "actions[0].value",
     "status must be one of closed, new, on_hold, open, pending, solved"),
    ({"actions": [{"type": "snooze"}]}, "actions[0]",
     "'snooze' needs exactly one of 'for' (a duration) or 'until' (a timestamp)"),
]


@pytest.mark.parametrize(("updates", "path", "reason"), ERRORS)
def test_errors_keep_their_path_and_reason(updates: Any, path: str, reason: str) -> None:
    with pytest.raises(UpdateError) as err:
        apply_updates(TICKET, updates)
    assert (err.value.path, err.value.reason) == (path, reason)
