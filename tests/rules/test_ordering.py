"""One pass in rule order: each rule sees earlier rules' changes, fires once; stop, disabled rules,
trigger filtering, explain, and that evaluate leaves its arguments alone.

Several tests pad the rule set with many rules on the same fields, so that an engine with a
discrimination (value) index uses it: the answers must still be those of a plain in-order pass.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ruletools import NOW, make_event, make_rule, make_ticket


def status_is(value: str) -> dict[str, Any]:
    return {"field": "status", "op": "is", "value": value}


def set_(field: str, value: Any) -> dict[str, Any]:
    return {"type": "set", "field": field, "value": value}


def tag(name: str) -> dict[str, Any]:
    return {"type": "add_tags", "tags": [name]}


def padding(n: int) -> list[dict[str, Any]]:
    """Rules that never match the default ticket but share its fields' vocabularies."""
    rules = []
    for i in range(n):
        rules.append(make_rule(f"pad-{i}", conditions={"all": [
            {"field": "status", "op": "is", "value": ["new", "pending", "on_hold", "solved"][i % 4]},
            {"field": "channel", "op": "in", "value": [f"channel-{i}", "sms"]},
            {"field": "contact.groups", "op": "includes", "value": f"group-{i}"},
        ]}, actions=[tag(f"pad-{i}")]))
    return rules


def evaluate(impl: Any, rules: list[dict[str, Any]], ticket: dict[str, Any] | None = None,
             event: dict[str, Any] | None = None, **kw: Any) -> Any:
    return impl.compile_rules(rules).evaluate(event or make_event(), ticket or make_ticket(),
                                              now=NOW, **kw)


@pytest.fixture(params=[0, 300], ids=["plain", "padded"])
def pad(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return padding(request.param)


def test_rules_fire_in_order(impl: Any, pad: list[dict[str, Any]]) -> None:
    rules = [make_rule("c"), *pad, make_rule("a"), make_rule("b")]
    ev = evaluate(impl, rules)
    assert ev.matched == ["c", "a", "b"]
    assert ev.ticket["tags"] == ["billing", "hit-c", "hit-a", "hit-b"]


def test_later_rule_sees_earlier_change(impl: Any, pad: list[dict[str, Any]]) -> None:
    rules = [
        make_rule("escalate", actions=[set_("priority", "urgent")]),
        *pad,
        make_rule("urgent", conditions={"field": "priority", "op": "is", "value": "urgent"}),
    ]
    ev = evaluate(impl, rules)
    assert ev.matched == ["escalate", "urgent"]


def test_earlier_rule_does_not_see_later_change(impl: Any, pad: list[dict[str, Any]]) -> None:
    rules = [
        make_rule("urgent", conditions={"field": "priority", "op": "is", "value": "urgent"}),
        *pad,
        make_rule("escalate", actions=[set_("priority", "urgent")]),
    ]
    ev = evaluate(impl, rules)
    assert ev.matched == ["escalate"]
    assert ev.explain[0]["failed"]["seen"] == "normal"


@pytest.mark.parametrize("change, now_true, now_false", [
    pytest.param(set_("status", "pending"), status_is("pending"), status_is("open"), id="status"),
    pytest.param(tag("vip"), {"field": "tags", "op": "includes", "value": "VIP"},
                 {"field": "tags", "op": "excludes", "value": "vip"}, id="tags"),
    pytest.param({"type": "remove_tags", "tags": ["billing"]},
                 {"field": "tags", "op": "excludes", "value": "billing"},
                 {"field": "tags", "op": "includes_any", "value": ["billing", "x"]},
                 id="tags-removed"),
    pytest.param({"type": "add_to_group", "group": "reseller"},
                 {"field": "contact.groups", "op": "includes_all", "value": ["vip", "reseller"]},
                 {"field": "contact.groups", "op": "excludes", "value": "reseller"}, id="groups"),
    pytest.param({"type": "remove_from_group", "group": "vip"},
                 {"field": "contact.groups", "op": "is_empty"},
                 {"field": "contact.groups", "op": "includes", "value": "vip"},
                 id="groups-removed"),
    pytest.param(set_("department", "vip-desk"),
                 {"field": "department", "op": "in", "value": ["sales", "VIP-desk"]},
                 {"field": "department", "op": "is_empty"}, id="department"),
    pytest.param(set_("custom.tier", "gold"), {"field": "custom.tier", "op": "is", "value": "gold"},
                 {"field": "custom.tier", "op": "not_in", "value": ["gold"]}, id="custom"),
    pytest.param({"type": "close"}, status_is("closed"),
                 {"field": "status", "op": "in", "value": ["open", "new"]}, id="close"),
    pytest.param(set_("priority", "high"),
                 {"field": "priority", "op": "changed_to", "value": "high"},
                 {"field": "priority", "op": "is", "value": "normal"},
                 id="changed-to"),
])
def test_condition_made_true_by_an_earlier_rule(impl: Any, pad: list[dict[str, Any]],
                                                change: dict[str, Any], now_true: dict[str, Any],
                                                now_false: dict[str, Any]) -> None:
    """Catches an index computed once from the ticket before the pass."""
    rules = [
        make_rule("before-true", conditions=now_true),
        make_rule("before-false", conditions=now_false),
        make_rule("change", conditions=status_is("open"), actions=[change]),
        *pad,
        make_rule("after-true", conditions=now_true),
        make_rule("after-false", conditions=now_false),
    ]
    ev = evaluate(impl, rules, previous=make_ticket())
    assert ev.matched == ["before-false", "change", "after-true"]


def test_each_rule_fires_at_most_once(impl: Any, pad: list[dict[str, Any]]) -> None:
    rules = [
        make_rule("flip", conditions={"field": "tags", "op": "excludes", "value": "done"},
                  actions=[tag("done"), {"type": "remove_tags", "tags": ["done"]},
                           {"type": "wake"}]),
        *pad,
    ]
    ev = evaluate(impl, rules)
    assert ev.matched == ["flip"]
    assert ev.effects == [{"type": "wake"}]


def test_stop(impl: Any, pad: list[dict[str, Any]]) -> None:
    rules = [
        make_rule("first"),
        make_rule("no-match-stopper", conditions=status_is("closed"), stop=True),
        make_rule("stopper", stop=True, actions=[tag("s"), {"type": "wake"}]),
        *pad,
        make_rule("after", actions=[{"type": "close"}]),
    ]
    ev = evaluate(impl, rules)
    assert ev.matched == ["first", "stopper"]
    assert [e["name"] for e in ev.explain] == ["first", "no-match-stopper", "stopper"]
    assert ev.ticket["status"] == "open"
    assert ev.effects == [{"type": "wake"}]


def test_stop_false_does_not_stop(impl: Any) -> None:
    ev = evaluate(impl, [make_rule("a", stop=False), make_rule("b")])
    assert ev.matched == ["a", "b"]


def test_disabled_rules_are_skipped(impl: Any, pad: list[dict[str, Any]]) -> None:
    rules = [make_rule("off", enabled=False, stop=True), *pad, make_rule("on", enabled=True),
             make_rule("default")]
    ev = evaluate(impl, rules)
    assert ev.matched == ["on", "default"]
    assert "off" not in [e["name"] for e in ev.explain]


def test_triggers_filter_by_event_type(impl: Any) -> None:
    rules = [make_rule("created", triggers=["ticket.created"]),
             make_rule("reply", triggers=["message.received", "ticket.updated"]),
             make_rule("sla", triggers=["sla.breached"])]
    ev = evaluate(impl, rules, event=make_event("message.received", message={"body": "x"}))
    assert ev.matched == ["reply"]
    assert [e["name"] for e in ev.explain] == ["reply"]
    ev = evaluate(impl, rules, event=make_event("sla.breached"))
    assert ev.matched == ["sla"]
    ev = evaluate(impl, rules, event=make_event("time.reached"))
    assert (ev.matched, ev.explain) == ([], [])


def test_matched_lists_ids_then_names(impl: Any) -> None:
    rules = [make_rule("named", id="rule-7"), make_rule("only-name")]
    ev = evaluate(impl, rules)
    assert ev.matched == ["rule-7", "only-name"]
    assert [(e["id"], e["name"], e["matched"]) for e in ev.explain] == [
        ("rule-7", "named", True), (None, "only-name", True)]


def _everything_rule() -> dict[str, Any]:
    return make_rule("all", actions=[
        set_("priority", "urgent"), set_("custom.plan", None), set_("custom.x", {"a": [1]}),
        tag("vip"), {"type": "remove_tags", "tags": ["billing"]},
        {"type": "add_to_group", "group": "g"}, {"type": "remove_from_group", "group": "vip"},
        {"type": "close"}, {"type": "send_message", "template": "{{ticket.subject}}"},
        {"type": "webhook", "url": "https://h.example.com/", "headers": {"A": "1"},
         "body": {"k": ["v"]}},
        {"type": "http_request", "url": "https://crm.example.com/", "map": {"t": "$.t"}}])


def _arguments() -> tuple[Any, ...]:
    rules = [_everything_rule(), *padding(50)]
    ticket, previous = make_ticket(), make_ticket(priority="low")
    event = make_event("message.received", message={"author": "customer", "body": "x"},
                       ticket={"id": "T-1", "subject": "merged already"})
    return rules, ticket, previous, event


EXPECTED_CHANGES = {"priority": ["normal", "urgent"], "status": ["open", "closed"],
                    "custom.plan": ["pro", None], "custom.x": [None, {"a": [1]}],
                    "tags": {"added": ["vip"], "removed": ["billing"]},
                    "contact.groups": {"added": ["g"], "removed": ["vip"]}}


def test_evaluate_does_not_mutate_its_arguments(impl: Any) -> None:
    rules, ticket, previous, event = arguments = _arguments()
    saved = copy.deepcopy(arguments)
    ruleset = impl.compile_rules(rules)
    assert (rules, ticket, previous, event) == saved
    ev = ruleset.evaluate(event, ticket, previous=previous, now=NOW)
    assert (rules, ticket, previous, event) == saved
    assert ev.ticket is not ticket
    assert ev.changes == EXPECTED_CHANGES
    again = ruleset.evaluate(event, ticket, previous=previous, now=NOW)
    assert (again.ticket, again.changes, again.effects) == (ev.ticket, ev.changes, ev.effects)


def test_results_share_nothing_with_arguments_or_ruleset(impl: Any) -> None:
    """A caller (the service) may change a result; that must not reach its inputs or the rules."""
    rules, ticket, previous, event = arguments = _arguments()
    saved = copy.deepcopy(arguments)
    ruleset = impl.compile_rules(rules)
    first = ruleset.evaluate(event, ticket, previous=previous, now=NOW)
    first.ticket["tags"].append("leak")
    first.ticket["contact"]["groups"].append("leak")
    first.ticket["custom"]["x"]["a"].append("leak")
    first.changes["custom.x"][1]["a"].append("leak")
    first.effects[1]["headers"]["A"] = "leak"
    first.effects[1]["body"]["k"].append("leak")
    first.effects[2]["map"]["t"] = "leak"
    assert (rules, ticket, previous, event) == saved
    second = ruleset.evaluate(event, ticket, previous=previous, now=NOW)
    assert second.ticket["tags"] == ["vip"]
    assert second.ticket["contact"]["groups"] == ["g"]
    assert second.ticket["custom"] == {"x": {"a": [1]}}
    assert second.changes == EXPECTED_CHANGES
    assert second.effects[1:] == [
        {"type": "webhook", "url": "https://h.example.com/", "method": "POST",
         "headers": {"A": "1"}, "body": {"k": ["v"]}},
        {"type": "http_request", "url": "https://crm.example.com/", "method": "GET",
         "map": {"t": "$.t"}}]


def test_ruleset_keeps_its_rules_when_the_caller_edits_them(impl: Any) -> None:
    rules = [make_rule("r", conditions=status_is("open"), actions=[set_("priority", "high")])]
    ruleset = impl.compile_rules(rules)
    rules[0]["conditions"]["value"] = "closed"
    rules[0]["actions"][0]["value"] = "low"
    ev = ruleset.evaluate(make_event(), make_ticket(), now=NOW)
    assert ev.matched == ["r"]
    assert ev.changes == {"priority": ["normal", "high"]}


def test_event_ticket_is_not_merged_again(impl: Any) -> None:
    event = make_event(ticket={"id": "T-1", "subject": "from the event", "status": "new"})
    rules = [make_rule("r", conditions={"field": "subject", "op": "is", "value": "Refund please"})]
    ev = evaluate(impl, rules, event=event)
    assert ev.matched == ["r"]
    assert ev.ticket["status"] == "open"


# --- explain -------------------------------------------------------------------------------------

LEAF_OK = status_is("open")
LEAF_BAD = status_is("closed")


@pytest.mark.parametrize("conditions, failed", [
    pytest.param(None, None, id="no-conditions"),
    pytest.param({}, None, id="empty-conditions"),
    pytest.param({"all": []}, None, id="empty-all-holds"),
    pytest.param({"any": []}, {"path": "conditions", "field": None, "op": "any", "value": None,
                               "seen": None}, id="empty-any-fails"),
    pytest.param(LEAF_BAD, {"path": "conditions", "field": "status", "op": "is",
                            "value": "closed", "seen": "open"}, id="root-leaf"),
    pytest.param({"all": [LEAF_OK, LEAF_BAD, {"field": "subject", "op": "is", "value": "x"}]},
                 {"path": "conditions.all[1]", "field": "status", "op": "is", "value": "closed",
                  "seen": "open"}, id="first-failing-child"),
    pytest.param({"all": [LEAF_OK, {"any": [LEAF_BAD, LEAF_BAD]}]},
                 {"path": "conditions.all[1]", "field": None, "op": "any", "value": None,
                  "seen": None}, id="any-fails-as-a-node"),
    pytest.param({"any": [LEAF_BAD, {"all": [LEAF_OK]}]}, None, id="any-holds"),
    pytest.param({"all": [{"all": [LEAF_OK, {"all": [{"field": "tags", "op": "includes",
                                                      "value": "vip"}]}]}]},
                 {"path": "conditions.all[0].all[1].all[0]", "field": "tags", "op": "includes",
                  "value": "vip", "seen": ["billing"]}, id="nested-all"),
    pytest.param({"any": [{"all": [LEAF_BAD]}, {"field": "priority", "op": "changed"}]},
                 {"path": "conditions", "field": None, "op": "any", "value": None,
                  "seen": None}, id="any-root"),
    pytest.param({"all": [{"field": "priority", "op": "changed_to", "value": "urgent"}]},
                 {"path": "conditions.all[0]", "field": "priority", "op": "changed_to",
                  "value": "urgent", "seen": ["normal", "normal"]}, id="changed-seen-pair"),
    pytest.param({"all": [{"field": "subject", "op": "matches", "value": "^zzz"},
                          {"field": "description", "op": "contains", "value": "zzz"}, LEAF_BAD]},
                 {"path": "conditions.all[0]", "field": "subject", "op": "matches",
                  "value": "^zzz", "seen": "Refund please"}, id="first-in-order-not-cheapest"),
    pytest.param({"all": [{"field": "created_at", "op": "older_than", "value": "1d"},
                          {"field": "tags", "op": "includes", "value": "zzz"}]},
                 {"path": "conditions.all[0]", "field": "created_at", "op": "older_than",
                  "value": "1d", "seen": "2026-11-23T08:00:00Z"}, id="time-leaf-first"),
    pytest.param({"all": [{"field": "department", "op": "is_not_empty"}]},
                 {"path": "conditions.all[0]", "field": "department", "op": "is_not_empty",
                  "value": None, "seen": None}, id="no-value-op"),
])
def test_explain_failure(impl: Any, conditions: Any, failed: dict[str, Any] | None) -> None:
    rule = make_rule("r", id="r-1", conditions=conditions)
    if conditions is None:
        rule.pop("conditions", None)
    ev = evaluate(impl, [rule], previous=make_ticket())
    assert len(ev.explain) == 1
    entry = ev.explain[0]
    assert (entry["id"], entry["name"], entry["matched"]) == ("r-1", "r", failed is None)
    assert entry["failed"] == failed
    assert ev.matched == ([] if failed else ["r-1"])


def test_changed_compares_previous_with_ticket_as_earlier_rules_left_it(impl: Any) -> None:
    rules = [
        make_rule("not-yet", conditions={"field": "priority", "op": "changed"}),
        make_rule("escalate", actions=[set_("priority", "urgent")]),
        make_rule("from", conditions={"field": "priority", "op": "changed_from",
                                      "value": "normal"}),
        make_rule("to", conditions={"field": "priority", "op": "changed_to", "value": "urgent"}),
        make_rule("back", actions=[set_("priority", "normal")]),
        make_rule("unchanged-again", conditions={"field": "priority", "op": "changed"}),
    ]
    ev = evaluate(impl, rules, previous=make_ticket())
    assert ev.matched == ["escalate", "from", "to", "back"]
    assert ev.explain[5]["failed"]["seen"] == ["normal", "normal"]


def test_duplicate_triggers_still_fire_once(impl: Any, pad: list[dict[str, Any]]) -> None:
    rules = [make_rule("twice", triggers=["ticket.updated", "ticket.updated"],
                       actions=[{"type": "wake"}]), *pad]
    ev = evaluate(impl, rules)
    assert ev.matched == ["twice"]
    assert [e["name"] for e in ev.explain if not e["name"].startswith("pad-")] == ["twice"]
    assert ev.effects == [{"type": "wake"}]


@pytest.mark.parametrize("conditions", [
    pytest.param({"field": "status", "op": "in", "value": ["open", "OPEN", "Open"]},
                 id="in-values-that-fold-together"),
    pytest.param({"field": "tags", "op": "includes_any", "value": ["billing", "BILLING"]},
                 id="includes-any-values-that-fold-together"),
    pytest.param({"any": [status_is("open"), {"field": "priority", "op": "is",
                                              "value": "normal"}]},
                 id="any-of-two-true-equalities"),
    pytest.param({"all": [status_is("open"), status_is("OPEN")]}, id="all-same-key-twice"),
])
def test_rule_filed_under_several_keys_fires_once(impl: Any, pad: list[dict[str, Any]],
                                                  conditions: dict[str, Any]) -> None:
    rules = [*pad[:150], make_rule("r", conditions=conditions, actions=[{"type": "wake"}]),
             *pad[150:]]
    ev = evaluate(impl, rules)
    assert ev.matched == ["r"]
    assert ev.effects == [{"type": "wake"}]


def test_explain_shares_nothing_with_rules_or_arguments(impl: Any) -> None:
    """docs/rules-engine.md, Sharing: explain shares no container with the rules or arguments."""
    rules = [make_rule("in", conditions={"field": "status", "op": "in", "value": ["x", "y"]}),
             make_rule("tags", conditions={"field": "tags", "op": "includes", "value": "vip"}),
             make_rule("changed", conditions={"field": "tags", "op": "changed_to",
                                              "value": ["x"]})]
    ticket, previous = make_ticket(), make_ticket()
    ruleset = impl.compile_rules(rules)
    first = ruleset.evaluate(make_event(), ticket, previous=previous, now=NOW)
    first.explain[0]["failed"]["value"].append("open")
    first.explain[1]["failed"]["seen"].append("vip")
    first.explain[2]["failed"]["seen"][0].append("x")
    assert rules[0]["conditions"]["value"] == ["x", "y"]
    assert ticket == make_ticket()
    assert previous == make_ticket()
    second = ruleset.evaluate(make_event(), ticket, previous=previous, now=NOW)
    assert second.matched == []
