"""The engine's service-facing surface: handlers, next_check, apply_updates, dry_run, validate_rule."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from rules import RuleError, UpdateError, apply_updates, compile_rules, dry_run, validate_rule

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
TICKET = {"id": "T-1", "subject": "Refund please", "status": "open", "priority": "normal", "tags": ["billing"],
          "custom": {"plan": "pro"}, "contact": {"id": "C-1", "email": "ann@example.com", "name": "Ann",
                                                 "groups": ["trial"]}}
CREATED = {"type": "ticket.created"}


def rule(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "r", "triggers": ["ticket.created"], "actions": [{"type": "close"}]}
    base.update(kw)
    return base


# ------------------------------------------------------------------ handlers

def test_http_request_handler_sets_vars_seen_by_later_rules() -> None:
    calls = []

    def http_request(action, ticket, event, vars):  # type: ignore[no-untyped-def]
        calls.append(action)
        return {"customer_type": "VIP"}

    rs = compile_rules([
        rule(id="fetch", actions=[{"type": "http_request", "url": "https://crm.example.com/c",
                                   "map": {"customer_type": "$.customerType"}}]),
        rule(id="route", conditions={"field": "vars.customer_type", "op": "is", "value": "vip"},
             actions=[{"type": "set", "field": "department", "value": "vip-desk"},
                      {"type": "send_message", "template": "type={{vars.customer_type}}"}]),
    ])
    ev = rs.evaluate(CREATED, TICKET, now=NOW, handlers={"http_request": http_request})
    assert ev.matched == ["fetch", "route"]
    assert calls[0]["method"] == "GET" and calls[0]["url"] == "https://crm.example.com/c"
    assert ev.vars == {"customer_type": "VIP"}
    assert ev.changes == {"department": [None, "vip-desk"]}
    assert ev.effects == [{"type": "send_message", "template": "type={{vars.customer_type}}", "body": "type=VIP"}]


def test_without_handlers_requests_come_back_as_effects() -> None:
    rs = compile_rules([rule(id="a", actions=[
        {"type": "http_request", "url": "https://crm.example.com/c", "map": {"t": "$.t"}},
        {"type": "run_script", "script": "crm-vip", "version": 2}])])
    ev = rs.evaluate(CREATED, TICKET, now=NOW)
    assert ev.effects == [
        {"type": "http_request", "url": "https://crm.example.com/c", "method": "GET", "map": {"t": "$.t"}},
        {"type": "run_script", "script": "crm-vip", "version": 2},
    ]
    assert ev.changes == {}


def test_run_script_updates_apply_in_place_and_feed_later_rules() -> None:
    def run_script(action, event, ticket):  # type: ignore[no-untyped-def]
        assert ticket["priority"] == "high"  # sees what the earlier action did
        return {"priority": "urgent", "add_tags": ["vip"], "custom": {"tier": "vip", "plan": None},
                "sla_policy": "vip", "snooze": "1h",
                "actions": [{"type": "send_message", "template": "Hi {{contact.name}}"}]}

    rs = compile_rules([
        rule(id="s", actions=[{"type": "set", "field": "priority", "value": "high"},
                              {"type": "run_script", "script": "crm-vip"}]),
        rule(id="after", conditions={"field": "tags", "op": "includes", "value": "VIP"},
             actions=[{"type": "notify", "target": "team:vip", "message": "{{ticket.priority}}"}]),
    ])
    ev = rs.evaluate(CREATED, TICKET, now=NOW, handlers={"run_script": run_script})
    assert ev.matched == ["s", "after"]
    assert ev.changes == {"priority": ["normal", "urgent"], "custom.plan": ["pro", None],
                          "custom.tier": [None, "vip"], "tags": {"added": ["vip"], "removed": []}}
    assert ev.effects == [
        {"type": "apply_sla", "policy": "vip"},
        {"type": "snooze", "for": "1h"},
        {"type": "send_message", "template": "Hi {{contact.name}}", "body": "Hi Ann"},
        {"type": "notify", "target": "team:vip", "message": "urgent"},
    ]


@pytest.mark.parametrize("result, needle", [
    ({"priority": "asap"}, "priority"),
    ({"colour": "red"}, "unknown update key"),
    (["not", "a", "dict"], "None or a dict"),
    ({"add_tags": "vip"}, "add_tags"),
    ({"actions": [{"type": "run_script", "script": "x"}]}, "unknown action type"),
])
def test_invalid_script_updates_apply_nothing_and_are_reported(result: object, needle: str) -> None:
    rs = compile_rules([rule(id="s", actions=[{"type": "add_tags", "tags": ["seen"]},
                                              {"type": "run_script", "script": "bad"}])])
    ev = rs.evaluate(CREATED, TICKET, now=NOW, handlers={"run_script": lambda a, e, t: result})
    assert ev.changes == {"tags": {"added": ["seen"], "removed": []}}  # the other action still applied
    assert needle in ev.explain[0]["errors"][0]


def test_handler_exception_is_data_not_a_crash() -> None:
    def boom(*args: object) -> dict[str, object]:
        raise RuntimeError("CRM down")

    rs = compile_rules([rule(id="a", actions=[{"type": "http_request", "url": "https://x.example"}])])
    ev = rs.evaluate(CREATED, TICKET, now=NOW, handlers={"http_request": boom})
    assert ev.matched == ["a"]
    assert ev.explain[0]["errors"] == ["http_request https://x.example: CRM down"]


# ------------------------------------------------------------------ apply_updates

def test_apply_updates_is_all_or_nothing_and_does_not_mutate() -> None:
    before = {"status": "open", "tags": ["a"], "contact": {"id": "C", "groups": []}}
    with pytest.raises(UpdateError) as err:
        apply_updates(before, {"add_tags": ["b"], "status": "done"})
    assert err.value.path == "status"
    assert before == {"status": "open", "tags": ["a"], "contact": {"id": "C", "groups": []}}
    after, effects = apply_updates(before, {"add_groups": ["VIP"], "remove_tags": ["A"], "snooze": "2026-11-24T09:00:00Z"})
    assert after["contact"]["groups"] == ["VIP"] and after["tags"] == []
    assert effects == [{"type": "snooze", "until": "2026-11-24T09:00:00Z"}]
    assert before["tags"] == ["a"] and before["contact"]["groups"] == []


# ------------------------------------------------------------------ next_check

def test_next_check_is_the_earliest_future_flip_of_a_time_rule() -> None:
    rs = compile_rules([
        rule(id="late", triggers=["time.reached"],
             conditions={"all": [{"field": "last_customer_message_at", "op": "older_than", "value": "15m"},
                                 {"field": "status", "op": "is", "value": "open"}]}),
        rule(id="fresh", triggers=["time.reached"],
             conditions={"field": "created_at", "op": "newer_than", "value": "1h"}),
        rule(id="not-timed", triggers=["ticket.created"],
             conditions={"field": "updated_at", "op": "older_than", "value": "1m"}),
    ])
    t = dict(TICKET, last_customer_message_at="2026-11-23T11:50:00Z", created_at="2026-11-23T12:30:00+01:00",
             updated_at="2026-11-23T11:59:30Z")
    # "fresh" holds already (created 11:30Z, newer than 1h) and has not fired: check now
    assert rs.next_check(t, NOW) == NOW
    # once it fired: newer_than 1h flips at 12:30Z; last message 11:50Z: older_than 15m flips at 12:05Z
    assert rs.next_check(t, NOW, exclude={"fresh"}) == datetime(2026, 11, 23, 12, 5, tzinfo=timezone.utc)
    later = NOW + timedelta(minutes=10)  # "late" holds from 12:05 on
    assert rs.next_check(t, later, exclude={"fresh", "late"}) == datetime(2026, 11, 23, 12, 30, tzinfo=timezone.utc)
    assert rs.next_check(t, NOW + timedelta(hours=1), exclude={"late"}) is None
    assert compile_rules([rule()]).next_check(t, NOW) is None


def test_older_than_holds_from_the_flip_moment_exactly() -> None:
    rs = compile_rules([rule(id="late", triggers=["time.reached"],
                             conditions={"field": "last_customer_message_at", "op": "older_than", "value": "15m"})])
    t = dict(TICKET, last_customer_message_at="2026-11-23T11:50:00Z")
    at = rs.next_check(t, NOW)
    assert at is not None
    assert rs.evaluate({"type": "time.reached"}, t, now=at - timedelta(microseconds=1)).matched == []
    assert rs.evaluate({"type": "time.reached"}, t, now=at).matched == ["late"]


# ------------------------------------------------------------------ dry_run and validate_rule

def test_dry_run_explains_every_leaf_and_applies_nothing() -> None:
    r = rule(id="vip", enabled=False, conditions={"all": [
        {"field": "contact.groups", "op": "includes", "value": "trial"},
        {"any": [{"field": "subject", "op": "contains", "value": "refund"},
                 {"field": "message.body", "op": "matches", "value": "money back"}]}]},
        actions=[{"type": "set", "field": "priority", "value": "urgent"}])
    out = dry_run(r, {"type": "ticket.created", "message": {"body": "hello"}}, TICKET, now=NOW)
    assert out["matched"] is True
    assert out["changes"] == {"priority": ["normal", "urgent"]}
    assert [(c["path"], c["held"], c["seen"]) for c in out["rule"]["conditions"]] == [
        ("conditions.all[0]", True, ["trial"]),
        ("conditions.all[1].any[0]", True, "Refund please"),
        ("conditions.all[1].any[1]", False, "hello"),
    ]
    assert TICKET["priority"] == "normal"
    other = dry_run(r, {"type": "message.sent"}, TICKET, now=NOW)
    assert other["matched"] is False and other["rule"]["failed"]["path"] == "triggers"


def test_validate_rule_lists_every_problem_without_raising() -> None:
    problems = validate_rule({"name": "bad", "triggers": ["ticket.made"], "conditions": {"all": [
        {"field": "subject", "op": "gt", "value": 3}, {"field": "nope", "op": "is", "value": "x"}]},
        "actions": [{"type": "set", "field": "priority", "value": "asap"}, {"type": "explode"}],
        "condition": {}})
    assert [p.path for p in problems] == ["condition", "triggers[0]", "conditions.all[0].op",
                                          "conditions.all[1].field", "actions[0].value", "actions[1].type"]
    assert all(p.rule == "bad" for p in problems)
    assert validate_rule(rule()) == []


def test_compile_rules_reports_all_rules_problems_first_one_raised() -> None:
    with pytest.raises(RuleError) as err:
        compile_rules([rule(id="ok"), rule(id="b1", triggers=[]), rule(id="b2", actions=[{"type": "wake", "x": 1}])])
    assert (err.value.rule, err.value.path) == ("b1", "triggers")
    assert [(e.rule, e.path) for e in err.value.errors] == [("b1", "triggers"), ("b2", "actions[0].x")]
    assert "rule 'b1'" in str(err.value)


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(RuleError, match="same id"):
        compile_rules([rule(id="x"), rule(id="x")])


# ------------------------------------------------------------------ index exactness

def test_value_index_sees_changes_made_earlier_in_the_pass() -> None:
    """Rule 2 is filed under department=vip-desk; it must still fire after rule 1 sets that."""
    rules = [rule(id="set", actions=[{"type": "set", "field": "department", "value": "VIP-desk"},
                                     {"type": "add_to_group", "group": "gold"}])]
    rules.append(rule(id="dept", conditions={"field": "department", "op": "is", "value": "vip-desk"},
                      actions=[{"type": "add_tags", "tags": ["d"]}]))
    rules.append(rule(id="group", conditions={"field": "contact.groups", "op": "includes", "value": "GOLD"},
                      actions=[{"type": "add_tags", "tags": ["g"]}]))
    rules.extend(rule(id=f"filler{i}", conditions={"field": "department", "op": "is", "value": f"d{i}"})
                 for i in range(50))
    rules.append(rule(id="untag", conditions={"field": "tags", "op": "includes", "value": "d"},
                      actions=[{"type": "remove_tags", "tags": ["billing"]}]))
    ev = compile_rules(rules).evaluate(CREATED, TICKET, now=NOW)
    assert ev.matched == ["set", "dept", "group", "untag"]
    assert ev.changes["tags"] == {"added": ["d", "g"], "removed": ["billing"]}
    explain = {e["id"]: e for e in ev.explain}
    assert explain["filler3"]["failed"] == {"path": "conditions", "field": "department", "op": "is",
                                            "value": "d3", "seen": "VIP-desk"}


def test_catastrophic_regex_gives_up_instead_of_hanging() -> None:
    import time

    rs = compile_rules([rule(id="redos", conditions={"field": "message.body", "op": "matches", "value": "(a|aa)+$"}),
                        rule(id="next", actions=[{"type": "add_tags", "tags": ["still-here"]}])])
    start = time.monotonic()
    ev = rs.evaluate({"type": "ticket.created", "message": {"body": "a" * 80 + "!"}}, TICKET, now=NOW)
    assert time.monotonic() - start < 5  # unbounded, this search would run for hours
    assert ev.matched == ["next"]
    assert ev.explain[0]["failed"]["path"] == "conditions"


def test_handlers_get_copies_so_they_cannot_reach_the_callers_data() -> None:
    def vandal_http(action, ticket, event, vars):  # type: ignore[no-untyped-def]
        ticket["contact"]["groups"].append("hacked")
        event["type"] = "changed"
        return {"x": 1}

    def vandal_script(action, event, ticket):  # type: ignore[no-untyped-def]
        ticket["tags"].append("hacked")
        return None

    import copy
    ticket, event = copy.deepcopy(TICKET), {"type": "ticket.created", "message": {"body": "b"}}
    rs = compile_rules([rule(id="a", actions=[{"type": "http_request", "url": "https://x.example"},
                                              {"type": "run_script", "script": "s"}])])
    ev = rs.evaluate(event, ticket, now=NOW, handlers={"http_request": vandal_http, "run_script": vandal_script})
    assert ticket == TICKET and event == {"type": "ticket.created", "message": {"body": "b"}}
    assert ev.changes == {}


def test_time_rule_fires_once_until_its_conditions_stop_holding() -> None:
    """The service's loop: exclude what fired, drop from the fired set what no longer holds."""
    rs = compile_rules([rule(id="nudge", triggers=["time.reached"], conditions={"all": [
        {"field": "last_customer_message_at", "op": "older_than", "value": "1h"},
        {"field": "status", "op": "is", "value": "pending"}]},
        actions=[{"type": "send_message", "template": "Still there?"}])])
    t = dict(TICKET, status="pending", last_customer_message_at="2026-11-23T10:00:00Z")
    tick = {"type": "time.reached"}
    fired: set[str] = set()
    at = rs.next_check(t, NOW - timedelta(hours=1), exclude=fired)
    assert at == datetime(2026, 11, 23, 11, 0, tzinfo=timezone.utc)
    ev = rs.evaluate(tick, t, now=at, exclude=fired)
    assert ev.matched == ["nudge"]
    fired |= set(ev.matched)
    again = rs.evaluate(tick, t, now=at + timedelta(minutes=5), exclude=fired)
    assert again.matched == [] and again.explain[0]["skipped"]
    assert rs.holding(fired, t, now=at) == {"nudge"}
    assert rs.next_check(t, at, exclude=fired) is None  # holds for good: nothing left to flip
    answered = dict(t, status="open")
    fired &= rs.holding(fired, answered, now=at)
    assert fired == set()
    # pending again with the old timestamp: holds at once, so the check is due now
    assert rs.next_check(t, at + timedelta(hours=2), exclude=fired) == at + timedelta(hours=2)


@pytest.mark.parametrize("bad", [
    {"type": "webhook", "url": "https://x.example/\n"},
    {"type": "run_script", "script": "crm\n"},
    {"type": "http_request", "url": "https://x.example", "map": {"v\n": "$.a"}},
    {"type": "http_request", "url": "https://x.example", "map": {5: "$.a"}},
    {"type": "snooze", "for": "1h\n"},
])
def test_a_trailing_newline_or_odd_key_is_not_valid(bad: dict[str, object]) -> None:
    with pytest.raises(RuleError):
        compile_rules([rule(actions=[bad])])
