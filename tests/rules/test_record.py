"""The run record's entries (rules/record.py): which branch of an `any` group held, and the
entries equal to explain's on passes whose fires change what later rules read."""

from __future__ import annotations

from typing import Any

import rules as engine
from ruletools import NOW


def leaf(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def rule(rid: str, conditions: Any, actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": rid, "name": rid, "triggers": ["ticket.created"], "conditions": conditions,
            "actions": actions or [{"type": "add_tags", "tags": [f"fired-{rid}"]}]}


EVENT = {"type": "ticket.created"}
TICKET = {"subject": "Refund please", "priority": "low", "status": "open", "tags": ["vip"],
          "channel": "email", "custom": {"plan": "pro"}}


def run(rules: list[dict[str, Any]], ticket: dict[str, Any] = TICKET) -> tuple[list[Any], list[Any]]:
    rs = engine.compile_rules(rules)
    entries = rs.evaluate(EVENT, ticket, None, NOW).rule_entries()
    explain = rs.evaluate(EVENT, ticket, None, NOW).explain
    return entries, explain


def test_a_matched_rule_names_the_first_branch_in_written_order_that_held() -> None:
    entries, explain = run([rule("r", {"all": [
        leaf("status", "is", "open"),
        {"any": [leaf("priority", "is", "high"), leaf("tags", "includes", "VIP"),
                 leaf("channel", "is", "email")]}]})])
    assert entries[0]["matched"] is True
    # the second and third branches hold: the second is the first that does, in written order
    assert entries[0]["any_held"] == {"conditions.all[1]": "conditions.all[1].any[1]"}
    assert explain[0]["any_held"] == entries[0]["any_held"]


def test_groups_before_the_failing_condition_are_shown_and_none_after_it() -> None:
    entries, explain = run([
        rule("before", {"all": [{"any": [leaf("channel", "is", "chat"), {"all": [
            leaf("priority", "is", "low"), leaf("status", "is", "open")]}]},
            leaf("custom.plan", "is", "free"), {"any": [leaf("channel", "is", "email")]}]}),
        rule("at", {"all": [{"any": [leaf("channel", "is", "chat"), leaf("priority", "is", "high")]},
                            {"any": [leaf("channel", "is", "email")]}]}),
        rule("none", {"all": [leaf("status", "is", "open"), leaf("priority", "is", "urgent")]}),
    ])
    before, at, none = entries
    assert before["failed"]["path"] == "conditions.all[1]"
    # the branch that held is a nested `all` group; the later group is not reached
    assert before["any_held"] == {"conditions.all[0]": "conditions.all[0].any[1]"}
    assert at["failed"] == {"path": "conditions.all[0]", "field": None, "op": "any", "value": None,
                            "seen": None}
    assert "any_held" not in at and "any_held" not in none
    assert [e.get("any_held") for e in explain] == [e.get("any_held") for e in entries]


def test_a_root_any_group_and_a_group_inside_a_branch() -> None:
    entries, _ = run([rule("r", {"any": [
        {"any": [leaf("priority", "is", "high"), leaf("status", "is", "open")]},
        leaf("channel", "is", "email")]})])
    # only groups reached through `all`s from the root are steps: the root here; its first
    # branch (itself a group) held
    assert entries[0]["any_held"] == {"conditions": "conditions.any[0]"}


def test_a_branch_is_read_at_the_rules_turn_after_an_earlier_fire_changed_it() -> None:
    rules = [rule("raise", leaf("status", "is", "open"),
                  [{"type": "set", "field": "priority", "value": "high"}]),
             rule("r", {"all": [{"any": [leaf("priority", "is", "high"), leaf("status", "is", "open")]},
                                leaf("custom.plan", "is", "free")]}),
             rule("m", {"any": [leaf("priority", "is", "low"), leaf("priority", "is", "high")]})]
    entries, explain = run(rules)
    assert entries[1]["any_held"] == {"conditions.all[0]": "conditions.all[0].any[0]"}
    assert entries[1]["failed"]["seen"] == "pro"
    assert entries[2]["matched"] and entries[2]["any_held"] == {"conditions": "conditions.any[1]"}
    assert [e.get("any_held") for e in explain] == [e.get("any_held") for e in entries]


def test_entries_follow_the_tags_a_pass_appended_rule_by_rule() -> None:
    """Fires that only add tags leave one ticket dict whose tags list grows: each rule's `seen`
    is the tags at its turn, and an entry never shares a list with the ticket."""
    rules = [rule(f"add{i}", leaf("status", "is", "open"), [{"type": "add_tags", "tags": [f"a{i}"]}])
             for i in range(3)]
    rules.insert(1, rule("miss", leaf("tags", "includes", "nope")))
    rules.append(rule("miss2", leaf("tags", "includes", "nope")))
    ticket = {**TICKET, "tags": ["vip"]}
    entries, explain = run(rules, ticket)
    seen = {e["id"]: e["failed"]["seen"] for e in entries if e["failed"]}
    assert seen == {"miss": ["vip", "a0"], "miss2": ["vip", "a0", "a1", "a2"]}
    assert [e["failed"] for e in entries] == [e["failed"] for e in explain]
    assert ticket["tags"] == ["vip"]


def test_a_rule_of_many_steps_takes_its_explainer() -> None:
    many = {"all": [{"any": [leaf("status", "is", "open")]}]
            + [leaf("channel", "is", "email") for _ in range(15)] + [leaf("priority", "is", "high")]}
    entries, explain = run([rule("deep", many)])
    assert entries[0]["failed"]["path"] == "conditions.all[16]"
    assert entries[0]["any_held"] == {"conditions.all[0]": "conditions.all[0].any[0]"}
    assert entries[0]["failed"] == explain[0]["failed"]
