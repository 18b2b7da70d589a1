"""Snooze/wake, SLA timers and time-rule bookkeeping around the rules pass (pure; fixed instants)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rules import compile_rules
from rules.sla import compile_policy
from server.automation import _with_timers
from server.timekeeping import ALL_SLA_REASONS, fired_time_rules, plan_after_rules, wake_before_rules

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TICKET = {"id": "T-1", "status": "open", "created_at": "2026-11-23T09:00:00Z", "snoozed_until": None,
          "sla": None, "contact": {"id": "C", "groups": ["vip"]}}
VIP = compile_policy({"name": "vip", "conditions": {"field": "contact.groups", "op": "includes", "value": "vip"},
                      "targets": {"first_response": "15m"}, "warn_before": "5m"})
NO_RULES = compile_rules([])


def step(event: dict[str, Any], ticket: dict[str, Any], now: datetime, *, effects: list[dict[str, Any]] = (),
         matched: list[str] = (), ruleset: Any = NO_RULES, policies: list[Any] = ()) -> Any:  # type: ignore[assignment]
    woken = wake_before_rules(event, ticket, now)
    return plan_after_rules(event, ticket, woken, list(effects), list(matched), ruleset, list(policies), now)


def test_snooze_for_a_duration_then_the_timer_wakes_it_with_its_old_status() -> None:
    plan = step({"type": "ticket.updated"}, TICKET, T0, effects=[{"type": "snooze", "for": "2h"}])
    t = plan.ticket
    assert (t["status"], t["snoozed_until"]) == ("on_hold", "2026-11-23T11:00:00Z")
    assert plan.timers["snooze"] == (T0 + timedelta(hours=2), {"type": "ticket.woke"})
    woke = step({"type": "ticket.woke"}, t, T0 + timedelta(hours=2))
    assert (woke.ticket["status"], woke.ticket["snoozed_until"]) == ("open", None)
    assert woke.timers["snooze"] is None


def test_customer_reply_wakes_early_but_an_agent_note_does_not() -> None:
    snoozed = step({"type": "ticket.updated"}, dict(TICKET, status="pending"), T0,
                   effects=[{"type": "snooze", "until": "2026-11-30T09:00:00Z"}]).ticket
    agent = step({"type": "message.sent", "message": {"author": "agent"}}, snoozed, T0 + timedelta(minutes=1))
    assert agent.ticket["status"] == "on_hold"
    reply = step({"type": "message.received", "message": {"author": "customer"}}, snoozed, T0 + timedelta(minutes=2))
    assert (reply.ticket["status"], reply.ticket["snoozed_until"]) == ("pending", None)
    assert wake_before_rules({"type": "ticket.woke"}, snoozed, T0)["status"] == "on_hold"  # stale: not due yet


def test_snooze_in_the_past_is_refused_with_a_note_and_wake_effect_wakes() -> None:
    plan = step({"type": "ticket.updated"}, TICKET, T0, effects=[{"type": "snooze", "until": "2026-11-22T09:00:00Z"}])
    assert plan.ticket["status"] == "open" and "has passed" in plan.notes[0]
    snoozed = step({"type": "ticket.updated"}, TICKET, T0, effects=[{"type": "snooze", "for": "1h"}]).ticket
    assert step({"type": "ticket.updated"}, snoozed, T0, effects=[{"type": "wake"}]).ticket["status"] == "open"


def test_sla_applies_by_policy_order_and_sets_warning_and_breach_timers() -> None:
    plan = step({"type": "ticket.created"}, TICKET, T0, policies=[VIP])
    assert plan.ticket["sla"]["policy"] == "vip"
    assert plan.timers["sla.warning:first_response"] == (T0 + timedelta(minutes=10),
                                                         {"type": "sla.warning", "target": "first_response"})
    assert plan.timers["sla.breached:first_response"][0] == T0 + timedelta(minutes=15)  # type: ignore[index]
    assert set(ALL_SLA_REASONS) <= set(plan.timers)
    met = step({"type": "message.sent", "message": {"author": "agent"}}, plan.ticket, T0 + timedelta(minutes=3),
               policies=[VIP])
    assert met.ticket["sla"]["targets"]["first_response"]["state"] == "met"
    assert met.timers["sla.breached:first_response"] is None


def test_a_breach_crossed_during_an_ordinary_event_is_announced_at_once() -> None:
    created = step({"type": "ticket.created"}, TICKET, T0, policies=[VIP])
    start = _with_timers(created.ticket, created.timers)      # as the worker stores it
    late = T0 + timedelta(minutes=20)  # neither timer has fired yet
    plan = step({"type": "ticket.updated"}, start, late, policies=[VIP])
    # due at once, where the ticket's plan already has it (09:15, past): a copy of that timer that
    # fired and is queued behind this event still stands, instead of being moved to `late`
    breach = {"type": "sla.breached", "target": "first_response"}
    assert plan.timers["sla.breached:first_response"] == (T0 + timedelta(minutes=15), breach)
    # with no such timer in the plan (a ticket stored before plans were recorded, a policy applied
    # anew): now, a moment no earlier breach event of this ticket can have had
    bare = step({"type": "ticket.updated"}, created.ticket, late, policies=[VIP])
    assert bare.timers["sla.breached:first_response"] == (late, breach)
    # ...and the breach event itself does not schedule itself again
    fired = step({"type": "sla.breached", "timer": {"target": "first_response"}}, plan.ticket, late, policies=[VIP])
    assert fired.timers["sla.breached:first_response"] is None


def test_apply_sla_pins_a_policy_and_unknown_names_are_noted() -> None:
    default = compile_policy({"name": "default", "targets": {"resolution": "2d"}})
    plan = step({"type": "ticket.created"}, TICKET, T0, effects=[{"type": "apply_sla", "policy": "default"}],
                policies=[VIP, default])
    assert plan.ticket["sla"]["policy"] == "default" and plan.ticket["sla"]["pinned"] is True
    again = step({"type": "ticket.updated"}, plan.ticket, T0, policies=[VIP, default])
    assert again.ticket["sla"]["policy"] == "default"
    bad = step({"type": "ticket.created"}, TICKET, T0, effects=[{"type": "apply_sla", "policy": "gold"}], policies=[])
    assert bad.ticket["sla"] is None and "gold" in bad.notes[0]


def test_idle_nudge_time_rule_fires_once_and_rearms_after_a_reply() -> None:
    rs = compile_rules([{"id": "nudge", "triggers": ["time.reached"], "conditions": {"all": [
        {"field": "last_agent_message_at", "op": "older_than", "value": "1h"},
        {"field": "status", "op": "is", "value": "pending"}]},
        "actions": [{"type": "send_message", "template": "Still there?"}]}])
    t = dict(TICKET, status="pending", last_agent_message_at="2026-11-23T09:00:00Z")
    plan = step({"type": "message.sent", "message": {"author": "agent"}}, t, T0, ruleset=rs)
    assert plan.timers["time_rules"] == (T0 + timedelta(hours=1), {"type": "time.reached"})
    at = T0 + timedelta(hours=1)
    ev = rs.evaluate({"type": "time.reached"}, plan.ticket, now=at, exclude=fired_time_rules(plan.ticket))
    after = step({"type": "time.reached"}, plan.ticket, at, matched=ev.matched, ruleset=rs)
    assert fired_time_rules(after.ticket) == ["nudge"] and after.timers["time_rules"] is None
    again = rs.evaluate({"type": "time.reached"}, after.ticket, now=at + timedelta(hours=3),
                        exclude=fired_time_rules(after.ticket))
    assert again.matched == []  # once, not every hour
    replied = dict(after.ticket, last_agent_message_at="2026-11-23T12:00:00Z")
    rearmed = step({"type": "message.sent", "message": {"author": "agent"}}, replied, T0 + timedelta(hours=3), ruleset=rs)
    assert fired_time_rules(rearmed.ticket) == []
    assert rearmed.timers["time_rules"] == (datetime(2026, 11, 23, 13, 0, tzinfo=UTC), {"type": "time.reached"})


def test_planning_never_writes_to_its_input() -> None:
    import copy

    before = copy.deepcopy(TICKET)
    step({"type": "ticket.created"}, TICKET, T0, policies=[VIP])
    assert TICKET == before
