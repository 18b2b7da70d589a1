"""SLA policies and the per-ticket SLA clock: a pure state machine, driven by events and time.

The service keeps the ticket's `sla` object (API.md: `{"policy", "targets": {name: {"due_at",
"state", "met_at"}}}`, plus the bookkeeping below) and calls:

    sla = advance(policy, sla, before, after, event, now)   # after each event's automation
    sla = refresh(policy, sla, now)                          # when an SLA timer fires
    transitions(old, new) -> [("sla.warning" | "sla.breached", target), ...]  # events to generate
    next_moment(sla, now) -> datetime | None                 # when to set the ticket's SLA timer

Targets:
  first_response  starts when the ticket is created; met by the first agent message.
  next_response   starts at a customer message once the first response was met (and none is
                  running); met by the next agent message.
  resolution      starts when the ticket is created; met when the status becomes solved or closed.
                  Reopening starts a new resolution clock.
A running target pauses while the ticket is `on_hold` (snoozed), and while it is `pending` if the
policy says `"pause_on_pending": true`; its remaining business time is kept and the due time is
recomputed on resume. `warning` comes `warn_before` (business time) before the due time. A target
that breached stays `breached` (its `met_at` is still recorded when it is met late).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .calendar import Calendar, CalendarError
from .conditions import Node, parse
from .durations import format_timestamp, parse_duration, parse_timestamp
from .errors import RuleError
from .ops import State

TARGETS = ("first_response", "next_response", "resolution")
NEVER = datetime(9999, 12, 31, tzinfo=timezone.utc)
_RUNNING = frozenset({"active", "warning", "paused", "breached"})
_KEYS = frozenset({"name", "conditions", "targets", "warn_before", "business_hours", "pause_on_pending",
                   "description", "position", "created_at", "updated_at", "revision"})


@dataclass(frozen=True)
class SlaPolicy:
    name: str
    conditions: Node | None
    targets: dict[str, timedelta]
    warn_before: timedelta | None
    calendar: Calendar | None
    pause_on_pending: bool
    spec: dict[str, Any]

    def applies(self, ticket: dict[str, Any], event: dict[str, Any], now: datetime) -> bool:
        if self.conditions is None:
            return True
        return bool(self.conditions.pred(State(ticket, event, {}, {}, now)))

    def add(self, start: datetime, span: timedelta) -> datetime:
        """The due time; NEVER when it is past what can be counted (a calendar's range, 2200,
        or the datetime range), so a huge target is a clock that never breaches, not an error."""
        try:
            return self.calendar.add(start, span) if self.calendar else start + span
        except (CalendarError, OverflowError):
            return NEVER

    def between(self, start: datetime, end: datetime) -> timedelta:
        if self.calendar:
            return self.calendar.elapsed(start, end)
        return max(end - start, timedelta(0))


def policy_calendars(policies: list[SlaPolicy]) -> dict[str, Calendar]:
    """The calendars rules' business-time conditions may name: each SLA policy's business hours,
    by the policy's name (pass to `compile_rules(..., calendars=)`)."""
    return {p.name: p.calendar for p in policies if p.calendar is not None}


def compile_policy(spec: Any) -> SlaPolicy:
    """Check an SLA policy; RuleError (rule = the policy name) names the path and reason."""
    name = spec.get("name") if type(spec) is dict else None
    label = name if isinstance(name, str) and name else "#policy"

    def fail(path: str, reason: str) -> RuleError:
        return RuleError(label, path, reason)

    if type(spec) is not dict:
        raise fail("", "an SLA policy must be an object")
    for key in spec:
        if key not in _KEYS:
            raise fail(str(key), "unknown key; a policy has name, conditions, targets, warn_before, "
                                 "business_hours, pause_on_pending")
    if not (isinstance(name, str) and name):
        raise fail("name", "must be a non-empty string")
    problems: list[tuple[str, str]] = []
    cond_raw = spec.get("conditions")
    node = parse(cond_raw, problems) if cond_raw not in (None, {}) else None
    if problems:
        raise fail(*problems[0])
    raw_targets = spec.get("targets")
    if type(raw_targets) is not dict or not raw_targets:
        raise fail("targets", f"must map one or more of {', '.join(TARGETS)} to durations")
    targets: dict[str, timedelta] = {}
    for key, value in raw_targets.items():
        if key not in TARGETS:
            raise fail(f"targets.{key}", f"unknown target; one of {', '.join(TARGETS)}")
        d = parse_duration(value)
        if d is None:
            raise fail(f"targets.{key}", "must be a duration like '15m', '1h' or '2d'")
        targets[key] = d
    warn = None
    if spec.get("warn_before") is not None:
        warn = parse_duration(spec["warn_before"])
        if warn is None:
            raise fail("warn_before", "must be a duration like '5m'")
    calendar = None
    if spec.get("business_hours") is not None:
        try:
            calendar = Calendar.from_spec(spec["business_hours"])
        except CalendarError as exc:
            raise fail(exc.path, exc.reason) from None
    pop = spec.get("pause_on_pending", False)
    if type(pop) is not bool:
        raise fail("pause_on_pending", "must be true or false")
    return SlaPolicy(name, node, targets, warn, calendar, pop, spec)


def select_policy(policies: list[SlaPolicy], ticket: dict[str, Any], event: dict[str, Any],
                  now: datetime) -> SlaPolicy | None:
    """The first policy, in order, whose conditions hold."""
    for policy in policies:
        if policy.applies(ticket, event, now):
            return policy
    return None


# ---------------------------------------------------------------- the clock

def _ts(value: Any) -> datetime | None:
    return parse_timestamp(value)


def _start(policy: SlaPolicy, name: str, at: datetime, now: datetime) -> dict[str, Any]:
    target = policy.targets[name]
    due = policy.add(at, target)
    clock = {"state": "active", "due_at": format_timestamp(due), "met_at": None,
             "started_at": format_timestamp(at), "remaining_s": None}
    clock["warn_at"] = _warn_at(policy, at, target)
    return _settle(clock, now)


def _warn_at(policy: SlaPolicy, at: datetime, remaining: timedelta) -> str | None:
    if policy.warn_before is None or policy.warn_before >= remaining:
        return None
    return format_timestamp(policy.add(at, remaining - policy.warn_before))


def _settle(clock: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Move an active/warning clock to warning or breached if their moment has come."""
    if clock["state"] not in ("active", "warning"):
        return clock
    due, warn = _ts(clock["due_at"]), _ts(clock.get("warn_at"))
    if due is not None and now >= due:
        clock["state"] = "breached"
    elif warn is not None and now >= warn:
        clock["state"] = "warning"
    return clock


def _meet(clock: dict[str, Any], now: datetime) -> dict[str, Any]:
    clock = dict(clock)
    clock["met_at"] = format_timestamp(now)
    if clock["state"] != "breached":
        clock["state"] = "met"
    clock["remaining_s"] = None
    return clock


def _paused(policy: SlaPolicy, ticket: dict[str, Any]) -> bool:
    status = ticket.get("status")
    return status == "on_hold" or (policy.pause_on_pending and status == "pending")


def advance(policy: SlaPolicy, sla: dict[str, Any] | None, before: dict[str, Any], after: dict[str, Any],
            event: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The ticket's SLA after one event (`before`/`after`: the ticket around it). Pure."""
    now = now.astimezone(timezone.utc)
    fresh = sla is None or sla.get("policy") != policy.name
    targets: dict[str, dict[str, Any]] = {} if sla is None or fresh else {k: dict(v) for k, v in sla["targets"].items()}
    created = _ts(after.get("created_at")) or now
    message = _m if type(_m := event.get("message")) is dict else {}
    author = message.get("author") if event.get("type") in ("message.received", "message.sent") else None
    agent_reply, customer_msg = author == "agent", author == "customer"
    status, was = after.get("status"), before.get("status")
    done = status in ("solved", "closed")

    if fresh:
        for name in ("first_response", "resolution"):
            if name in policy.targets:
                targets[name] = _start(policy, name, created, now)
    fr = targets.get("first_response")
    if fr and fr["state"] in _RUNNING and fr["met_at"] is None and agent_reply:
        targets["first_response"] = _meet(fr, now)
    if "next_response" in policy.targets:
        nr = targets.get("next_response")
        nr_running = nr is not None and nr["met_at"] is None and nr["state"] in _RUNNING
        if agent_reply and nr_running:
            targets["next_response"] = _meet(nr, now)  # type: ignore[arg-type]
        elif customer_msg and not nr_running and not _first_owed(targets):
            targets["next_response"] = _start(policy, "next_response", now, now)
    res = targets.get("resolution")
    if "resolution" in policy.targets:
        if done and res and res["met_at"] is None:
            targets["resolution"] = _meet(res, now)
        elif not done and was in ("solved", "closed") and res and res["met_at"] is not None:
            targets["resolution"] = _start(policy, "resolution", now, now)  # reopened
    paused = _paused(policy, after) and not done
    for name, clock in targets.items():
        if clock["met_at"] is not None:
            continue
        if paused and clock["state"] in ("active", "warning"):
            due = _ts(clock["due_at"])
            left = policy.between(now, due) if due else timedelta(0)
            targets[name] = dict(clock, state="paused", remaining_s=left.total_seconds(), due_at=None, warn_at=None)
        elif not paused and clock["state"] == "paused":
            left = timedelta(seconds=clock["remaining_s"] or 0)
            resumed = dict(clock, state="active", remaining_s=None,
                           due_at=format_timestamp(policy.add(now, left)), warn_at=_warn_at(policy, now, left))
            targets[name] = _settle(resumed, now)
        else:
            targets[name] = _settle(dict(clock), now)
    return {"policy": policy.name, "targets": targets}


def _first_owed(targets: dict[str, dict[str, Any]]) -> bool:
    """True while the first response is still owed: a customer message then starts no next_response."""
    fr = targets.get("first_response")
    return fr is not None and fr["met_at"] is None


def refresh(sla: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The SLA at `now` with no event: clocks whose warning or due time passed move on."""
    now = now.astimezone(timezone.utc)
    return {"policy": sla["policy"], "targets": {k: _settle(dict(v), now) for k, v in sla["targets"].items()}}


def transitions(old: dict[str, Any] | None, new: dict[str, Any]) -> list[tuple[str, str]]:
    """Generated events for clocks that entered `warning` or `breached` between two SLA states."""
    out = []
    before = (old or {}).get("targets", {}) if (old or {}).get("policy") == new["policy"] else {}
    for name, clock in new["targets"].items():
        was = before.get(name, {}).get("state")
        if clock["state"] == "warning" and was not in ("warning", "breached"):
            out.append(("sla.warning", name))
        elif clock["state"] == "breached" and was != "breached":
            out.append(("sla.breached", name))
    return out


def next_moment(sla: dict[str, Any] | None, now: datetime) -> datetime | None:
    """The next warn or due time after `now` among running clocks: when to set the SLA timer."""
    if not sla:
        return None
    moments = []
    for clock in sla["targets"].values():
        if clock["state"] == "active" and (w := _ts(clock.get("warn_at"))) and w > now:
            moments.append(w)
        if clock["state"] in ("active", "warning") and (d := _ts(clock.get("due_at"))) and d > now:
            moments.append(d)
    return min(moments) if moments else None
