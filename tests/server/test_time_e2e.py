"""Time, end to end through the HTTP API: snooze and wake, a customer reply waking early, a time
rule firing once per ticket, SLA warning and breach triggering rules.

The worker reads `worker_clock` (tests/conftest.py: the real time plus an offset): a test jumps it
past a due time with `advance(s)` instead of sleeping until then, and a "nothing else fires" check
advances it and waits until every timer due by then has fired and been applied (`settled`), not a
fixed time. The lateness bound of API.md (a timer fires within a second of its due time) is still
asserted on the worker's clock, which keeps running in real time after a jump; the snooze test
waits on the real clock alone, so that bound is measured once without a jump."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from testkit import ShiftedClock, wait_until

from server.store import timers

LATE_S = 1.0  # API.md: within a second of the due time
_probes = itertools.count()


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def wait_for(fetch: Any, ok: Any, timeout: float = 8.0) -> Any:
    return wait_until(fetch, ok, timeout=timeout, interval=0.05, what="the ticket's timer")


def settled(ws: Any, clock: ShiftedClock, tid: str) -> None:
    """Return once every timer due by `clock`'s present time has fired and been applied: no timer
    in the store is due by then (so each due one is in its ticket's stream), then one more event
    on `tid`, applied after whatever fired for it (a ticket's events apply in stream order)."""
    store = ws.client.app_state["store"]
    parts, now = list(range(store.settings.partitions)), clock()
    wait_until(lambda: ws.client.portal.call(timers.next_due, store, parts),
               lambda due: due is None or due > now, what=f"the timers due by {now} to fire")
    ws.send({"id": f"probe-{next(_probes)}", "type": "ticket.updated", "ticket": {"id": tid}})


def ticket(ws: Any, tid: str) -> dict[str, Any]:
    return ws.client.get(f"/v1/tickets/{tid}", headers=ws.h("viewer")).json()


def runs(ws: Any, tid: str) -> list[dict[str, Any]]:
    return ws.client.get(f"/v1/tickets/{tid}/runs?limit=500", headers=ws.h("viewer")).json()["items"]


def test_snooze_then_wake_on_time_with_the_old_status(ws: Any) -> None:
    ws.rule(name="snooze new", triggers=["ticket.created"], actions=[{"type": "snooze", "for": "2s"}])
    out = ws.send({"id": "e1", "type": "ticket.created", "ticket": {"id": "T-1", "status": "open"}})
    assert out["changes"]["status"] == ["open", "on_hold"]
    until = parse(out["changes"]["snoozed_until"][1])
    woke = wait_for(lambda: ticket(ws, "T-1"), lambda t: t["status"] == "open")
    assert woke["snoozed_until"] is None
    assert datetime.now(UTC) >= until  # the real clock: this test does not advance the worker's
    wake_run = next(r for r in runs(ws, "T-1") if r["event_type"] == "ticket.woke")
    assert (parse(wake_run["at"]) - until).total_seconds() < LATE_S
    assert wake_run["changes"]["status"] == ["on_hold", "open"]


def test_a_customer_reply_wakes_a_snoozed_ticket_early(ws: Any) -> None:
    ws.rule(name="snooze", triggers=["ticket.created"], actions=[{"type": "snooze", "for": "1h"}])
    ws.send({"id": "e1", "type": "ticket.created", "ticket": {"id": "T-1", "status": "pending"}})
    assert ticket(ws, "T-1")["status"] == "on_hold"
    out = ws.send({"id": "e2", "type": "message.received", "ticket": {"id": "T-1"},
                   "message": {"author": "customer", "body": "any news?"}})
    assert out["changes"]["status"] == ["on_hold", "pending"]
    assert ticket(ws, "T-1")["snoozed_until"] is None


def test_idle_nudge_time_rule_fires_once_within_a_second(ws: Any, worker_clock: ShiftedClock) -> None:
    ws.rule(name="nudge", triggers=["time.reached"], conditions={"all": [
        {"field": "last_agent_message_at", "op": "older_than", "value": "2s"},
        {"field": "status", "op": "is", "value": "pending"}]},
        actions=[{"type": "send_message", "template": "Still there, {{contact.name}}?"},
                 {"type": "add_tags", "tags": ["nudged"]}])
    ws.send({"id": "e1", "type": "ticket.created", "ticket": {"id": "T-1", "status": "pending",
                                                               "contact": {"id": "C", "name": "Ann"}}})
    sent = ws.send({"id": "e2", "type": "message.sent", "ticket": {"id": "T-1"},
                    "message": {"author": "agent", "body": "Could you send a screenshot?"}})
    agent_at = parse(sent["ticket"]["last_agent_message_at"])
    worker_clock.advance(2)
    nudged = wait_for(lambda: ticket(ws, "T-1"), lambda t: "nudged" in t["tags"])
    fired = [r for r in runs(ws, "T-1") if r["event_type"] == "time.reached" and r["matched"]]
    assert len(fired) == 1
    assert 0 <= (parse(fired[0]["at"]) - agent_at).total_seconds() - 2 < LATE_S
    assert fired[0]["effects"] == [{"type": "send_message", "template": "Still there, {{contact.name}}?",
                                    "body": "Still there, Ann?"}]
    worker_clock.advance(1.5)  # nothing is due; this checks that nothing else fires in that time
    settled(ws, worker_clock, "T-1")
    assert len([r for r in runs(ws, "T-1") if r["event_type"] == "time.reached" and r["matched"]]) == 1
    assert nudged["automation"]["time_rules_fired"] == [fired[0]["matched"][0]]


def test_sla_warning_and_breach_are_events_rules_act_on(ws: Any, worker_clock: ShiftedClock) -> None:
    r = ws.client.post("/v1/sla-policies", json={
        "name": "vip", "conditions": {"field": "contact.groups", "op": "includes", "value": "vip"},
        "targets": {"first_response": "3s"}, "warn_before": "2s"}, headers=ws.h("manager"))
    assert r.status_code == 201, r.text
    ws.rule(name="warned", triggers=["sla.warning"], actions=[{"type": "add_tags", "tags": ["sla-warning"]}])
    ws.rule(name="breached", triggers=["sla.breached"], actions=[{"type": "set", "field": "priority", "value": "urgent"}])
    out = ws.send({"id": "e1", "type": "ticket.created",
                   "ticket": {"id": "T-1", "contact": {"id": "C", "groups": ["vip"]}}})
    sla = out["ticket"]["sla"]["targets"]["first_response"]
    assert sla["state"] == "active"
    due, warn = parse(sla["due_at"]), parse(sla["warn_at"])
    worker_clock.advance(1)
    warned = wait_for(lambda: ticket(ws, "T-1"), lambda t: "sla-warning" in t["tags"])
    assert warned["sla"]["targets"]["first_response"]["state"] == "warning"
    worker_clock.advance(2)
    breached = wait_for(lambda: ticket(ws, "T-1"), lambda t: t["priority"] == "urgent")
    assert breached["sla"]["targets"]["first_response"]["state"] == "breached"
    by_type = {r["event_type"]: r for r in runs(ws, "T-1")}
    assert (parse(by_type["sla.warning"]["at"]) - warn).total_seconds() < LATE_S
    assert (parse(by_type["sla.breached"]["at"]) - due).total_seconds() < LATE_S


def test_a_met_first_response_cancels_the_breach(ws: Any, worker_clock: ShiftedClock) -> None:
    ws.client.post("/v1/sla-policies", json={"name": "all", "targets": {"first_response": "2s"}},
                   headers=ws.h("manager"))
    ws.rule(name="breached", triggers=["sla.breached"], actions=[{"type": "add_tags", "tags": ["late"]}])
    ws.send({"id": "e1", "type": "ticket.created", "ticket": {"id": "T-1"}})
    out = ws.send({"id": "e2", "type": "message.sent", "ticket": {"id": "T-1"}, "message": {"author": "agent", "body": "Hi"}})
    assert out["ticket"]["sla"]["targets"]["first_response"]["state"] == "met"
    worker_clock.advance(2.5)  # past the old due time: no breach may arrive
    settled(ws, worker_clock, "T-1")
    assert "late" not in ticket(ws, "T-1")["tags"]
    assert not [r for r in runs(ws, "T-1") if r["event_type"] == "sla.breached"]
