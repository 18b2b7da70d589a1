"""Every compile-time error API.md and docs/rules-engine.md list, and what must still compile.

Each bad rule is the valid BASE rule with one thing wrong; the engine must raise RuleError naming
the rule, with the path of the wrong part (`conditions.all[1].any[0].op`, `actions[2].value`,
`triggers[0]`, `""` for the rule itself) and `str(err) == "rule '<rule>': <path>: <reason>"`.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

OK_LEAF = {"field": "status", "op": "is", "value": "open"}
BASE: dict[str, Any] = {
    "id": "rule-1", "name": "VIP refunds", "triggers": ["ticket.created"],
    "conditions": {"all": [OK_LEAF, {"any": [OK_LEAF, OK_LEAF]}]},
    "actions": [{"type": "close"}, {"type": "close"}, {"type": "close"}],
}


def with_leaf(leaf: dict[str, Any]) -> dict[str, Any]:
    """BASE with `leaf` at conditions.all[1].any[0]."""
    rule = copy.deepcopy(BASE)
    rule["conditions"]["all"][1]["any"][0] = leaf
    return rule


LEAF_PATH = "conditions.all[1].any[0]"


def with_action(action: dict[str, Any]) -> dict[str, Any]:
    """BASE with `action` at actions[2]."""
    rule = copy.deepcopy(BASE)
    rule["actions"][2] = action
    return rule


def with_rule(**changes: Any) -> dict[str, Any]:
    rule = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is DROP:
            rule.pop(key, None)
        else:
            rule[key] = value
    return rule


DROP: Any = object()


def leaf_error(field: Any, op: Any, value: Any = DROP, suffix: str = "value", **extra: Any) -> Any:
    leaf = {"field": field, "op": op}
    if value is not DROP:
        leaf["value"] = value
    leaf.update(extra)
    return with_leaf(leaf), f"{LEAF_PATH}.{suffix}"


CONDITION_ERRORS = {
    # unknown fields and ops
    "unknown-field": leaf_error("subjekt", "is", "x", "field"),
    "field-with-ticket-prefix": leaf_error("ticket.subject", "is", "x", "field"),
    "custom-without-key": leaf_error("custom", "is", "x", "field"),
    "unknown-contact-field": leaf_error("contact.phone", "is", "x", "field"),
    "unknown-message-field": leaf_error("message.subject", "is", "x", "field"),
    "unknown-event-field": leaf_error("event.id", "is", "x", "field"),
    "vars-without-name": leaf_error("vars", "is", "x", "field"),
    "field-not-a-string": leaf_error(5, "is", "x", "field"),
    "unknown-op": leaf_error("subject", "equals", "x", "op"),
    "op-wrong-case": leaf_error("subject", "IS", "x", "op"),
    # an op on a field of another known type
    "gt-on-text": leaf_error("subject", "gt", 5, "op"),
    "contains-on-list": leaf_error("tags", "contains", "vip", "op"),
    "older-than-on-text": leaf_error("status", "older_than", "1h", "op"),
    "includes-on-text": leaf_error("subject", "includes", "x", "op"),
    "matches-on-list": leaf_error("tags", "matches", "vip", "op"),
    "is-on-list": leaf_error("tags", "is", "vip", "op"),
    "in-on-list": leaf_error("contact.groups", "in", ["vip"], "op"),
    "starts-with-on-list": leaf_error("tags", "starts_with", "v", "op"),
    "gt-on-timestamp": leaf_error("created_at", "gt", 5, "op"),
    "is-on-timestamp": leaf_error("created_at", "is", "2026-11-23T08:00:00Z", "op"),
    "changed-from-on-timestamp": leaf_error("created_at", "changed_from", "x", "op"),
    "older-than-on-list": leaf_error("tags", "older_than", "1h", "op"),
    "lte-on-list": leaf_error("contact.groups", "lte", 1, "op"),
    # changed* where there is no previous value
    "changed-on-message": leaf_error("message.body", "changed", DROP, "op"),
    "changed-from-on-message": leaf_error("message.author", "changed_from", "agent", "op"),
    "changed-to-on-message": leaf_error("message.channel", "changed_to", "chat", "op"),
    "changed-on-event-type": leaf_error("event.type", "changed", DROP, "op"),
    "changed-on-vars": leaf_error("vars.customer_type", "changed", DROP, "op"),
    "changed-to-on-vars": leaf_error("vars.customer_type", "changed_to", "vip", "op"),
    # value shapes
    "in-needs-a-list": leaf_error("status", "in", "open"),
    "in-needs-non-empty-list": leaf_error("status", "in", []),
    "not-in-needs-a-value": leaf_error("status", "not_in"),
    "in-on-text-needs-strings": leaf_error("status", "in", ["open", 5]),
    "in-on-text-no-empty-string": leaf_error("status", "in", ["open", ""]),
    "in-on-custom-needs-scalars": leaf_error("custom.plan", "in", [["pro"]]),
    "in-on-custom-no-null": leaf_error("custom.plan", "in", [None]),
    "includes-any-needs-a-list": leaf_error("tags", "includes_any", "vip"),
    "includes-all-needs-non-empty-list": leaf_error("tags", "includes_all", []),
    "includes-any-needs-strings": leaf_error("contact.groups", "includes_any", ["vip", 1]),
    "is-on-text-needs-a-string": leaf_error("subject", "is", 5),
    "is-on-text-no-empty-string": leaf_error("subject", "is", ""),
    "is-on-text-no-null": leaf_error("subject", "is", None),
    "is-needs-a-value": leaf_error("subject", "is"),
    "is-not-on-text-needs-a-string": leaf_error("status", "is_not", True),
    "includes-needs-a-string": leaf_error("tags", "includes", ["vip"]),
    "excludes-no-empty-string": leaf_error("tags", "excludes", ""),
    "contains-no-empty-string": leaf_error("subject", "contains", ""),
    "contains-on-custom-needs-a-string": leaf_error("custom.plan", "contains", 5),
    "starts-with-needs-a-string": leaf_error("subject", "starts_with", ["a"]),
    "ends-with-needs-a-value": leaf_error("subject", "ends_with"),
    "is-on-custom-no-null": leaf_error("custom.plan", "is", None),
    "is-on-custom-no-list": leaf_error("custom.plan", "is", [1]),
    "is-on-custom-no-dict": leaf_error("custom.plan", "is", {}),
    "is-on-custom-no-empty-string": leaf_error("custom.plan", "is", ""),
    "includes-on-custom-needs-a-scalar": leaf_error("custom.plan", "includes", ["a"]),
    "changed-from-on-custom-needs-a-scalar": leaf_error("custom.plan", "changed_from", ["a"]),
    "includes-all-on-custom-needs-scalars": leaf_error("custom.plan", "includes_all", [{}]),
    "gt-needs-a-number": leaf_error("custom.n", "gt", "5"),
    "gt-bool-is-not-a-number": leaf_error("custom.n", "gt", True),
    "lte-needs-a-value": leaf_error("custom.n", "lte"),
    "gte-no-null": leaf_error("vars.score", "gte", None),
    "duration-unknown-unit": leaf_error("created_at", "older_than", "5x"),
    "duration-zero": leaf_error("created_at", "older_than", "0s"),
    "duration-all-zero": leaf_error("created_at", "newer_than", "0d0h0m0s"),
    "duration-empty": leaf_error("created_at", "older_than", ""),
    "duration-number": leaf_error("created_at", "older_than", 5),
    "duration-wrong-order": leaf_error("created_at", "older_than", "1m1h"),
    "duration-space": leaf_error("created_at", "newer_than", "1h 30m"),
    "duration-negative": leaf_error("created_at", "older_than", "-1h"),
    "duration-fraction": leaf_error("created_at", "older_than", "1.5h"),
    "duration-missing": leaf_error("created_at", "newer_than"),
    "duration-trailing-newline": leaf_error("created_at", "older_than", "1h\n"),
    "duration-non-ascii-digit": leaf_error("created_at", "older_than", "\u0661h"),
    "is-empty-takes-no-value": leaf_error("subject", "is_empty", "x"),
    "is-empty-takes-no-value-not-even-null": leaf_error("subject", "is_empty", None),
    "is-not-empty-takes-no-value": leaf_error("tags", "is_not_empty", []),
    "changed-takes-no-value": leaf_error("status", "changed", "open"),
    "changed-to-needs-a-value": leaf_error("status", "changed_to"),
    "changed-from-on-text-needs-a-string": leaf_error("status", "changed_from", 1),
    "bad-regex": leaf_error("subject", "matches", "("),
    "bad-regex-escape": leaf_error("subject", "matches", "\\"),
    "regex-global-flag-not-at-start": leaf_error("subject", "matches", "a(?i)b"),
    "regex-too-long": leaf_error("subject", "matches", "a" * 1001),
    "regex-not-a-string": leaf_error("subject", "matches", 5),
    "case-sensitive-not-a-boolean": leaf_error("subject", "is", "x", "case_sensitive",
                                               case_sensitive="yes"),
    "case-sensitive-not-1": leaf_error("subject", "is", "x", "case_sensitive",
                                       case_sensitive=1),
    # node shapes
    "unknown-leaf-key": leaf_error("subject", "is", "x", "case_sensitve", case_sensitve=True),
    "leaf-missing-op": (with_leaf({"field": "subject", "value": "x"}), f"{LEAF_PATH}.op"),
    "leaf-missing-field": (with_leaf({"op": "is", "value": "x"}), f"{LEAF_PATH}.field"),
    "node-with-all-and-any": (with_leaf({"all": [OK_LEAF], "any": [OK_LEAF]}), LEAF_PATH),
    # a key that does not belong is named by its own path, like any unknown key
    "node-with-all-and-field": (with_leaf({"all": [OK_LEAF], **OK_LEAF}), f"{LEAF_PATH}.field"),
    # only the root may be {} (no conditions); inside a tree {} is a leaf missing its field
    "node-empty-inside-tree": (with_leaf({}), f"{LEAF_PATH}.field"),
    "node-not-a-dict": (with_leaf(["status", "is", "open"]), LEAF_PATH),  # type: ignore[arg-type]
    "all-not-a-list": (with_leaf({"all": OK_LEAF}), f"{LEAF_PATH}.all"),
    "case-sensitive-on-all-node": (with_leaf({"all": [OK_LEAF], "case_sensitive": True}),
                                   f"{LEAF_PATH}.case_sensitive"),
    "bad-leaf-in-empty-looking-any": (with_leaf({"any": [{"field": "status"}]}),
                                      f"{LEAF_PATH}.any[0].op"),
    "any-not-a-list": (with_leaf({"any": "x"}), f"{LEAF_PATH}.any"),
    "root-all-and-any": (with_rule(conditions={"all": [], "any": []}), "conditions"),
    "root-not-a-dict": (with_rule(conditions=[OK_LEAF]), "conditions"),
    "root-leaf-unknown-op": (with_rule(conditions={"field": "status", "op": "isnt",
                                                   "value": "x"}), "conditions.op"),
    "deep-path": (with_rule(conditions={"any": [OK_LEAF, {"all": [
        OK_LEAF, {"any": [OK_LEAF, {"field": "status", "op": "bogus", "value": "x"}]}]}]}),
        "conditions.any[1].all[1].any[1].op"),
}

ACTION_ERRORS = {
    "unknown-action": (with_action({"type": "delete"}), "actions[2].type"),
    "action-missing-type": (with_action({"field": "status", "value": "open"}), "actions[2].type"),
    "action-not-a-dict": (with_action("close"), "actions[2]"),  # type: ignore[arg-type]
    "unknown-action-key": (with_action({"type": "close", "field": "x"}), "actions[2].field"),
    "set-status-outside-enum": (with_action({"type": "set", "field": "status",
                                             "value": "escalated"}), "actions[2].value"),
    "set-status-wrong-case": (with_action({"type": "set", "field": "status",
                                           "value": "Open"}), "actions[2].value"),
    "set-status-null": (with_action({"type": "set", "field": "status", "value": None}),
                        "actions[2].value"),
    "set-priority-outside-enum": (with_action({"type": "set", "field": "priority",
                                               "value": "critical"}), "actions[2].value"),
    "set-priority-wrong-case": (with_action({"type": "set", "field": "priority",
                                             "value": "URGENT"}), "actions[2].value"),
    "set-priority-null": (with_action({"type": "set", "field": "priority", "value": None}),
                          "actions[2].value"),
    "set-unsettable-field": (with_action({"type": "set", "field": "subject", "value": "x"}),
                             "actions[2].field"),
    "set-tags": (with_action({"type": "set", "field": "tags", "value": ["x"]}),
                 "actions[2].field"),
    "set-unknown-field": (with_action({"type": "set", "field": "nope", "value": "x"}),
                          "actions[2].field"),
    "set-missing-field": (with_action({"type": "set", "value": "open"}), "actions[2].field"),
    "set-missing-value": (with_action({"type": "set", "field": "status"}), "actions[2].value"),
    "set-department-empty": (with_action({"type": "set", "field": "department", "value": ""}),
                             "actions[2].value"),
    "set-assignee-number": (with_action({"type": "set", "field": "assignee", "value": 5}),
                            "actions[2].value"),
    "add-tags-missing": (with_action({"type": "add_tags"}), "actions[2].tags"),
    "add-tags-empty": (with_action({"type": "add_tags", "tags": []}), "actions[2].tags"),
    "add-tags-not-a-list": (with_action({"type": "add_tags", "tags": "vip"}), "actions[2].tags"),
    "add-tags-empty-tag": (with_action({"type": "add_tags", "tags": ["vip", ""]}),
                           "actions[2].tags[1]"),
    "remove-tags-non-string": (with_action({"type": "remove_tags", "tags": [5]}),
                               "actions[2].tags[0]"),
    "add-to-group-missing-group": (with_action({"type": "add_to_group"}), "actions[2].group"),
    "remove-from-group-missing-group": (with_action({"type": "remove_from_group"}),
                                        "actions[2].group"),
    "apply-sla-missing-policy": (with_action({"type": "apply_sla"}), "actions[2].policy"),
    "snooze-neither": (with_action({"type": "snooze"}), "actions[2]"),
    "snooze-both": (with_action({"type": "snooze", "for": "1h",
                                 "until": "2026-11-24T08:00:00Z"}), "actions[2]"),
    "snooze-bad-duration": (with_action({"type": "snooze", "for": "soon"}), "actions[2].for"),
    "snooze-bad-until": (with_action({"type": "snooze", "until": "tomorrow"}),
                         "actions[2].until"),
    "snooze-bad-duration-newline": (with_action({"type": "snooze", "for": "5m\n"}),
                                    "actions[2].for"),
    "send-message-missing-template": (with_action({"type": "send_message"}),
                                      "actions[2].template"),
    "notify-missing-target": (with_action({"type": "notify", "message": "hi"}),
                              "actions[2].target"),
    "notify-missing-message": (with_action({"type": "notify", "target": "team"}),
                               "actions[2].message"),
    "webhook-missing-url": (with_action({"type": "webhook"}), "actions[2].url"),
    "webhook-not-http-url": (with_action({"type": "webhook", "url": "ftp://example.com/x"}),
                             "actions[2].url"),
    "webhook-bad-method": (with_action({"type": "webhook", "url": "https://example.com/",
                                        "method": "FETCH"}), "actions[2].method"),
    "http-request-missing-url": (with_action({"type": "http_request"}), "actions[2].url"),
    "http-request-bad-method": (with_action({"type": "http_request",
                                             "url": "https://crm.example.com/",
                                             "method": "TRACE"}), "actions[2].method"),
    "http-request-map-not-jsonpath": (with_action({
        "type": "http_request", "url": "https://crm.example.com/",
        "map": {"customer_type": "customerType"}}), "actions[2].map.customer_type"),
    "run-script-missing-script": (with_action({"type": "run_script"}), "actions[2].script"),
}

RULE_ERRORS = {
    "triggers-missing": (with_rule(triggers=DROP), "triggers"),
    "triggers-empty": (with_rule(triggers=[]), "triggers"),
    "triggers-not-a-list": (with_rule(triggers="ticket.created"), "triggers"),
    "trigger-unknown": (with_rule(triggers=["ticket.deleted"]), "triggers[0]"),
    "trigger-not-a-string": (with_rule(triggers=["ticket.created", 5]), "triggers[1]"),
    "actions-missing": (with_rule(actions=DROP), "actions"),
    "actions-empty": (with_rule(actions=[]), "actions"),
    "actions-not-a-list": (with_rule(actions={"type": "close"}), "actions"),
    "unknown-rule-key": (with_rule(condition={"field": "status", "op": "is", "value": "x"}),
                         "condition"),
    "stop-not-a-boolean": (with_rule(stop="yes"), "stop"),
    "enabled-not-a-boolean": (with_rule(enabled="true"), "enabled"),
}

ALL_ERRORS = {**CONDITION_ERRORS, **ACTION_ERRORS, **RULE_ERRORS}


@pytest.mark.parametrize("rule, path", [pytest.param(r, p, id=k)
                                        for k, (r, p) in ALL_ERRORS.items()])
def test_compile_error(engine: Any, rule: dict[str, Any], path: str) -> None:
    valid = copy.deepcopy(BASE)
    valid["id"] = "first"
    with pytest.raises(engine.RuleError) as info:
        engine.compile_rules([valid, rule])
    err = info.value
    assert err.rule == "rule-1"
    assert err.index == 1
    assert err.path == path
    assert err.reason
    assert str(err) == f"rule 'rule-1': {path}: {err.reason}"


@pytest.mark.parametrize("rule, path", [pytest.param(r, p, id=k)
                                        for k, (r, p) in ALL_ERRORS.items()])
def test_validate_rule_reports_the_same_problem(engine: Any, rule: dict[str, Any],
                                                path: str) -> None:
    problems = engine.validate_rule(rule)
    assert path in [p.path for p in problems]


def test_error_names_rule_by_name_then_index(engine: Any) -> None:
    bad = {"triggers": ["ticket.created"], "actions": [{"type": "nope"}]}
    with pytest.raises(engine.RuleError) as info:
        engine.compile_rules([BASE, {**bad, "name": "Tag refunds"}])
    assert (info.value.rule, info.value.index) == ("Tag refunds", 1)
    assert str(info.value).startswith("rule 'Tag refunds': actions[0].type: ")
    with pytest.raises(engine.RuleError) as info:
        engine.compile_rules([BASE, {**BASE, "id": "rule-2"}, bad])
    assert (info.value.rule, info.value.index) == ("#2", 2)
    assert str(info.value).startswith("rule '#2': actions[0].type: ")


def test_error_lists_every_problem(engine: Any) -> None:
    rule = with_leaf({"field": "subjekt", "op": "is", "value": "x"})
    rule["actions"][2] = {"type": "set", "field": "priority", "value": "critical"}
    rule["triggers"] = ["ticket.deleted"]
    with pytest.raises(engine.RuleError) as info:
        engine.compile_rules([rule])
    paths = {e.path for e in info.value.errors}
    assert {f"{LEAF_PATH}.field", "actions[2].value", "triggers[0]"} <= paths
    assert all(isinstance(e, engine.RuleError) and e.rule == "rule-1" for e in info.value.errors)


# --- what must compile ---------------------------------------------------------------------------

VALID_LEAVES = {
    "custom-is-number": {"field": "custom.n", "op": "is", "value": 5},
    "custom-is-bool": {"field": "custom.n", "op": "is", "value": False},
    "custom-is-float": {"field": "custom.n", "op": "is_not", "value": 2.5},
    "custom-in-mixed": {"field": "custom.n", "op": "in", "value": [1, "a", True]},
    "custom-gt-float": {"field": "custom.n", "op": "gt", "value": 1.5},
    "custom-gt-negative": {"field": "contact.custom.age", "op": "lt", "value": -3},
    "custom-includes-number": {"field": "custom.n", "op": "includes", "value": 3},
    "custom-older-than": {"field": "custom.due", "op": "older_than", "value": "1d"},
    "custom-contains": {"field": "custom.n", "op": "contains", "value": "x"},
    "custom-changed": {"field": "contact.custom.tier", "op": "changed"},
    "custom-changed-to-number": {"field": "custom.n", "op": "changed_to", "value": 3},
    "custom-key-with-dots": {"field": "custom.a.b.c", "op": "is_empty"},
    "vars-is": {"field": "vars.customer_type", "op": "is", "value": "VIP"},
    "vars-gte": {"field": "vars.score", "op": "gte", "value": 10},
    "timestamp-changed": {"field": "created_at", "op": "changed"},
    "timestamp-is-empty": {"field": "last_agent_message_at", "op": "is_empty"},
    "timestamp-newer-than": {"field": "updated_at", "op": "newer_than", "value": "1h30m"},
    "duration-all-units": {"field": "created_at", "op": "older_than", "value": "1d2h3m4s"},
    "duration-big-minutes": {"field": "created_at", "op": "older_than", "value": "90m"},
    "tags-changed-from-list": {"field": "tags", "op": "changed_from", "value": ["a", "b"]},
    "groups-changed-to-list": {"field": "contact.groups", "op": "changed_to", "value": ["vip"]},
    "tags-is-empty": {"field": "tags", "op": "is_empty"},
    "whitespace-value": {"field": "subject", "op": "is", "value": " "},
    "case-sensitive-false": {"field": "subject", "op": "contains", "value": "x",
                             "case_sensitive": False},
    "regex-inline-flags": {"field": "message.body", "op": "matches", "value": "(?s)a.b"},
    "regex-1000-chars": {"field": "subject", "op": "matches", "value": "a" * 1000},
    "event-type-in": {"field": "event.type", "op": "in", "value": ["ticket.created"]},
    "message-changed-is-not-needed": {"field": "message.author", "op": "is", "value": "agent"},
    "all-empty": {"all": []},
    "any-empty": {"any": []},
}


@pytest.mark.parametrize("leaf", [pytest.param(v, id=k) for k, v in VALID_LEAVES.items()])
def test_valid_condition_compiles(engine: Any, leaf: dict[str, Any]) -> None:
    rule = with_leaf(leaf)
    engine.compile_rules([rule])
    assert engine.validate_rule(rule) == []


VALID_ACTIONS = {
    "set-department-null": {"type": "set", "field": "department", "value": None},
    "set-assignee": {"type": "set", "field": "assignee", "value": "agent-7"},
    "set-custom-null": {"type": "set", "field": "custom.tier", "value": None},
    "set-custom-list": {"type": "set", "field": "custom.tier", "value": ["a", 1]},
    "set-custom-dict": {"type": "set", "field": "custom.a.b", "value": {"x": True}},
    "set-custom-number": {"type": "set", "field": "custom.n", "value": 0},
    "set-status": {"type": "set", "field": "status", "value": "on_hold"},
    "set-priority": {"type": "set", "field": "priority", "value": "low"},
    "snooze-until": {"type": "snooze", "until": "2026-11-24T08:00:00+01:00"},
    "snooze-for": {"type": "snooze", "for": "2d"},
    "wake": {"type": "wake"},
    "webhook-full": {"type": "webhook", "url": "http://hooks.example.com/x", "method": "PUT",
                     "headers": {"X-A": "1"}, "body": {"a": 1}},
    "http-request-full": {"type": "http_request", "url": "https://crm.example.com/c",
                          "method": "POST", "headers": {"A": "b"}, "secret": "CRM_TOKEN",
                          "map": {"customer_type": "$.customerType"}},
    "run-script-version": {"type": "run_script", "script": "crm-vip", "version": 2},
    "notify": {"type": "notify", "target": "team:billing", "message": "{{ticket.subject}}"},
    "send-message": {"type": "send_message", "template": "Hi {{ contact.name }}"},
    "apply-sla": {"type": "apply_sla", "policy": "vip"},
    "groups": {"type": "add_to_group", "group": "vip"},
}


@pytest.mark.parametrize("action", [pytest.param(v, id=k) for k, v in VALID_ACTIONS.items()])
def test_valid_action_compiles(engine: Any, action: dict[str, Any]) -> None:
    rule = with_action(action)
    engine.compile_rules([rule])
    assert engine.validate_rule(rule) == []


@pytest.mark.parametrize("changes", [
    pytest.param({"conditions": DROP}, id="no-conditions"),
    pytest.param({"conditions": None}, id="null-conditions"),
    pytest.param({"conditions": {}}, id="empty-conditions"),
    pytest.param({"conditions": OK_LEAF}, id="root-leaf"),
    pytest.param({"stop": True, "enabled": True, "description": "why"}, id="optional-keys"),
    pytest.param({"position": 3, "created_at": "x", "updated_at": "y", "revision": 2,
                  "draft": False, "last_fired_at": None}, id="bookkeeping-keys-ignored"),
    pytest.param({"id": DROP}, id="name-only"),
    pytest.param({"triggers": ["ticket.created", "ticket.updated", "message.received",
                               "message.sent", "time.reached", "sla.warning", "sla.breached",
                               "ticket.woke"]}, id="every-trigger"),
])
def test_valid_rule_compiles(engine: Any, changes: dict[str, Any]) -> None:
    engine.compile_rules([with_rule(**changes)])


def test_regex_that_warns_is_not_a_crash(engine: Any) -> None:
    """`re` warns (FutureWarning) on "[[a]"; the suite runs with warnings as errors, as the service
    tests do. Compiling must give a rule set or a RuleError, never another exception."""
    rule = with_leaf({"field": "subject", "op": "matches", "value": "[[a]"})
    try:
        engine.compile_rules([rule])
    except engine.RuleError as err:
        assert err.path == f"{LEAF_PATH}.value"
