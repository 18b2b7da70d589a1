"""`older_than_business` / `newer_than_business` (issue 8): time conditions counted in a calendar's
open hours. Tables run on the oracle and the engine (`impl`); `next_check` must know when such a
condition flips, business hours and holidays included, so time rules fire on time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import oracle
import rules
from ruletools import NOW, make_event, make_rule, make_ticket, rules_profile

UTC = timezone.utc
WEEKDAYS = {d: ["09:00", "17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
OSLO = {"timezone": "Europe/Oslo", "week": WEEKDAYS, "holidays": ["2026-12-25"]}
SPLIT = {"timezone": "America/New_York",
         "week": {"mon": [["08:00", "12:00"], ["13:00", "24:00"]], "sat": ["10:00", "14:00"]}}
ALWAYS = {"timezone": "Europe/Oslo", "week": {d: ["00:00", "24:00"] for d in
                                              ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
CALENDARS = {"oslo": OSLO, "split": SPLIT, "always": ALWAYS}

# NOW is Monday 2026-11-23 12:00Z = 13:00 in Oslo: 4 business hours into the day.
ROWS = [
    # calendar, timestamp, op, duration, holds, now (None: NOW)
    ("oslo", "2026-11-23T08:00:00Z", "older_than_business", "4h", True, None),
    ("oslo", "2026-11-23T08:00:00Z", "older_than_business", "4h1s", False, None),
    ("oslo", "2026-11-23T08:00:00Z", "newer_than_business", "4h1s", True, None),
    ("oslo", "2026-11-23T08:00:00Z", "newer_than_business", "4h", False, None),
    ("oslo", "2026-11-23T06:00:00Z", "older_than_business", "4h", True, None),   # before opening
    ("oslo", "2026-11-23T06:00:00Z", "older_than_business", "4h1s", False, None),
    ("oslo", "2026-11-20T15:00:00Z", "older_than_business", "5h", True, None),   # Fri 16:00 + weekend
    ("oslo", "2026-11-20T15:00:00Z", "older_than_business", "5h1s", False, None),
    ("oslo", "2026-11-20T15:00:00Z", "older_than", "5h1s", True, None),          # wall time differs
    ("oslo", "2026-11-21T10:00:00Z", "newer_than_business", "4h1s", True, None),  # Saturday
    ("oslo", "2026-11-23T13:00:00+05:00", "older_than_business", "4h", True, None),
    ("oslo", "2026-11-23T12:00:00Z", "older_than_business", "1s", False, None),  # now itself
    ("oslo", "2026-11-23T12:00:00Z", "newer_than_business", "1s", True, None),
    ("oslo", "2026-11-23T13:00:00Z", "newer_than_business", "1s", True, None),   # in the future
    ("oslo", "2026-11-23T13:00:00Z", "older_than_business", "1s", False, None),
    ("oslo", "yesterday", "older_than_business", "1s", False, None),             # unreadable
    ("oslo", "yesterday", "newer_than_business", "1s", False, None),
    ("oslo", None, "newer_than_business", "1h", False, None),
    ("oslo", "2025-11-23T12:00:00Z", "older_than_business", "2000h", True, None),  # a year back
    ("oslo", "2026-11-23T08:00:00Z", "older_than_business", "99999999999d", False, None),
    ("oslo", "2026-11-23T08:00:00Z", "newer_than_business", "99999999999d", True, None),
    # Christmas Day is a holiday: Thu 24th 16:00 -> Mon 28th 10:00 Oslo is 2 business hours.
    ("oslo", "2026-12-24T15:00:00Z", "older_than_business", "2h", True, datetime(2026, 12, 28, 9, tzinfo=UTC)),
    ("oslo", "2026-12-24T15:00:00Z", "older_than_business", "2h1s", False, datetime(2026, 12, 28, 9, tzinfo=UTC)),
    # The DST change (Oslo, Sunday 2026-10-25) makes that local day 25 hours long.
    ("always", "2026-10-24T22:00:00Z", "older_than_business", "25h", True, datetime(2026, 10, 25, 23, tzinfo=UTC)),
    ("always", "2026-10-24T22:00:00Z", "older_than_business", "25h1s", False, datetime(2026, 10, 25, 23, tzinfo=UTC)),
    # Two windows a Monday in New York (08-12, 13-24) and Saturday 10-14.
    ("split", "2026-11-23T13:00:00Z", "older_than_business", "5h", True, datetime(2026, 11, 23, 19, tzinfo=UTC)),
    ("split", "2026-11-23T13:00:00Z", "older_than_business", "5h1s", False, datetime(2026, 11, 23, 19, tzinfo=UTC)),
    ("split", "2026-11-21T14:00:00Z", "older_than_business", "1h", True, datetime(2026, 11, 21, 16, tzinfo=UTC)),
    ("split", "2026-11-21T14:00:00Z", "older_than_business", "1h1s", False, datetime(2026, 11, 21, 16, tzinfo=UTC)),
]


def leaf(op: str, value: str, calendar: Any = "oslo", field: str = "last_customer_message_at") -> dict[str, Any]:
    return {"field": field, "op": op, "value": value, "calendar": calendar}


@pytest.mark.parametrize("inline", [False, True])
@pytest.mark.parametrize("cal, stamp, op, value, holds, now", ROWS)
def test_business_time_table(impl: Any, inline: bool, cal: str, stamp: Any, op: str, value: str,
                             holds: bool, now: datetime | None) -> None:
    spec: Any = CALENDARS[cal] if inline else cal
    cond = leaf(op, value, spec) if op.endswith("_business") else {
        "field": "last_customer_message_at", "op": op, "value": value}
    ruleset = impl.compile_rules([make_rule("r", conditions=cond)], CALENDARS)
    ticket = make_ticket(last_customer_message_at=stamp)
    ev = ruleset.evaluate(make_event(), ticket, now=now or NOW)
    assert ev.matched == (["r"] if holds else [])
    if not holds and op.endswith("_business"):
        assert ev.explain[0]["failed"] == {"path": "conditions", "field": "last_customer_message_at",
                                           "op": op, "value": value, "calendar": spec, "seen": stamp}


def test_calendar_objects_are_accepted(engine: Any) -> None:
    ruleset = engine.compile_rules([make_rule("r", conditions=leaf("older_than_business", "4h"))],
                                   calendars={"oslo": engine.Calendar.from_spec(OSLO)})
    ticket = make_ticket(last_customer_message_at="2026-11-23T08:00:00Z")
    assert ruleset.evaluate(make_event(), ticket, now=NOW).matched == ["r"]


def test_dry_run_lists_the_calendar(engine: Any) -> None:
    out = engine.dry_run(make_rule("r", conditions=leaf("newer_than_business", "1h")), make_event(),
                         make_ticket(last_customer_message_at="2026-11-23T08:00:00Z"), now=NOW,
                         calendars=CALENDARS)
    assert out["rule"]["conditions"] == [
        {"path": "conditions", "field": "last_customer_message_at", "op": "newer_than_business",
         "value": "1h", "calendar": "oslo", "held": False, "seen": "2026-11-23T08:00:00Z"}]


# --- compile errors ---------------------------------------------------------------------------

BAD = [
    ({"field": "created_at", "op": "older_than_business", "value": "1h"}, "conditions.calendar",
     "'older_than_business' needs a 'calendar': a calendar name or a business_hours object"),
    (leaf("older_than_business", "1h", "mars"), "conditions.calendar",
     "unknown calendar 'mars'; calendars: always, oslo, split (or give a business_hours object inline)"),
    (leaf("newer_than_business", "1h", 5), "conditions.calendar",
     "must be a calendar name or a business_hours object {timezone, week, holidays}"),
    (leaf("newer_than_business", "1h", ""), "conditions.calendar",
     "must be a calendar name or a business_hours object {timezone, week, holidays}"),
    (leaf("older_than_business", "1h", {"timezone": "Mars/Base", "week": WEEKDAYS}),
     "conditions.calendar.timezone", "unknown time zone 'Mars/Base'"),
    (leaf("older_than_business", "1h", {"week": {"mon": ["17:00", "09:00"]}}),
     "conditions.calendar.week.mon", "a window must end after it starts"),
    (leaf("older_than_business", "1h", {"week": {}}), "conditions.calendar.week",
     "must map days (mon..sun) to opening hours"),
    (leaf("older_than_business", "0s"), "conditions.value",
     "must be a duration like '90s', '5m', '1h30m' or '2d', greater than zero"),
    (leaf("older_than_business", "1h", field="status"), "conditions.op", None),
    ({"field": "created_at", "op": "older_than", "value": "1h", "calendar": "oslo"}, "conditions.calendar",
     "only older_than_business and newer_than_business take a calendar"),
]


@pytest.mark.parametrize("cond, path, reason", BAD)
def test_compile_errors(engine: Any, cond: dict[str, Any], path: str, reason: str | None) -> None:
    rule = make_rule("r", conditions=cond)
    with pytest.raises(engine.RuleError) as err:
        engine.compile_rules([rule], calendars=CALENDARS)
    assert err.value.path == path
    if reason is not None:
        assert err.value.reason == reason
    assert [e.path for e in engine.validate_rule(rule, calendars=CALENDARS)] == [path]


def test_names_need_calendars_to_be_given(engine: Any) -> None:
    with pytest.raises(engine.RuleError) as err:
        engine.compile_rules([make_rule("r", conditions=leaf("older_than_business", "1h"))])
    assert err.value.reason.startswith("unknown calendar 'oslo'; calendars: none were given")


def test_a_bad_calendar_given_to_compile_rules(engine: Any) -> None:
    with pytest.raises(engine.RuleError) as err:
        engine.compile_rules([], calendars={"oslo": {"timezone": "Europe/Oslo", "week": {"mon": "x"}}})
    assert (err.value.rule, err.value.path) == ("calendars", "calendars.oslo.week.mon")


# --- next_check: when a time rule's business-time condition flips -------------------------------

def time_rule(op: str = "older_than_business", value: str = "2h") -> dict[str, Any]:
    return make_rule("nudge", conditions={"all": [{"field": "status", "op": "is", "value": "pending"},
                                                  leaf(op, value)]},
                     triggers=["time.reached"])


@pytest.mark.parametrize("op", ["older_than_business", "newer_than_business"])
def test_next_check_skips_closed_hours(engine: Any, op: str) -> None:
    """Friday 16:30 Oslo + 2 business hours = Monday 10:30 Oslo (09:30Z), not Friday 18:30."""
    ruleset = engine.compile_rules([time_rule(op)], calendars=CALENDARS)
    assert ruleset.time_rules == ["nudge"]
    ticket = make_ticket(status="pending", last_customer_message_at="2026-11-20T15:30:00Z")
    friday = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    due = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    exclude = ["nudge"] if op == "newer_than_business" else []   # it holds now; fired already
    assert ruleset.next_check(ticket, friday, exclude=exclude) == due
    event = make_event("time.reached")
    before = ruleset.evaluate(event, ticket, now=due - timedelta(seconds=1)).matched
    at = ruleset.evaluate(event, ticket, now=due).matched
    assert (before, at) == (([], ["nudge"]) if op == "older_than_business" else (["nudge"], []))


def test_next_check_across_a_holiday(engine: Any) -> None:
    ruleset = engine.compile_rules([time_rule(value="3h")], calendars=CALENDARS)
    ticket = make_ticket(status="pending", last_customer_message_at="2026-12-24T15:00:00Z")
    # Thu 24th 16-17 (1h), Fri 25th holiday, Mon 28th 09:00-11:00 Oslo (2h) -> 10:00Z
    got = ruleset.next_check(ticket, datetime(2026, 12, 24, 15, 0, tzinfo=UTC))
    assert got == datetime(2026, 12, 28, 10, 0, tzinfo=UTC)


def test_next_check_when_holding_or_past(engine: Any) -> None:
    ruleset = engine.compile_rules([time_rule()], calendars=CALENDARS)
    ticket = make_ticket(status="pending", last_customer_message_at="2026-11-23T08:00:00Z")
    assert ruleset.next_check(ticket, NOW) == NOW                    # holds already: check now
    assert ruleset.next_check(ticket, NOW, exclude=["nudge"]) is None  # fired; nothing flips later
    assert ruleset.next_check(make_ticket(status="pending", last_customer_message_at=None), NOW) is None


STAMPS = st.datetimes(min_value=datetime(2026, 10, 20), max_value=datetime(2027, 1, 10),
                      timezones=st.just(UTC))
SPANS = st.sampled_from(["1s", "30m", "1h", "2h30m", "8h", "9h", "1d", "3d", "40h"])


@rules_profile(scale=0.3)
@given(STAMPS, STAMPS, SPANS, st.sampled_from(sorted(CALENDARS)),
       st.sampled_from(["older_than_business", "newer_than_business"]))
def test_next_check_is_the_moment_the_oracle_flips(stamp: datetime, now: datetime, span: str, cal: str,
                                                   op: str) -> None:
    """The engine's next_check is exactly when the oracle's answer changes: not yet a second
    before, changed at that moment; and with no next_check the answer never changes later."""
    rule = make_rule("r", conditions=leaf(op, span, cal), triggers=["time.reached"])
    engine_rs = rules.compile_rules([rule], calendars=CALENDARS)
    oracle_rs = oracle.compile_rules([rule], CALENDARS)
    ticket = make_ticket(last_customer_message_at=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"))
    event = make_event("time.reached")

    def holds(at: datetime) -> bool:
        got = engine_rs.evaluate(event, ticket, now=at).matched == ["r"]
        assert got == (oracle_rs.evaluate(event, ticket, now=at).matched == ["r"])
        return got

    now_holds = holds(now)
    due = engine_rs.next_check(ticket, now, exclude=["r"])
    if due is None:
        assert holds(now + timedelta(days=40)) == now_holds
        return
    assert due > now
    assert holds(due - timedelta(seconds=1)) == now_holds
    assert holds(due) != now_holds


def test_sla_policies_name_the_calendars(engine: Any) -> None:
    """The service's calendars are its SLA policies' business hours, by policy name."""
    from rules.sla import compile_policy, policy_calendars

    policies = [compile_policy({"name": "vip", "targets": {"first_response": "1h"}, "business_hours": OSLO}),
                compile_policy({"name": "plain", "targets": {"first_response": "1h"}})]
    calendars = policy_calendars(policies)
    assert sorted(calendars) == ["vip"]
    ruleset = engine.compile_rules([make_rule("r", conditions=leaf("older_than_business", "5h", "vip"))],
                                   calendars=calendars)
    ticket = make_ticket(last_customer_message_at="2026-11-20T15:00:00Z")
    assert ruleset.evaluate(make_event(), ticket, now=NOW).matched == ["r"]
