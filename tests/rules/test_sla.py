"""The SLA clock as a pure state machine, driven with fixed instants."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from rules import RuleError
from rules.sla import advance, compile_policy, next_moment, refresh, select_policy, transitions

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)  # a Monday
VIP = {"name": "vip", "conditions": {"field": "contact.groups", "op": "includes", "value": "vip"},
       "targets": {"first_response": "15m", "next_response": "1h", "resolution": "8h"}, "warn_before": "5m"}
TICKET = {"id": "T-1", "status": "open", "created_at": "2026-11-23T09:00:00Z",
          "contact": {"id": "C", "groups": ["vip"]}}
CREATED = {"type": "ticket.created"}


def msg(author: str) -> dict[str, object]:
    return {"type": "message.received" if author == "customer" else "message.sent", "message": {"author": author}}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_first_response_met_then_next_response_cycle() -> None:
    p = compile_policy(VIP)
    sla = advance(p, None, {}, TICKET, CREATED, T0)
    fr = sla["targets"]["first_response"]
    assert (fr["state"], fr["due_at"], fr["warn_at"]) == ("active", "2026-11-23T09:15:00Z", "2026-11-23T09:10:00Z")
    assert "next_response" not in sla["targets"]
    assert next_moment(sla, T0) == at(10)
    sla = advance(p, sla, TICKET, TICKET, msg("agent"), at(7))
    assert sla["targets"]["first_response"]["state"] == "met"
    assert sla["targets"]["first_response"]["met_at"] == "2026-11-23T09:07:00Z"
    sla = advance(p, sla, TICKET, TICKET, msg("customer"), at(20))
    assert sla["targets"]["next_response"]["due_at"] == "2026-11-23T10:20:00Z"
    sla = advance(p, sla, TICKET, TICKET, msg("agent"), at(30))
    assert sla["targets"]["next_response"]["state"] == "met"


def test_warning_then_breach_generate_one_event_each() -> None:
    p = compile_policy(VIP)
    s0 = advance(p, None, {}, TICKET, CREATED, T0)
    s1 = refresh(s0, at(10))
    assert transitions(s0, s1) == [("sla.warning", "first_response")]
    assert transitions(s1, refresh(s1, at(12))) == []
    s2 = refresh(s1, at(15))
    assert transitions(s1, s2) == [("sla.breached", "first_response")]
    late = advance(p, s2, TICKET, TICKET, msg("agent"), at(20))
    assert late["targets"]["first_response"]["state"] == "breached"
    assert late["targets"]["first_response"]["met_at"] == "2026-11-23T09:20:00Z"


def test_snooze_pauses_and_resume_keeps_the_remaining_time() -> None:
    p = compile_policy(VIP)
    sla = advance(p, None, {}, TICKET, CREATED, T0)
    held = dict(TICKET, status="on_hold")
    sla = advance(p, sla, TICKET, held, {"type": "ticket.updated"}, at(5))
    fr = sla["targets"]["first_response"]
    assert (fr["state"], fr["remaining_s"], fr["due_at"]) == ("paused", 600.0, None)
    assert next_moment(sla, at(5)) is None
    sla = advance(p, sla, held, TICKET, {"type": "ticket.woke"}, at(65))
    fr = sla["targets"]["first_response"]
    assert (fr["state"], fr["due_at"]) == ("active", "2026-11-23T10:15:00Z")


def test_pending_pauses_only_when_the_policy_says_so() -> None:
    pending = dict(TICKET, status="pending")
    plain = advance(compile_policy(VIP), None, {}, pending, CREATED, T0)
    assert plain["targets"]["resolution"]["state"] == "active"
    pausing = advance(compile_policy(dict(VIP, pause_on_pending=True)), None, {}, pending, CREATED, T0)
    assert pausing["targets"]["resolution"]["state"] == "paused"


def test_solving_meets_resolution_and_reopening_restarts_it() -> None:
    p = compile_policy(VIP)
    sla = advance(p, None, {}, TICKET, CREATED, T0)
    solved = dict(TICKET, status="solved")
    sla = advance(p, sla, TICKET, solved, {"type": "ticket.updated"}, at(60))
    assert sla["targets"]["resolution"]["state"] == "met"
    sla = advance(p, sla, solved, TICKET, msg("customer"), at(120))
    assert sla["targets"]["resolution"]["state"] == "active"
    assert sla["targets"]["resolution"]["due_at"] == "2026-11-23T19:00:00Z"


def test_business_hours_move_the_due_time_to_the_next_opening() -> None:
    spec = dict(VIP, business_hours={"timezone": "Europe/Oslo", "week": {d: ["09:00", "17:00"] for d in
                                                                          ("mon", "tue", "wed", "thu", "fri")}})
    late_friday = dict(TICKET, created_at="2026-11-27T15:55:00Z")  # 16:55 Oslo
    sla = advance(compile_policy(spec), None, {}, late_friday, CREATED, datetime(2026, 11, 27, 15, 55, tzinfo=timezone.utc))
    # 5 minutes on Friday, 10 from Monday 09:00 Oslo (08:00Z); warning 5 business minutes before
    assert sla["targets"]["first_response"]["due_at"] == "2026-11-30T08:10:00Z"
    assert sla["targets"]["first_response"]["warn_at"] == "2026-11-30T08:05:00Z"


def test_first_matching_policy_applies() -> None:
    policies = [compile_policy(VIP), compile_policy({"name": "default", "targets": {"resolution": "2d"}})]
    assert select_policy(policies, TICKET, CREATED, T0).name == "vip"  # type: ignore[union-attr]
    other = dict(TICKET, contact={"id": "C", "groups": []})
    assert select_policy(policies, other, CREATED, T0).name == "default"  # type: ignore[union-attr]


@pytest.mark.parametrize("spec, path", [
    ({"name": "x", "targets": {}}, "targets"),
    ({"name": "x", "targets": {"first_reply": "1h"}}, "targets.first_reply"),
    ({"name": "x", "targets": {"resolution": "soon"}}, "targets.resolution"),
    ({"name": "x", "targets": {"resolution": "1h"}, "warn_before": "-5m"}, "warn_before"),
    ({"name": "x", "targets": {"resolution": "1h"}, "conditions": {"field": "subject", "op": "gt", "value": 1}}, "conditions.op"),
    ({"name": "x", "targets": {"resolution": "1h"}, "business_hours": {"timezone": "Nowhere/City", "week": {}}},
     "business_hours.timezone"),
    ({"targets": {"resolution": "1h"}}, "name"),
])
def test_bad_policies_name_the_path(spec: dict[str, object], path: str) -> None:
    with pytest.raises(RuleError) as err:
        compile_policy(spec)
    assert err.value.path == path
