"""Each action, the effects it returns, template rendering and the `changes` shape.

Every test runs on the oracle and on the engine (`impl`). The ticket is ruletools' default:
status open, priority normal, tags ["billing"], custom {"plan": "pro"}, contact Ann in ["vip"].
"""

from __future__ import annotations

from typing import Any

import pytest

from ruletools import NOW, make_event, make_rule, make_ticket

MESSAGE = {"author": "customer", "body": "I want my money back", "channel": "chat"}


def run(impl: Any, *actions_per_rule: list[dict[str, Any]], ticket: dict[str, Any] | None = None,
        event: dict[str, Any] | None = None, **kw: Any) -> Any:
    """One always-matching rule per list of actions, evaluated on a message.received event."""
    rules = [make_rule(f"r{i}", actions=actions) for i, actions in enumerate(actions_per_rule)]
    ruleset = impl.compile_rules(rules)
    return ruleset.evaluate(event or make_event("message.received", message=MESSAGE),
                            ticket if ticket is not None else make_ticket(), now=NOW, **kw)


def set_(field: str, value: Any) -> dict[str, Any]:
    return {"type": "set", "field": field, "value": value}


# --- set / close ---------------------------------------------------------------------------------

@pytest.mark.parametrize("action, ticket_fields, changes, after", [
    pytest.param(set_("priority", "urgent"), {}, {"priority": ["normal", "urgent"]},
                 {"priority": "urgent"}, id="priority"),
    pytest.param(set_("priority", "normal"), {}, {}, {"priority": "normal"}, id="same-value"),
    pytest.param(set_("status", "solved"), {}, {"status": ["open", "solved"]},
                 {"status": "solved"}, id="status"),
    pytest.param(set_("department", "vip-desk"), {}, {"department": [None, "vip-desk"]},
                 {"department": "vip-desk"}, id="department"),
    pytest.param(set_("department", None), {"department": "billing"},
                 {"department": ["billing", None]}, {"department": None}, id="department-null"),
    pytest.param(set_("department", "billing"), {"department": "Billing"},
                 {"department": ["Billing", "billing"]}, {"department": "billing"},
                 id="case-only-is-a-change"),
    pytest.param(set_("assignee", "agent-7"), {"assignee": "agent-1"},
                 {"assignee": ["agent-1", "agent-7"]}, {"assignee": "agent-7"}, id="assignee"),
    pytest.param(set_("assignee", None), {}, {}, {"assignee": None}, id="assignee-null-already"),
    pytest.param(set_("custom.tier", "gold"), {}, {"custom.tier": [None, "gold"]},
                 {"custom": {"plan": "pro", "tier": "gold"}}, id="custom-new-key"),
    pytest.param(set_("custom.plan", None), {}, {"custom.plan": ["pro", None]},
                 {"custom": {}}, id="custom-null-deletes-key"),
    pytest.param(set_("custom.tier", None), {}, {}, {"custom": {"plan": "pro"}},
                 id="custom-null-absent-key"),
    pytest.param(set_("custom.plan", "PRO"), {}, {"custom.plan": ["pro", "PRO"]},
                 {"custom": {"plan": "PRO"}}, id="custom-case-only"),
    pytest.param(set_("custom.plan", 1), {"custom": {"plan": True}}, {"custom.plan": [True, 1]},
                 {"custom": {"plan": 1}}, id="custom-true-to-1"),
    pytest.param(set_("custom.a.b", [1, "x"]), {}, {"custom.a.b": [None, [1, "x"]]},
                 {"custom": {"plan": "pro", "a.b": [1, "x"]}}, id="custom-flat-key-list-value"),
    pytest.param(set_("custom.plan", {"level": 2}), {}, {"custom.plan": ["pro", {"level": 2}]},
                 {"custom": {"plan": {"level": 2}}}, id="custom-dict-value"),
    pytest.param({"type": "close"}, {}, {"status": ["open", "closed"]}, {"status": "closed"},
                 id="close"),
    pytest.param({"type": "close"}, {"status": "closed"}, {}, {"status": "closed"},
                 id="close-closed"),
])
def test_set_and_close(impl: Any, action: dict[str, Any], ticket_fields: dict[str, Any],
                       changes: dict[str, Any], after: dict[str, Any]) -> None:
    ev = run(impl, [action], ticket=make_ticket(**ticket_fields))
    assert ev.matched == ["r0"]
    assert ev.changes == changes
    assert ev.ticket == make_ticket(**{**ticket_fields, **after})
    assert ev.effects == []


def test_set_null_on_missing_field_changes_nothing(impl: Any) -> None:
    ticket = make_ticket()
    del ticket["department"]
    ev = run(impl, [set_("department", None)], ticket=ticket)
    assert ev.changes == {}


def test_set_custom_without_custom_object(impl: Any) -> None:
    ticket = make_ticket()
    del ticket["custom"]
    ev = run(impl, [set_("custom.tier", "gold")], ticket=ticket)
    assert ev.changes == {"custom.tier": [None, "gold"]}
    assert ev.ticket["custom"] == {"tier": "gold"}


# --- tags ---------------------------------------------------------------------------------------

def add(*tags: str) -> dict[str, Any]:
    return {"type": "add_tags", "tags": list(tags)}


def remove(*tags: str) -> dict[str, Any]:
    return {"type": "remove_tags", "tags": list(tags)}


@pytest.mark.parametrize("start, rules, tags, changes", [
    pytest.param(["billing"], [[add("vip", "refund")]], ["billing", "vip", "refund"],
                 {"added": ["vip", "refund"], "removed": []}, id="add-keeps-order"),
    pytest.param(["billing"], [[add("BILLING")]], ["billing"], None, id="add-present-any-case"),
    pytest.param(["billing"], [[add("vip", "VIP", "Vip")]], ["billing", "vip"],
                 {"added": ["vip"], "removed": []}, id="add-unique-case-insensitively"),
    pytest.param(["billing", "vip"], [[remove("BILLING")]], ["vip"],
                 {"added": [], "removed": ["billing"]}, id="remove-any-case"),
    pytest.param(["billing"], [[remove("absent")]], ["billing"], None, id="remove-absent"),
    pytest.param(["billing"], [[add("vip"), remove("vip")]], ["billing"], None,
                 id="add-then-remove-same-rule"),
    pytest.param(["billing"], [[add("vip")], [remove("VIP")]], ["billing"], None,
                 id="add-then-remove-later-rule"),
    pytest.param(["a", "b"], [[remove("a")], [add("a")]], ["b", "a"], None,
                 id="remove-then-add-moves-to-end"),
    pytest.param(["billing"], [[remove("billing")], [add("BILLING")]], ["BILLING"], None,
                 id="remove-then-add-other-case-is-no-change"),
    pytest.param(["a"], [[add("b")], [add("c"), add("B")], [add("d")]], ["a", "b", "c", "d"],
                 {"added": ["b", "c", "d"], "removed": []}, id="insertion-order-across-rules"),
    pytest.param(["a", "b", "c"], [[remove("c", "a"), add("x")]], ["b", "x"],
                 {"added": ["x"], "removed": ["a", "c"]}, id="removed-in-ticket-order"),
    pytest.param(["Straße"], [[add("STRASSE")]], ["Straße"], None, id="unicode-casefold"),
    pytest.param([], [[add("vip")]], ["vip"], {"added": ["vip"], "removed": []},
                 id="first-tag"),
])
def test_tags(impl: Any, start: list[str], rules: list[list[dict[str, Any]]], tags: list[str],
              changes: dict[str, Any] | None) -> None:
    ev = run(impl, *rules, ticket=make_ticket(tags=start))
    assert ev.ticket["tags"] == tags
    assert ev.changes.get("tags") == changes
    assert set(ev.changes) <= {"tags"}


def test_add_tags_to_ticket_without_tags(impl: Any) -> None:
    ticket = make_ticket()
    del ticket["tags"]
    ev = run(impl, [add("vip")], ticket=ticket)
    assert ev.ticket["tags"] == ["vip"]
    assert ev.changes == {"tags": {"added": ["vip"], "removed": []}}
    ev = run(impl, [remove("vip")], ticket=ticket)
    assert ev.changes == {}


# --- contact groups ------------------------------------------------------------------------------

def join(group: str) -> dict[str, Any]:
    return {"type": "add_to_group", "group": group}


def leave(group: str) -> dict[str, Any]:
    return {"type": "remove_from_group", "group": group}


@pytest.mark.parametrize("start, rules, groups, changes", [
    pytest.param(["vip"], [[join("trial")]], ["vip", "trial"],
                 {"added": ["trial"], "removed": []}, id="add"),
    pytest.param(["vip"], [[join("VIP")]], ["vip"], None, id="add-present-any-case"),
    pytest.param(["vip", "trial"], [[leave("VIP")]], ["trial"],
                 {"added": [], "removed": ["vip"]}, id="remove-any-case"),
    pytest.param(["vip"], [[leave("trial")]], ["vip"], None, id="remove-absent"),
    pytest.param(["vip"], [[join("trial")], [leave("Trial")]], ["vip"], None,
                 id="add-then-remove"),
    pytest.param(["vip"], [[leave("vip"), join("reseller"), join("VIP")]], ["reseller", "VIP"],
                 {"added": ["reseller"], "removed": []}, id="mixed"),
])
def test_groups(impl: Any, start: list[str], rules: list[list[dict[str, Any]]],
                groups: list[str], changes: dict[str, Any] | None) -> None:
    ticket = make_ticket()
    ticket["contact"]["groups"] = start
    ev = run(impl, *rules, ticket=ticket)
    assert ev.ticket["contact"]["groups"] == groups
    assert ev.changes.get("contact.groups") == changes
    assert set(ev.changes) <= {"contact.groups"}


@pytest.mark.parametrize("contact", [None, "missing"])
def test_group_actions_without_contact_do_nothing(impl: Any, contact: Any) -> None:
    ticket = make_ticket(contact=None)
    if contact == "missing":
        del ticket["contact"]
    ev = run(impl, [join("vip"), add("x")], [leave("vip")], ticket=ticket)
    assert ev.matched == ["r0", "r1"]
    assert ev.changes == {"tags": {"added": ["x"], "removed": []}}
    assert ev.ticket.get("contact") is None
    assert ev.explain[0]["notes"] and ev.explain[1]["notes"]  # the explain says so


def test_group_add_to_contact_without_groups(impl: Any) -> None:
    ticket = make_ticket()
    del ticket["contact"]["groups"]
    ev = run(impl, [join("vip")], ticket=ticket)
    assert ev.ticket["contact"]["groups"] == ["vip"]
    assert ev.changes == {"contact.groups": {"added": ["vip"], "removed": []}}


# --- effects ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("action, effect", [
    pytest.param({"type": "apply_sla", "policy": "vip"}, {"type": "apply_sla", "policy": "vip"},
                 id="apply_sla"),
    pytest.param({"type": "snooze", "for": "1h30m"}, {"type": "snooze", "for": "1h30m"},
                 id="snooze-for"),
    pytest.param({"type": "snooze", "until": "2026-11-24T08:00:00Z"},
                 {"type": "snooze", "until": "2026-11-24T08:00:00Z"}, id="snooze-until"),
    pytest.param({"type": "wake"}, {"type": "wake"}, id="wake"),
    pytest.param({"type": "send_message", "template": "Hi {{contact.name}}"},
                 {"type": "send_message", "template": "Hi {{contact.name}}", "body": "Hi Ann"},
                 id="send_message"),
    pytest.param({"type": "notify", "target": "team:billing", "message": "{{ticket.subject}}!"},
                 {"type": "notify", "target": "team:billing", "message": "Refund please!"},
                 id="notify-renders-message"),
    pytest.param({"type": "webhook", "url": "https://hooks.example.com/x"},
                 {"type": "webhook", "url": "https://hooks.example.com/x", "method": "POST"},
                 id="webhook-default-method"),
    pytest.param({"type": "webhook", "url": "https://hooks.example.com/x", "method": "PUT",
                  "headers": {"X-A": "1"}, "body": {"id": "{{ticket.id}}"}},
                 {"type": "webhook", "url": "https://hooks.example.com/x", "method": "PUT",
                  "headers": {"X-A": "1"}, "body": {"id": "{{ticket.id}}"}},
                 id="webhook-headers-body"),
    pytest.param({"type": "webhook", "url": "https://hooks.example.com/x", "body": "x"},
                 {"type": "webhook", "url": "https://hooks.example.com/x", "method": "POST",
                  "body": "x"}, id="webhook-body-only"),
    pytest.param({"type": "http_request", "url": "https://crm.example.com/c",
                  "map": {"customer_type": "$.customerType"}},
                 {"type": "http_request", "url": "https://crm.example.com/c", "method": "GET",
                  "map": {"customer_type": "$.customerType"}}, id="http_request-no-handler"),
    pytest.param({"type": "http_request", "url": "https://crm.example.com/c", "method": "POST",
                  "headers": {"A": "b"}, "secret": "CRM_TOKEN"},
                 {"type": "http_request", "url": "https://crm.example.com/c", "method": "POST",
                  "headers": {"A": "b"}, "secret": "CRM_TOKEN"}, id="http_request-as-written"),
    pytest.param({"type": "run_script", "script": "crm-vip"},
                 {"type": "run_script", "script": "crm-vip"}, id="run_script"),
    pytest.param({"type": "run_script", "script": "crm-vip", "version": 3},
                 {"type": "run_script", "script": "crm-vip", "version": 3},
                 id="run_script-version"),
])
def test_effect_shapes(impl: Any, action: dict[str, Any], effect: dict[str, Any]) -> None:
    ev = run(impl, [action])
    assert ev.effects == [effect]
    assert ev.changes == {}
    assert ev.ticket == make_ticket()


def test_effects_in_order_across_actions_and_rules(impl: Any) -> None:
    rules = [
        make_rule("a", actions=[{"type": "wake"}, {"type": "apply_sla", "policy": "p1"}]),
        make_rule("skipped", conditions={"field": "status", "op": "is", "value": "closed"},
                  actions=[{"type": "apply_sla", "policy": "never"}]),
        make_rule("b", actions=[{"type": "snooze", "for": "5m"}, {"type": "close"},
                                {"type": "apply_sla", "policy": "p2"}]),
    ]
    ev = impl.compile_rules(rules).evaluate(make_event(), make_ticket(), now=NOW)
    assert ev.effects == [{"type": "wake"}, {"type": "apply_sla", "policy": "p1"},
                          {"type": "snooze", "for": "5m"}, {"type": "apply_sla", "policy": "p2"}]
    assert ev.changes == {"status": ["open", "closed"]}


# --- templates ----------------------------------------------------------------------------------

@pytest.mark.parametrize("template, body", [
    pytest.param("Hi {{contact.name}}, re: {{ticket.subject}}", "Hi Ann, re: Refund please",
                 id="fields"),
    pytest.param("{{ ticket.subject }}|{{  contact.email}}", "Refund please|ann@example.com",
                 id="spaces-inside-braces"),
    pytest.param("{{message.body}} via {{message.channel}}", "I want my money back via chat",
                 id="message"),
    pytest.param("[{{ticket.tags}}] [{{contact.groups}}]", "[billing, refund] [vip]",
                 id="lists-joined"),
    pytest.param("[{{ticket.department}}]", "[]", id="null-empty"),
    pytest.param("{{ticket.custom.n}} {{ticket.custom.b}} {{ticket.custom.f}}", "5 true 2.5",
                 id="numbers-and-booleans-as-json"),
    pytest.param("{{ticket.custom.a.b}}", "flat", id="custom-flat-key"),
    pytest.param("{{ticket.custom.plan}}", "pro", id="custom"),
    pytest.param("[{{ticket.nope}}][{{nope}}][{{contact.nope}}][{{vars.nope}}]", "[][][][]",
                 id="unknown-placeholders-empty"),
    pytest.param("[{{ticket.__class__}}]", "[]", id="no-attribute-access"),
    pytest.param("[{{ticket.subject.upper}}]", "[]", id="no-method-lookup"),
    pytest.param("[{{ticket.subject.__len__}}]", "[]", id="no-dunder"),
    pytest.param("[{{ 7*7 }}]", "[]", id="no-arithmetic"),
    pytest.param("[{{ticket.__class__.__mro__}}]", "[]", id="no-attribute-chain"),
    pytest.param("{ticket.subject} {%raw%}", "{ticket.subject} {%raw%}", id="not-placeholders"),
    pytest.param("no placeholders", "no placeholders", id="plain"),
])
def test_template_rendering(impl: Any, template: str, body: str) -> None:
    ticket = make_ticket(tags=["billing", "refund"],
                         custom={"plan": "pro", "n": 5, "b": True, "f": 2.5, "a.b": "flat"})
    ev = run(impl, [{"type": "send_message", "template": template}], ticket=ticket)
    assert ev.effects == [{"type": "send_message", "template": template, "body": body}]


def test_template_output_is_not_rendered_again(impl: Any) -> None:
    ticket = make_ticket(subject="{{ticket.id}} {{contact.email}}")
    ev = run(impl, [{"type": "send_message", "template": "re: {{ticket.subject}}"}],
             ticket=ticket)
    assert ev.effects[0]["body"] == "re: {{ticket.id}} {{contact.email}}"


def test_template_sees_the_ticket_as_earlier_actions_left_it(impl: Any) -> None:
    ev = run(impl, [set_("priority", "urgent"), add("vip"),
                    {"type": "send_message", "template": "{{ticket.priority}} {{ticket.tags}}"}])
    assert ev.effects[0]["body"] == "urgent billing, vip"


def test_template_renders_vars(impl: Any) -> None:
    def http_request(action: Any, ticket: Any, event: Any, vars: Any) -> dict[str, Any]:
        return {"customer_type": "VIP", "score": 7}

    ev = run(impl, [{"type": "http_request", "url": "https://crm.example.com/c"}],
             [{"type": "send_message", "template": "{{vars.customer_type}}/{{vars.score}}"}],
             handlers={"http_request": http_request})
    assert ev.effects == [{"type": "send_message",
                           "template": "{{vars.customer_type}}/{{vars.score}}", "body": "VIP/7"}]
    assert ev.vars == {"customer_type": "VIP", "score": 7}


# --- the changes shape ----------------------------------------------------------------------------

def test_changes_shape(impl: Any) -> None:
    ev = run(impl, [set_("priority", "urgent"), set_("department", "vip-desk"), add("vip"),
                    remove("billing"), set_("custom.tier", "gold"), join("trial")])
    assert ev.changes == {
        "priority": ["normal", "urgent"],
        "department": [None, "vip-desk"],
        "tags": {"added": ["vip"], "removed": ["billing"]},
        "custom.tier": [None, "gold"],
        "contact.groups": {"added": ["trial"], "removed": []},
    }


def test_changes_are_net(impl: Any) -> None:
    ev = run(impl, [set_("priority", "urgent"), set_("custom.plan", None), add("vip")],
             [set_("priority", "normal"), set_("custom.plan", "pro"), remove("vip")])
    assert ev.matched == ["r0", "r1"]
    assert ev.changes == {}
    assert ev.ticket == make_ticket()


def test_changes_are_against_the_merged_ticket_not_previous(impl: Any) -> None:
    previous = make_ticket(priority="low", tags=[])
    ev = run(impl, [set_("priority", "urgent")], previous=previous)
    assert ev.changes == {"priority": ["normal", "urgent"]}


def test_no_changes_when_nothing_matches(impl: Any) -> None:
    rules = [make_rule("r", conditions={"any": []}, actions=[set_("priority", "urgent")])]
    ev = impl.compile_rules(rules).evaluate(make_event(), make_ticket(), now=NOW)
    assert (ev.matched, ev.changes, ev.effects) == ([], {}, [])
    assert ev.ticket == make_ticket()


# --- handlers ------------------------------------------------------------------------------------

def test_http_request_handler_failure_is_reported_and_pass_goes_on(impl: Any) -> None:
    def http_request(action: Any, ticket: Any, event: Any, vars: Any) -> dict[str, Any]:
        raise RuntimeError("CRM down")

    ev = run(impl, [{"type": "http_request", "url": "https://crm.example.com/c"}, add("a")],
             [add("b")], handlers={"http_request": http_request})
    assert ev.matched == ["r0", "r1"]
    assert ev.explain[0]["errors"] and not ev.explain[1]["errors"]
    assert ev.ticket["tags"] == ["billing", "a", "b"]
    assert ev.vars == {}
    assert ev.effects == []


def test_run_script_handler_updates_apply_at_their_place(impl: Any) -> None:
    def run_script(action: Any, event: Any, ticket: Any) -> dict[str, Any]:
        return {"priority": "urgent", "add_tags": ["vip"], "custom": {"tier": "gold"}}

    rules = [
        make_rule("script", actions=[{"type": "run_script", "script": "crm-vip"}]),
        make_rule("after", conditions={"field": "priority", "op": "is", "value": "urgent"},
                  actions=[add("seen-urgent")]),
    ]
    ev = impl.compile_rules(rules).evaluate(make_event(), make_ticket(), now=NOW,
                                            handlers={"run_script": run_script})
    assert ev.matched == ["script", "after"]
    assert ev.changes == {"priority": ["normal", "urgent"], "custom.tier": [None, "gold"],
                          "tags": {"added": ["vip", "seen-urgent"], "removed": []}}
    assert ev.effects == []


def test_run_script_invalid_updates_apply_nothing(impl: Any) -> None:
    def run_script(action: Any, event: Any, ticket: Any) -> dict[str, Any]:
        return {"priority": "urgent", "subject": "hacked"}

    ev = run(impl, [{"type": "run_script", "script": "bad"}, add("a")],
             handlers={"run_script": run_script})
    assert ev.explain[0]["errors"]
    assert ev.changes == {"tags": {"added": ["a"], "removed": []}}


def test_handlers_see_the_ticket_as_it_stands_and_get_copies(impl: Any) -> None:
    seen: list[Any] = []

    def http_request(action: Any, ticket: Any, event: Any, vars: Any) -> dict[str, Any]:
        seen.append(("http", list(ticket["tags"]), ticket["priority"], dict(vars)))
        ticket["tags"].append("mutated-by-handler")
        action["url"] = "https://evil.example.com/"
        vars["sneaky"] = True
        return {"n": sum(1 for call in seen if call[0] == "http")}

    def run_script(action: Any, event: Any, ticket: Any) -> dict[str, Any]:
        seen.append(("script", list(ticket["tags"]), ticket["priority"]))
        ticket["status"] = "solved"
        return {"custom": {"tier": "gold"}}

    rules = [make_rule("a", actions=[add("x"), {"type": "http_request",
                                                "url": "https://crm.example.com/c"}]),
             make_rule("b", actions=[set_("priority", "high"),
                                     {"type": "run_script", "script": "s"},
                                     {"type": "http_request", "url": "https://crm.example.com/c"}])]
    ruleset = impl.compile_rules(rules)
    handlers = {"http_request": http_request, "run_script": run_script}
    ev = ruleset.evaluate(make_event(), make_ticket(), now=NOW, handlers=handlers)
    assert seen == [("http", ["billing", "x"], "normal", {}),
                    ("script", ["billing", "x"], "high"),
                    ("http", ["billing", "x"], "high", {"n": 1})]
    assert ev.vars == {"n": 2}
    assert ev.ticket["tags"] == ["billing", "x"]
    assert ev.ticket["status"] == "open"
    assert ev.changes == {"priority": ["normal", "high"], "custom.tier": [None, "gold"],
                          "tags": {"added": ["x"], "removed": []}}
    assert rules[0]["actions"][1]["url"] == "https://crm.example.com/c"


def test_script_actions_take_their_place_among_effects(impl: Any) -> None:
    def run_script(action: Any, event: Any, ticket: Any) -> dict[str, Any]:
        return {"actions": [{"type": "wake"},
                            {"type": "send_message", "template": "for {{contact.name}}"}]}

    ev = run(impl, [{"type": "apply_sla", "policy": "p1"}, {"type": "run_script", "script": "s"},
                    {"type": "apply_sla", "policy": "p2"}],
             handlers={"run_script": run_script})
    assert ev.effects == [{"type": "apply_sla", "policy": "p1"}, {"type": "wake"},
                          {"type": "send_message", "template": "for {{contact.name}}",
                           "body": "for Ann"},
                          {"type": "apply_sla", "policy": "p2"}]


# --- send_message's allow_auto_reply (issue 8: the service's loop guard reads it) ----------------

def test_allow_auto_reply_is_carried_on_the_effect(impl: Any) -> None:
    rules = [make_rule("plain", actions=[{"type": "send_message", "template": "Hi"}]),
             make_rule("yes", actions=[{"type": "send_message", "template": "Hi", "allow_auto_reply": True}]),
             make_rule("no", actions=[{"type": "send_message", "template": "Hi", "allow_auto_reply": False}])]
    ev = impl.compile_rules(rules).evaluate(make_event(), make_ticket(), now=NOW)
    assert ev.effects == [{"type": "send_message", "template": "Hi", "body": "Hi"},
                          {"type": "send_message", "template": "Hi", "body": "Hi", "allow_auto_reply": True},
                          {"type": "send_message", "template": "Hi", "body": "Hi"}]


@pytest.mark.parametrize("value", ["yes", 1, None, []])
def test_allow_auto_reply_must_be_a_boolean(engine: Any, value: Any) -> None:
    rule = make_rule("r", actions=[{"type": "send_message", "template": "Hi", "allow_auto_reply": value}])
    with pytest.raises(engine.RuleError) as err:
        engine.compile_rules([rule])
    assert (err.value.path, err.value.reason) == ("actions[0].allow_auto_reply", "must be true or false")
