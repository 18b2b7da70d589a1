"""Time-driven automation around the rules pass: snooze and wake, SLA clocks, time rules. Pure.

The worker calls, for every event:

    ticket = wake_before_rules(event, merged, now)          # a due snooze or a customer reply wakes
    ev = ruleset.evaluate(event, ticket, previous, now, exclude=fired_time_rules(ticket))
    plan = plan_after_rules(event, previous, ev.ticket, ev.effects, ev.matched, ruleset, policies, now)
    # persist plan.ticket; then set or cancel plan.timers (reason -> (due, data) | None)

Timers, one per (ticket, reason), each generating one event type when it fires:

    snooze                     ticket.woke    at snoozed_until
    time_rules                 time.reached   at ruleset.next_check(...)
    sla.warning:<target>       sla.warning    at the target's warn_at
    sla.breached:<target>      sla.breached   at the target's due_at

The ticket keeps its own bookkeeping under `automation`: the status to restore on wake
(`snoozed_from`) and the time rules that fired and still hold (`time_rules_fired`). An SLA clock
that changes state during an ordinary event (an event that arrives after the due time, before the
timer) gets its sla.* event scheduled for now -- or left where the ticket's plan already has it
when that time has passed, so a timer that fired and whose event is still queued stands -- and no
warning or breach is ever skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rules import format_timestamp, parse_duration, parse_timestamp
from rules.sla import SlaPolicy, advance, select_policy, transitions

__all__ = ["TimePlan", "wake_before_rules", "plan_after_rules", "fired_time_rules", "ALL_SLA_REASONS"]

TimerSpec = tuple[datetime, dict[str, Any]] | None
ALL_SLA_REASONS = tuple(f"sla.{kind}:{t}" for kind in ("warning", "breached")
                        for t in ("first_response", "next_response", "resolution"))


@dataclass
class TimePlan:
    ticket: dict[str, Any]
    timers: dict[str, TimerSpec] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _automation(ticket: dict[str, Any]) -> dict[str, Any]:
    auto = ticket.get("automation")
    return dict(auto) if isinstance(auto, dict) else {}


def fired_time_rules(ticket: dict[str, Any]) -> list[str]:
    return list(_automation(ticket).get("time_rules_fired") or [])


def _is_customer_reply(event: dict[str, Any]) -> bool:
    message = event.get("message")
    author = message.get("author") if isinstance(message, dict) else None
    return event.get("type") == "message.received" and (author or "customer") == "customer"


def _wake(ticket: dict[str, Any]) -> dict[str, Any]:
    out = dict(ticket)
    auto = _automation(out)
    out["status"] = auto.pop("snoozed_from", None) or "open"
    out["snoozed_until"] = None
    out["automation"] = auto
    return out


def wake_before_rules(event: dict[str, Any], merged: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Wake a snoozed ticket before the rules see it: its snooze came due, or the customer wrote."""
    until = parse_timestamp(merged.get("snoozed_until"))
    if until is None:
        return merged
    due = event.get("type") == "ticket.woke" and now >= until - timedelta(seconds=1)
    if due or _is_customer_reply(event):
        return _wake(merged)
    return merged


# The last time a snooze can be until: a later one (`until` 9999-12-31T23:59:59-14:00, past
# datetime's range once in UTC; `for` "3000000d") raised OverflowError in the pass, and every
# event of a workspace whose rule snoozed so was dropped unapplied ("cannot apply entry").
LAST_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _later(when: datetime, span: timedelta) -> datetime:
    """`when + span` in UTC, or LAST_TIME when that is past datetime's range."""
    try:
        return min((when + span).astimezone(UTC), LAST_TIME)
    except OverflowError:
        return LAST_TIME


def _snooze(ticket: dict[str, Any], effect: dict[str, Any], now: datetime, notes: list[str]) -> dict[str, Any]:
    if "for" in effect:
        span = parse_duration(effect["for"])
        until = _later(now, span) if span else None
    else:
        until = parse_timestamp(effect.get("until"))
        if until is not None and until > now:
            until = _later(until, timedelta(0))
    if until is None or until <= now:
        notes.append(f"snooze until {effect.get('until') or effect.get('for')}: that time has passed; not snoozed")
        return ticket
    out = dict(ticket)
    auto = _automation(out)
    if out.get("snoozed_until") is None:
        auto["snoozed_from"] = out.get("status") if out.get("status") != "on_hold" else auto.get("snoozed_from")
    out["status"] = "on_hold"
    out["snoozed_until"] = format_timestamp(until)
    out["automation"] = auto
    return out


def _apply_snoozes(ticket: dict[str, Any], effects: list[dict[str, Any]], now: datetime,
                   notes: list[str]) -> dict[str, Any]:
    for effect in effects:
        if effect.get("type") == "snooze":
            ticket = _snooze(ticket, effect, now, notes)
        elif effect.get("type") == "wake" and ticket.get("snoozed_until") is not None:
            ticket = _wake(ticket)
    return ticket


def _choose_policy(ticket: dict[str, Any], event: dict[str, Any], effects: list[dict[str, Any]],
                   policies: list[SlaPolicy], now: datetime, notes: list[str]) -> tuple[SlaPolicy | None, bool]:
    """(policy, pinned): a rule's apply_sla pins a policy; otherwise the first match applies."""
    by_name = {p.name: p for p in policies}
    named = [e["policy"] for e in effects if e.get("type") == "apply_sla"]
    if named:
        policy = by_name.get(named[-1])
        if policy is None:
            notes.append(f"apply_sla {named[-1]!r}: no SLA policy by that name")
        else:
            return policy, True
    current = ticket.get("sla")
    if isinstance(current, dict) and current.get("pinned") and current.get("policy") in by_name:
        return by_name[current["policy"]], True
    return select_policy(policies, ticket, event, now), False


def _sla_timers(sla: dict[str, Any] | None, old: dict[str, Any] | None, event: dict[str, Any],
                now: datetime, planned: dict[str, Any]) -> dict[str, TimerSpec]:
    timers: dict[str, TimerSpec] = {reason: None for reason in ALL_SLA_REASONS}
    if sla is None:
        return timers
    for name, clock in sla["targets"].items():
        warn, due = parse_timestamp(clock.get("warn_at")), parse_timestamp(clock.get("due_at"))
        if clock["state"] == "active" and warn is not None:
            timers[f"sla.warning:{name}"] = (warn, {"type": "sla.warning", "target": name})
        if clock["state"] in ("active", "warning") and due is not None:
            timers[f"sla.breached:{name}"] = (due, {"type": "sla.breached", "target": name})
    timer = _t if isinstance(_t := event.get("timer"), dict) else {}
    own = (event.get("type"), timer.get("target"))
    for kind, name in transitions(old, sla):
        if (kind, name) != own:  # crossed during another event: announce it now
            # where the ticket's plan already has it when that has passed: that timer may have
            # fired, its event still queued behind this one, and moving it to `now` would make
            # that event stale (dropped) and fire the announcement again a round later. Any other
            # time (no such timer, or one at another time) is `now`: a timer at a moment whose event
            # was applied before would carry that event's id and be taken for a duplicate.
            reason = f"{kind}:{name}"
            at = _planned(planned, reason)
            timers[reason] = (at if at is not None and at <= now else now, {"type": kind, "target": name})
    return timers


def _planned(plan: dict[str, Any], reason: str) -> datetime | None:
    """The due time of `reason` in a ticket's recorded timer plan (automation.timers), if any."""
    spec = plan.get(reason)
    return parse_timestamp(spec[0]) if isinstance(spec, list) and spec and isinstance(spec[0], str) else None


def plan_after_rules(event: dict[str, Any], previous: dict[str, Any] | None, ticket: dict[str, Any],
                     effects: list[dict[str, Any]], matched: list[str], ruleset: Any,
                     policies: list[SlaPolicy], now: datetime) -> TimePlan:
    """Carry out snooze/wake effects, advance the SLA clocks, and work out every timer."""
    notes: list[str] = []
    out = _apply_snoozes(dict(ticket), effects, now, notes)  # never write to the caller's ticket
    timers: dict[str, TimerSpec] = {}
    until = parse_timestamp(out.get("snoozed_until"))
    timers["snooze"] = (until, {"type": "ticket.woke"}) if until else None

    old_sla = out.get("sla") if isinstance(out.get("sla"), dict) else None
    policy, pinned = _choose_policy(out, event, effects, policies, now, notes)
    if policy is None:
        sla = None
    else:
        keep = old_sla if old_sla and old_sla.get("policy") == policy.name else None
        sla = advance(policy, keep, previous or {}, out, event, now)
        sla["pinned"] = pinned
    out["sla"] = sla
    plan = _automation(out).get("timers")
    timers.update(_sla_timers(sla, old_sla, event, now, plan if isinstance(plan, dict) else {}))

    if ruleset is not None and ruleset.time_rules:
        auto = _automation(out)
        fired = set(auto.get("time_rules_fired") or [])
        if event.get("type") == "time.reached":
            fired |= set(matched)
        fired &= set(ruleset.time_rules)
        fired = ruleset.holding(fired, out, now, previous)
        auto["time_rules_fired"] = sorted(fired)
        out["automation"] = auto
        at = ruleset.next_check(out, now, previous, exclude=fired)
        timers["time_rules"] = (at, {"type": "time.reached"}) if at else None
    else:
        timers["time_rules"] = None
    return TimePlan(out, timers, notes)
