"""Pure automation: merge an event's ticket data into the mirror, then run the rules.

No Redis, no clock, no sockets: the worker passes `now` and the loaded state in and persists what
comes out. `process` is one event's whole pass on a loaded `Snapshot` -- merge, wake-ups, rules
(scripts and HTTP through the handlers), guards, the bounds of server/runrecord.py, the timer plan
and the run record -- returning an `Outcome` that store/tickets.commit writes. Being pure, it can
run again on a fresh snapshot when the commit finds the ticket or contact changed meanwhile; the
handlers then replay the calls already made (server/replay.py), so no script or request runs twice. `handlers` (http_request, run_script) are handed through to the rules engine; without
them those actions come back as effects. The loop and flood guards (server/guards.py) run around
the rules pass: a generated event over its cap skips the pass, and the pass's send_message/notify
effects go through the auto-reply and send-cap checks; their counts are kept in the ticket's
`automation.guards`, so they are written with the ticket.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from collections.abc import Collection
from typing import Any, Protocol

import orjson

from rules import format_timestamp, parse_timestamp
from server import guards as guard_rules
from server.guards import DEFAULT_LIMITS, GuardLimits
from server.runrecord import rule_entries, stored_rules, with_revisions

__all__ = ["Run", "RuleSetLike", "Snapshot", "Outcome", "process", "merge_event", "new_ticket",
           "automate", "contact_record", "cap_custom", "cap_tags", "MAX_TICKET_TAGS", "cap_groups", "MAX_CONTACT_GROUPS", "unique_ci", "parse_time", "format_time"]

SCALARS = ("subject", "description", "status", "priority", "channel", "department", "assignee")
# Fields the service owns: an event cannot set them.
SERVICE_FIELDS = frozenset({"id", "version", "sla", "snoozed_until", "created_at", "updated_at",
                            "last_customer_message_at", "last_agent_message_at", "automation",
                            "message_count", "customer_messages_since_agent"})


class RuleSetLike(Protocol):
    def evaluate(self, event: dict[str, Any], ticket: dict[str, Any],
                 previous: dict[str, Any] | None = None, now: datetime | None = None,
                 handlers: dict[str, Any] | None = None, exclude: Collection[str] = (),
                 record: bool = False) -> Any: ...


@dataclass
class Run:
    """What one event did: the run record's content, minus ids and timings the worker adds."""

    ticket: dict[str, Any]                      # after automation
    merged: dict[str, Any]                      # after the event's data, before automation
    matched: list[str] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    scripts: list[dict[str, Any]] = field(default_factory=list)
    http_calls: list[dict[str, Any]] = field(default_factory=list)   # of http_request actions
    notes: list[str] = field(default_factory=list)        # e.g. a snooze whose time had passed
    suppressed: list[dict[str, Any]] = field(default_factory=list)  # guards: [{"effect", "reason"}]
    changes: dict[str, Any] = field(default_factory=dict)
    effects: list[dict[str, Any]] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None


def parse_time(value: Any) -> datetime | None:
    """rules.parse_timestamp (the one timestamp grammar), in UTC. Remembered for the last few
    thousand strings of timestamp length: an applied event parses the same few (its run's time,
    the ticket's created_at) about six times between its pass and its commit's writes."""
    if isinstance(value, str) and len(value) <= 64:
        return _parsed(value)
    return _utc(value)


def _utc(value: Any) -> datetime | None:
    when = parse_timestamp(value)
    try:
        return when.astimezone(UTC) if when is not None else None
    except OverflowError:   # 9999-12-31T23:59:59-14:00 is past datetime's range in UTC: not a time
        return None


_parsed = functools.lru_cache(maxsize=4096)(_utc)   # datetimes are immutable: safe to share


format_time = format_timestamp


def unique_ci(items: list[Any]) -> list[str]:
    """Insertion order, unique case-insensitively (the tag rule)."""
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if isinstance(item, str) and item.casefold() not in seen:
            seen.add(item.casefold())
            out.append(item)
    return out


def new_ticket(ticket_id: str) -> dict[str, Any]:
    return {"id": ticket_id, "subject": None, "description": None, "status": "new",
            "priority": "normal", "channel": None, "department": None, "assignee": None,
            "tags": [], "custom": {}, "contact": None, "created_at": None, "updated_at": None,
            "last_customer_message_at": None, "last_agent_message_at": None, "sla": None,
            "snoozed_until": None, "version": 0}


# A ticket's merged `custom` keeps at most this much (compact JSON): each event's own `custom` is
# capped at 16 KiB by the validator, but keys accumulate over events; past this the keys set
# longest ago are dropped first (a key set again moves to the end).
MAX_MERGED_CUSTOM_BYTES = 64 * 1024


def _merge_custom(base: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base or {})
    for k, v in patch.items():
        out.pop(k, None)
        if v is not None:
            out[k] = v
    return cap_custom(out)


# A ticket's tags after a pass: an event sets at most 100 (server/api/validate.py MAX_TAGS), but
# rules and scripts add to them on every event (a script up to its 64 KiB of output), and every
# later pass of the ticket loads, copies, diffs and writes them all on the shared worker: 30
# events of a script's 3,000 new tags were 90,000 tags (~1 MB) on one ticket. Past this the
# newest additions are not kept, and the run's notes say so.
MAX_TICKET_TAGS = 1000


def cap_tags(ticket: dict[str, Any], notes: list[str]) -> None:
    """`ticket`'s tags within MAX_TICKET_TAGS (the first kept: the ticket's own come first, what
    this pass added after them), with a note naming what was not kept."""
    tags = _capped(ticket.get("tags"), MAX_TICKET_TAGS, "tags not kept: a ticket keeps at most "
                   f"{MAX_TICKET_TAGS} tags (MAX_TICKET_TAGS)", notes)
    if tags is not None:
        ticket["tags"] = tags


# A contact's groups after a pass, for the same reason as its ticket's tags: an event or PUT
# /v1/contacts/{id}/groups sets at most 100, but a script's `add_groups` (up to its 64 KiB of
# output) adds on every event; 5 events of 3,000 new names left one contact with 15,000 groups,
# loaded with every event of each of its tickets and indexed one set a group.
MAX_CONTACT_GROUPS = 1000


def cap_groups(ticket: dict[str, Any], notes: list[str]) -> None:
    """The ticket's contact's groups within MAX_CONTACT_GROUPS (the first kept: the contact's
    own, then this pass's additions), with a note naming what was not kept."""
    contact = ticket.get("contact")
    if type(contact) is dict:
        groups = _capped(contact.get("groups"), MAX_CONTACT_GROUPS, "contact groups not kept: a contact "
                         f"keeps at most {MAX_CONTACT_GROUPS} groups (MAX_CONTACT_GROUPS)", notes)
        if groups is not None:
            ticket["contact"] = dict(contact, groups=groups)


def _capped(items: Any, most: int, what: str, notes: list[str]) -> list[Any] | None:
    """The first `most` of list `items` when it is longer (noting how many were cut and `what`),
    else None: nothing to change."""
    if type(items) is not list or len(items) <= most:
        return None
    notes.append(f"{len(items) - most} {what}")
    return items[:most]


def cap_custom(custom: Any) -> dict[str, Any]:
    """`custom` within MAX_MERGED_CUSTOM_BYTES, dropping the keys set longest ago first. Every path
    that writes a ticket's custom goes through this: an event's merge, and (in `process`) whatever
    rules and scripts left there."""
    out = dict(custom) if isinstance(custom, dict) else {}
    if len(orjson.dumps(out)) > MAX_MERGED_CUSTOM_BYTES:
        sizes = {k: len(orjson.dumps({k: v})) for k, v in out.items()}
        total = sum(sizes.values())
        for k in list(out):
            if total <= MAX_MERGED_CUSTOM_BYTES:
                break
            total -= sizes[k]
            del out[k]
    return out


def _stored_contact(contact: dict[str, Any]) -> dict[str, Any]:
    """The stored contact record as a ticket shows it. It is the current contact: every event of
    any of its tickets, and PUT /v1/contacts/{id}/groups, merge into it."""
    return {"id": contact.get("id"), "email": contact.get("email"), "name": contact.get("name"),
            "groups": unique_ci(contact.get("groups") or []),
            "custom": dict(contact.get("custom") or {})}


def _merge_contact(base: dict[str, Any] | None, patch: dict[str, Any] | None) -> dict[str, Any] | None:
    """A contact in an event merges like a partial ticket: absent keys keep their value, `custom`
    merges by key (a null value removes the key), a null email or name clears it, `groups`
    replaces the membership. Another contact id starts afresh."""
    if patch is None:
        return None
    if base and patch.get("id") not in (None, base.get("id")):
        base = None  # another contact: start afresh
    out = dict(base or {})
    for k, v in patch.items():
        if k == "custom":
            out["custom"] = _merge_custom(out.get("custom"), v or {})
        elif k == "groups":
            out["groups"] = unique_ci(v or [])
        else:
            out[k] = v
    out.setdefault("groups", [])
    out.setdefault("custom", {})
    return out


def merge_event(previous: dict[str, Any] | None, event: dict[str, Any],
                contact: dict[str, Any] | None = None,
                company: dict[str, Any] | None = None, *,
                base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ticket after the event's own data, before automation.

    `previous` is the mirror before the event (None for a ticket's first event); `contact` the
    stored contact record, the current one (its groups are set by PUT /v1/contacts/{id}/groups
    too): the event's contact merges into it, not into this ticket's older copy, so a partial
    contact (`{"id": "C-9"}` on a new ticket) keeps the email, name and custom it has.
    `event["occurred_at"]` must be set. `company`: the stored company the contact's company merges
    into (server/companies.py). `base`: a copy of `previous` that is the caller's to give away
    (the merge changes it in place); without it `previous` is deep-copied.
    """
    from server import companies

    if base is not None:
        t = base
    else:
        t = copy.deepcopy(previous) if previous else new_ticket(event["ticket"]["id"])
    data = event.get("ticket") or {}
    if t.get("contact") and contact and contact.get("id") == t["contact"].get("id"):
        t["contact"] = _stored_contact(contact)
    for key, value in data.items():
        if key in SERVICE_FIELDS:
            continue
        if key == "tags":
            t["tags"] = unique_ci(value or [])
        elif key == "custom":
            t["custom"] = _merge_custom(t.get("custom"), value or {})
        elif key == "contact":
            base = t.get("contact")
            if value and contact and value.get("id") == contact.get("id"):
                base = _stored_contact(contact)
            t["contact"] = _merge_contact(base, value)
        elif key in SCALARS:
            t[key] = value
        # other keys are not mirrored: a ticket's own data goes in `custom` (bounded above), so
        # no series of events can grow a ticket without end
    t["contact"] = companies.settle(t.get("contact"), event, previous, contact, company)
    at = event["occurred_at"]
    if not t.get("created_at"):
        t["created_at"] = at
    t["updated_at"] = _later(t.get("updated_at"), at)
    message = event.get("message")
    if isinstance(message, dict) and event.get("type", "").startswith("message."):
        author = message.get("author") or ("agent" if event["type"] == "message.sent" else "customer")
        if author == "customer":
            t["last_customer_message_at"] = _later(t.get("last_customer_message_at"), at)
        elif author == "agent":
            t["last_agent_message_at"] = _later(t.get("last_agent_message_at"), at)
    return t


def _later(current: str | None, candidate: str) -> str:
    a, b = parse_time(current), parse_time(candidate)
    if a is None or (b is not None and b >= a):
        return candidate
    return current  # type: ignore[return-value]


def contact_record(ticket: dict[str, Any]) -> dict[str, Any] | None:
    """The contact as stored on its own (groups are per contact, shared by its tickets)."""
    c = ticket.get("contact")
    if not isinstance(c, dict) or not c.get("id"):
        return None
    company = c.get("company")
    return {"id": c["id"], "email": c.get("email"), "name": c.get("name"),
            "groups": list(c.get("groups") or []), "custom": dict(c.get("custom") or {}),
            **({"company_id": company["id"]} if isinstance(company, dict) else {})}


def _with_guards(ticket: dict[str, Any], state: dict[str, Any],
                 fired: list[str] | None = None) -> dict[str, Any]:
    """`ticket` with automation.guards set to `state` (left out while there is nothing to count)
    and, when given, automation.time_rules_fired."""
    state = {k: v for k, v in state.items() if v and (type(v) is not dict or any(v.values()))}
    auto = ticket.get("automation")
    had = type(auto) is dict and "guards" in auto
    if not state and not had and fired is None:
        return ticket
    out = dict(ticket)
    new_auto = dict(auto) if type(auto) is dict else {}
    if state or had:
        new_auto["guards"] = state
    if fired is not None:
        new_auto["time_rules_fired"] = fired
    out["automation"] = new_auto
    return out


def _suppress_pass(event: dict[str, Any], ticket: dict[str, Any], previous: dict[str, Any] | None,
                   ruleset: Any, now: datetime, state: dict[str, Any], note: str) -> Run:
    """A generated event over its cap: no rules run. Time rules that hold now are booked as fired,
    so the time-rule timer is not set again for this instant (a storm would go on); each may fire
    again once its conditions have stopped holding."""
    fired = None
    time_rules = list(getattr(ruleset, "time_rules", []) or [])
    if event.get("type") == "time.reached" and time_rules:
        auto = _a if type(_a := ticket.get("automation")) is dict else {}
        before = set(auto.get("time_rules_fired") or [])
        holding = ruleset.holding(time_rules, ticket, now, previous)
        fired = sorted(before | set(holding))
    return Run(ticket=_with_guards(ticket, state, fired), merged=ticket, notes=[note])


def automate(event: dict[str, Any], ticket: dict[str, Any], previous: dict[str, Any] | None,
             ruleset: RuleSetLike | None, now: datetime,
             handlers: dict[str, Any] | None = None, exclude: list[str] | tuple[str, ...] = (),
             guards: GuardLimits | None = None, revisions: dict[str, int] | None = None) -> Run:
    """Run the workspace's rules on the merged ticket, behind the loop and flood guards (`guards`:
    the workspace's limits, default DEFAULT_LIMITS; `revisions`: rule id -> revision, given by
    the worker, whose record stores the entries as built here, server/runrecord.stored_rules).
    Never raises for engine failures: a crash
    in the engine becomes the run's `error` and the event's own data is still applied."""
    if ruleset is None:
        return Run(ticket=ticket, merged=ticket)
    limits = guards if guards is not None else DEFAULT_LIMITS
    admitted, state, note = guard_rules.admit_generated(event, ticket, now, limits)
    if not admitted:
        return _suppress_pass(event, ticket, previous, ruleset, now, state, note or "")
    try:   # (record: the worker stores the run record, stored_rules, so the pass codes every rule for it)
        ev = ruleset.evaluate(event, ticket, previous=previous, now=now, handlers=handlers, exclude=exclude,
                              record=revisions is not None)
    except Exception as exc:  # a bug in the engine must not wedge the partition
        return Run(ticket=ticket, merged=ticket,
                   error={"code": "automation_error", "message": f"{type(exc).__name__}: {exc}"})
    after = dict(ev.ticket)
    for key in ("id", "version", "sla", "snoozed_until", "automation"):
        if key in ticket:
            after[key] = ticket[key]
    guarded = guard_rules.guard_effects(list(ev.effects), event, ticket, now, limits)
    state["sent"] = guarded.state["sent"]
    return Run(ticket=_with_guards(after, state), merged=ticket, matched=list(ev.matched),
               rules=rule_entries(ev) if revisions is None else stored_rules(ev, revisions),
               changes=dict(ev.changes),
               effects=guarded.effects, vars=dict(getattr(ev, "vars", {}) or {}),
               notes=guarded.notes, suppressed=guarded.suppressed)


# -- one event's whole pass ------------------------------------------------------------------


@dataclass
class Snapshot:
    """What an event's pass reads from the store (store/tickets.load): the ticket before the event
    (None: its first event), the stored contact record, the workspace's rules revision, and the
    raw bytes the commit checks have not changed (`previous` is `raw_ticket` parsed: the pass
    parses it again for a copy of its own)."""

    marker: dict[str, Any] | None
    previous: dict[str, Any] | None
    contact: dict[str, Any] | None
    contact_id: str | None
    rules_rev: int
    raw_marker: bytes | str | None = None
    raw_ticket: bytes | str | None = None
    raw_contact: bytes | str | None = None
    policy_rev: int = 0                    # SLA policies' and guard limits' revision (policy_cache)
    contact_stats: dict[Any, Any] = field(default_factory=dict)  # keys.contact_stats (customers.py)
    company: dict[str, Any] | None = None     # the stored company (server/companies.py `wanted`)
    raw_company: bytes | str | None = None


@dataclass
class Outcome:
    """What one event's pass decided: the writes for store/tickets.commit, and the timer plan the
    worker sets after it (old -> new, reason -> [due, data])."""

    ticket: dict[str, Any]
    contact: dict[str, Any] | None
    record: dict[str, Any]                  # the run record, bounded, without timings
    to_feed: bool
    changes: dict[str, Any]
    effects: list[dict[str, Any]]
    timers_old: dict[str, Any]
    timers_new: dict[str, Any]
    run: Run


class _Handlers(Protocol):
    handlers: dict[str, Any]
    scripts: list[dict[str, Any]]
    http_calls: list[dict[str, Any]]


def process(snapshot: Snapshot, event: dict[str, Any], ruleset: RuleSetLike | None,
            policies: list[Any], limits: GuardLimits | None, now: datetime,
            handlers: _Handlers | dict[str, Any] | None = None, *, run_id: str = "",
            revisions: dict[str, int] | None = None) -> Outcome:
    """The whole pass of one event on a loaded snapshot. `handlers` is a dict of handlers, or a
    server/replay.PassView (then its recorded script entries and HTTP calls go in the record)."""
    from server import customers, runrecord, timekeeping

    previous = snapshot.previous
    fns = handlers if handlers is None or isinstance(handlers, dict) else handlers.handlers
    # the ticket parsed again from the bytes it was loaded from, for the merge to change: that is
    # what `previous` is (the commit checks those bytes), and it was 2 us against deepcopy's 17
    base = orjson.loads(snapshot.raw_ticket) if previous is not None and snapshot.raw_ticket else None
    merged = merge_event(previous, event, snapshot.contact, snapshot.company, base=base)
    customers.count_message(merged, event)
    woken = customers.with_counts(timekeeping.wake_before_rules(event, merged, now),
                                  customers.counts(snapshot.contact_stats, previous, merged, now))
    revisions = revisions or {}
    run = automate(event, woken, previous, ruleset, now, fns,
                   timekeeping.fired_time_rules(merged), limits, revisions)
    if handlers is not None and not isinstance(handlers, dict):
        run.scripts, run.http_calls = list(handlers.scripts), list(handlers.http_calls)
    run.effects, over = runrecord.cap_effects(run.effects)
    run.suppressed = [*run.suppressed, *over]
    plan = timekeeping.plan_after_rules(event, previous, run.ticket, run.effects, run.matched,
                                        ruleset, policies, now)
    ticket = _with_timers(customers.without_counts(plan.ticket), plan.timers)
    ticket["automation"]["counted"] = True   # its contact's counts include it (customers.py)
    ticket["custom"] = cap_custom(ticket.get("custom"))  # scripts' and rules' custom too
    cap_tags(ticket, plan.notes)
    cap_groups(ticket, plan.notes)
    run.changes = _changes(merged, ticket)
    ticket["version"] = int((previous or {}).get("version", 0)) + 1
    run.ticket = ticket
    run.notes = [*run.notes, *plan.notes]
    rules = with_revisions(run.rules, revisions)   # (stored_rules built them with their revisions)
    record = {
        "id": run_id, "event_id": event["id"], "ticket_id": event["ticket"]["id"],
        "event_type": event["type"], "at": format_time(now),
        "matched": run.matched, "rules_rev": snapshot.rules_rev,
        "rule_revisions": {rid: revisions[rid] for rid in run.matched if rid in revisions},
        "rules": rules, "scripts": run.scripts,
        "changes": run.changes, "effects": run.effects, "vars": run.vars,
        "http_calls": run.http_calls, "notes": run.notes, "suppressed": run.suppressed,
        "error": run.error, "ticket": ticket,
        # keys of the event that are not part of the format (server/api/validate.py), not applied
        "ignored": list(event.get("ignored") or []),
    }
    old = ((previous or {}).get("automation") or {}).get("timers") or {}
    return Outcome(ticket=ticket, contact=contact_record(ticket),
                   record=runrecord.bound_record(record), to_feed=bool(run.changes or run.effects),
                   changes=run.changes, effects=run.effects, timers_old=old,
                   timers_new=ticket["automation"]["timers"], run=run)


def _with_timers(ticket: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """The ticket with its timer plan recorded under automation.timers (reason -> [due, data])."""
    out = dict(ticket)
    auto = dict(out.get("automation") or {})
    auto["timers"] = {reason: [format_time(spec[0]), spec[1]]
                      for reason, spec in plan.items() if spec is not None}
    out["automation"] = auto
    return out


def _changes(merged: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
    """API.md's changes between the merged ticket and the ticket after all automation (rules,
    wake-ups, snoozes), with snoozed_until shown like a scalar field."""
    from rules import diff

    out = diff(merged, final)
    if merged.get("snoozed_until") != final.get("snoozed_until"):
        out["snoozed_until"] = [merged.get("snoozed_until"), final.get("snoozed_until")]
    return out
