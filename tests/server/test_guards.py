"""Loop and flood guards (issue 8 part 4): the pure module, automate() around the rules pass, and
the whole pipeline through POST /v1/events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rules import compile_rules
from server import guards
from server.automation import automate, merge_event
from server.guards import DEFAULT_LIMITS, GuardLimits

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REPLY = {"type": "send_message", "template": "Thanks", "body": "Thanks"}
NOTIFY = {"type": "notify", "target": "team-leads", "message": "look"}


def message(headers: Any = None, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"author": "customer", "body": "hello", **extra}
    if headers is not None:
        msg["headers"] = headers
    return {"id": "e", "type": "message.received", "occurred_at": "2026-11-23T12:00:00Z",
            "ticket": {"id": "T-1"}, "message": msg}


# --- auto-reply markers -------------------------------------------------------------------------

@pytest.mark.parametrize("event, marker", [
    (message({"Auto-Submitted": "auto-replied"}), "Auto-Submitted: auto-replied"),
    (message({"auto-submitted": "auto-generated; type=vacation"}), "Auto-Submitted: auto-generated; type=vacation"),
    (message({"AUTO-SUBMITTED": "No"}), None),
    (message({"Auto-Submitted": "no"}), None),
    (message({"X-Autoreply": "yes"}), "X-Autoreply: yes"),
    (message({"x-autorespond": "true"}), "X-Autorespond: true"),
    (message({"X-Autoreply": "no"}), None),
    (message({"Precedence": "bulk"}), "Precedence: bulk"),
    (message({"Precedence": "JUNK"}), "Precedence: JUNK"),
    (message({"Precedence": "list"}), "Precedence: list"),
    (message({"Precedence": "first-class"}), None),
    (message([["Auto-Submitted", "auto-replied"]]), "Auto-Submitted: auto-replied"),
    (message({"Received": ["a", "b"], "Precedence": ["x", "bulk"]}), "Precedence: bulk"),
    (message(auto_reply=True), "message.auto_reply is true"),
    (message(auto_reply="yes"), None),
    (message({"Subject": "Out of office"}), None),
    (message("Auto-Submitted: auto-replied"), None),   # not an object: no headers read
    (message(), None),
    ({"type": "ticket.updated"}, None),
    ({"type": "message.received", "message": "x"}, None),
])
def test_auto_reply_marker(event: dict[str, Any], marker: str | None) -> None:
    assert guards.auto_reply_marker(event) == marker


def test_auto_reply_suppresses_send_message_only() -> None:
    out = guards.guard_effects([REPLY, NOTIFY, {"type": "webhook", "url": "https://x"}],
                               message({"X-Autoreply": "yes"}), {}, NOW)
    assert out.effects == [NOTIFY, {"type": "webhook", "url": "https://x"}]
    assert out.suppressed == [{"effect": REPLY, "reason": "auto_reply: the event's message is an auto-reply "
                                                          "(X-Autoreply: yes); send_message needs "
                                                          "\"allow_auto_reply\": true to answer it"}]
    assert out.notes == ["send_message suppressed: " + out.suppressed[0]["reason"]]
    assert out.state["sent"] == {"send_message": [], "notify": ["2026-11-23T12:00:00Z"]}


def test_allow_auto_reply_lets_the_answer_out() -> None:
    allowed = {**REPLY, "allow_auto_reply": True}
    out = guards.guard_effects([allowed], message(auto_reply=True), {}, NOW)
    assert out.effects == [allowed] and out.suppressed == []


# --- send caps ----------------------------------------------------------------------------------

def run_sends(times: list[datetime], effects: list[dict[str, Any]],
              limits: GuardLimits = DEFAULT_LIMITS) -> list[tuple[int, int]]:
    """Send `effects` at each time in turn, carrying the ticket's counts; (kept, suppressed) each."""
    ticket: dict[str, Any] = {}
    out = []
    for at in times:
        res = guards.guard_effects(effects, message(), ticket, at, limits)
        ticket = {"automation": {"guards": res.state}}
        out.append((len(res.effects), len(res.suppressed)))
    return out


def test_ten_per_ten_minutes() -> None:
    got = run_sends([NOW + timedelta(seconds=i) for i in range(12)], [REPLY])
    assert got == [(1, 0)] * 10 + [(0, 1)] * 2
    # ten minutes after the first send, one slot is free again
    res = run_sends([NOW + timedelta(seconds=i) for i in range(10)] + [NOW + timedelta(minutes=10)], [REPLY])
    assert res[-1] == (1, 0)


def test_twenty_five_per_hour() -> None:
    """Ten every ten minutes passes the first cap, but the 26th send within the hour does not."""
    times = [NOW + timedelta(minutes=2 * i) for i in range(30)]   # 5 per 10 min, 30 per hour
    got = run_sends(times, [REPLY])
    assert got[:25] == [(1, 0)] * 25
    assert got[25:] == [(0, 1)] * 5
    res = guards.guard_effects([REPLY], message(), {"automation": {"guards": {"sent": {
        "send_message": [(NOW + timedelta(minutes=2 * i)).isoformat() for i in range(25)]}}}},
        NOW + timedelta(minutes=50))
    assert res.suppressed[0]["reason"] == "send_cap: 25 send_message per 1h reached for this ticket"


def test_caps_count_each_effect_type_and_several_effects_of_one_run() -> None:
    got = run_sends([NOW], [REPLY] * 12 + [NOTIFY] * 3)
    assert got == [(13, 2)]
    res = guards.guard_effects([REPLY] * 12, message(), {}, NOW)
    assert [s["reason"] for s in res.suppressed] == ["send_cap: 10 send_message per 10m reached for this ticket"] * 2


def test_state_is_pruned_to_what_a_cap_can_see() -> None:
    old = [(NOW - timedelta(hours=2, seconds=i)).isoformat() for i in range(50)]
    res = guards.guard_effects([REPLY], message(), {"automation": {"guards": {"sent": {"send_message": old}}}}, NOW)
    assert res.state["sent"]["send_message"] == ["2026-11-23T12:00:00Z"]
    many = run_sends([NOW + timedelta(seconds=i) for i in range(65)], [REPLY],
                     GuardLimits(((3, timedelta(minutes=1)),), 20))
    assert [i for i, (kept, _) in enumerate(many) if kept] == [0, 1, 2, 60, 61, 62]


def test_odd_bookkeeping_is_read_as_empty() -> None:
    for state in (None, "x", {"sent": "x"}, {"sent": {"send_message": "x"}},
                  {"sent": {"send_message": [1, None, "not a time"]}}):
        res = guards.guard_effects([REPLY], message(), {"automation": {"guards": state}}, NOW)
        assert res.effects == [REPLY]


# --- generated events ---------------------------------------------------------------------------

def test_generated_events_are_capped_per_minute() -> None:
    ticket: dict[str, Any] = {}
    admitted = []
    for i in range(25):
        ok, state, note = guards.admit_generated({"type": "time.reached"}, ticket, NOW + timedelta(seconds=i))
        ticket = {"automation": {"guards": state}}
        admitted.append(ok)
    assert admitted == [True] * 20 + [False] * 5
    assert note == ("generated_cap: 20 automation-generated events per minute reached for this ticket; "
                    "rules not run for this time.reached event")
    ok, _, _ = guards.admit_generated({"type": "sla.warning"}, ticket, NOW + timedelta(seconds=85))
    assert ok  # the minute has moved on past the storm's first events


@pytest.mark.parametrize("event, generated", [
    ({"type": "time.reached"}, True), ({"type": "sla.breached"}, True), ({"type": "ticket.woke"}, True),
    ({"type": "message.sent", "message": {"author": "automation"}}, True),
    ({"type": "ticket.updated", "actor": "automation"}, True),
    ({"type": "ticket.updated", "actor": "system"}, False),
    ({"type": "message.received", "message": {"author": "customer"}}, False),
    ({"type": "ticket.created"}, False), ("x", False),
])
def test_is_generated(event: Any, generated: bool) -> None:
    assert guards.is_generated(event) is generated
    ok, state, note = guards.admit_generated(event if isinstance(event, dict) else {}, {}, NOW,
                                             GuardLimits(generated_per_minute=1))
    assert ok and (bool(state.get("generated")) is generated) and note is None


# --- limits as a setting -------------------------------------------------------------------------

def test_limits_from_spec() -> None:
    limits, problems = GuardLimits.from_spec({"send_caps": [{"count": 3, "per": "5m"}], "generated_per_minute": 7})
    assert problems == [] and limits == GuardLimits(((3, timedelta(minutes=5)),), 7)
    assert limits.to_spec() == {"send_caps": [{"count": 3, "per": "5m"}], "generated_per_minute": 7}
    assert GuardLimits.from_spec({}) == (DEFAULT_LIMITS, [])
    assert DEFAULT_LIMITS.to_spec() == {"send_caps": [{"count": 10, "per": "10m"}, {"count": 25, "per": "1h"}],
                                        "generated_per_minute": 20}
    assert GuardLimits.from_spec({"send_caps": []})[0] == GuardLimits((), 20)   # no send caps


@pytest.mark.parametrize("spec, path", [
    ([], ""), ({"caps": []}, "caps"), ({"send_caps": {}}, "send_caps"),
    ({"send_caps": [{"count": 0, "per": "1m"}]}, "send_caps[0].count"),
    ({"send_caps": [{"count": True, "per": "1m"}]}, "send_caps[0].count"),
    ({"send_caps": [{"count": 1, "per": "2d"}]}, "send_caps[0].per"),
    ({"send_caps": [{"count": 1, "per": "soon"}]}, "send_caps[0].per"),
    ({"send_caps": [{"count": 1}]}, "send_caps[0]"),
    ({"send_caps": [{"count": 1, "per": "1m"}] * 6}, "send_caps"),
    ({"generated_per_minute": 0}, "generated_per_minute"),
    ({"generated_per_minute": "20"}, "generated_per_minute"),
])
def test_limits_problems_are_data(spec: Any, path: str) -> None:
    limits, problems = GuardLimits.from_spec(spec)
    assert limits is None and problems[0]["path"] == path


# --- automate(): the guards around the rules pass -------------------------------------------------

REPLY_RULE = {"name": "ack", "triggers": ["message.received"],
              "conditions": {"field": "event.actor", "op": "is", "value": "customer"},
              "actions": [{"type": "send_message", "template": "We got it"}, {"type": "add_tags", "tags": ["acked"]}]}


def test_automate_keeps_counts_with_the_ticket_and_says_why() -> None:
    ruleset = compile_rules([REPLY_RULE])
    previous = None
    kept = []
    for i in range(12):
        event = {**message(), "id": f"e{i}"}
        merged = merge_event(previous, event)
        run = automate(event, merged, previous, ruleset, NOW + timedelta(seconds=i))
        kept.append(len(run.effects))
        previous = run.ticket
    assert kept == [1] * 10 + [0] * 2
    assert run.ticket["tags"] == ["acked"]          # the rest of the rule still applied
    assert run.suppressed == [{"effect": {"type": "send_message", "template": "We got it", "body": "We got it"},
                               "reason": "send_cap: 10 send_message per 10m reached for this ticket"}]
    assert run.notes == ["send_message suppressed: send_cap: 10 send_message per 10m reached for this ticket"]
    assert len(run.ticket["automation"]["guards"]["sent"]["send_message"]) == 10


def test_automate_with_workspace_limits() -> None:
    ruleset = compile_rules([REPLY_RULE])
    limits = GuardLimits(((1, timedelta(hours=1)),), 20)
    first = automate(message(), merge_event(None, message()), None, ruleset, NOW, guards=limits)
    second = automate(message(), merge_event(first.ticket, message()), first.ticket, ruleset, NOW, guards=limits)
    assert (len(first.effects), len(second.effects)) == (1, 0)


def test_automate_leaves_tickets_without_capped_effects_alone() -> None:
    ruleset = compile_rules([{"name": "t", "triggers": ["ticket.created"], "actions": [{"type": "add_tags", "tags": ["x"]}]}])
    event = {"id": "e", "type": "ticket.created", "occurred_at": "2026-11-23T12:00:00Z", "ticket": {"id": "T"}}
    run = automate(event, merge_event(None, event), None, ruleset, NOW)
    assert "automation" not in run.ticket and run.notes == [] and run.suppressed == []


def test_a_time_reached_storm_is_cut_and_does_not_rearm_at_once() -> None:
    """Over the cap a time.reached event runs no rules; the time rules that hold are booked as
    fired, so next_check (which the worker uses for the next timer) does not answer `now` again."""
    ruleset = compile_rules([{"name": "nudge", "triggers": ["time.reached"],
                              "conditions": {"field": "updated_at", "op": "older_than", "value": "1m"},
                              "actions": [{"type": "notify", "target": "x", "message": "idle"}]}])
    ticket = merge_event(None, {"id": "c", "type": "ticket.created", "occurred_at": "2026-11-23T11:00:00Z",
                                "ticket": {"id": "T"}})
    stamps = [(NOW - timedelta(seconds=s)).isoformat() for s in range(20)]
    ticket["automation"] = {"guards": {"generated": stamps}}
    event = {"id": "time_rules@1", "type": "time.reached", "occurred_at": "2026-11-23T12:00:00Z", "ticket": {"id": "T"}}
    run = automate(event, ticket, ticket, ruleset, NOW)
    assert run.matched == [] and run.effects == []
    assert run.notes == ["generated_cap: 20 automation-generated events per minute reached for this ticket; "
                         "rules not run for this time.reached event"]
    assert run.ticket["automation"]["time_rules_fired"] == ["nudge"]
    assert ruleset.next_check(run.ticket, NOW, exclude=run.ticket["automation"]["time_rules_fired"]) is None
    # under the cap the same event runs the rules
    ticket["automation"] = {"guards": {"generated": stamps[:5]}}
    assert automate(event, ticket, ticket, ruleset, NOW).matched == ["nudge"]


# --- end to end through POST /v1/events -------------------------------------------------------------

AUTO_HEADERS = [{"Auto-Submitted": "auto-replied"}, {"X-Autoreply": "yes"}, {"X-Autorespond": "1"},
                {"Precedence": "bulk"}, {"Precedence": "junk"}, {"Precedence": "list"}]


def test_thirty_auto_replies_and_thirty_messages(ws: Any) -> None:
    ws.rule(name="ack every customer message", triggers=["message.received"],
            conditions={"field": "event.actor", "op": "is", "value": "customer"},
            actions=[{"type": "send_message", "template": "We got your message"},
                     {"type": "add_tags", "tags": ["acked"]}])
    sent = []
    for i in range(60):
        auto = i % 2 == 0
        msg: dict[str, Any] = {"author": "customer", "body": f"message {i}"}
        if auto and i % 12 == 10:
            msg["auto_reply"] = True
        elif auto:
            msg["headers"] = AUTO_HEADERS[(i // 2) % len(AUTO_HEADERS)]
        out = ws.send({"id": f"m{i}", "type": "message.received", "ticket": {"id": "T-1"}, "message": msg})
        assert out["status"] == "processed"
        assert "acked" in out["ticket"]["tags"]     # other actions still run on auto-replies
        sent.append((auto, [e["type"] for e in out["effects"]]))
    assert all(effects == [] for auto, effects in sent if auto)
    normal = [effects for auto, effects in sent if not auto]
    assert normal == [["send_message"]] * 10 + [[]] * 20

    items = ws.client.get("/v1/tickets/T-1/runs?limit=100", headers=ws.h("viewer")).json()["items"]
    by_event = {r["event_id"]: r for r in items}
    assert len(by_event) == 60
    reply = {"type": "send_message", "template": "We got your message", "body": "We got your message"}
    for i in range(60):
        record = by_event[f"m{i}"]
        notes, suppressed = record["notes"], record["suppressed"]
        if i % 2 == 0:
            assert len(notes) == 1 and notes[0].startswith("send_message suppressed: auto_reply: ")
            assert [s["effect"] for s in suppressed] == [reply]
            assert suppressed[0]["reason"].startswith("auto_reply: the event's message is an auto-reply (")
        elif i < 20:
            assert notes == [] and suppressed == [] and record["effects"] == [reply]
        else:
            reason = "send_cap: 10 send_message per 10m reached for this ticket"
            assert notes == [f"send_message suppressed: {reason}"]
            assert suppressed == [{"effect": reply, "reason": reason}] and record["effects"] == []
    ticket = ws.client.get("/v1/tickets/T-1", headers=ws.h("viewer")).json()
    assert len(ticket["automation"]["guards"]["sent"]["send_message"]) == 10


def test_allow_auto_reply_end_to_end(ws: Any) -> None:
    ws.rule(name="vacation-aware", triggers=["message.received"],
            actions=[{"type": "send_message", "template": "Got it", "allow_auto_reply": True}])
    out = ws.send({"id": "a1", "type": "message.received", "ticket": {"id": "T-2"},
                   "message": {"author": "customer", "body": "away", "headers": {"Auto-Submitted": "auto-replied"}}})
    assert out["effects"] == [{"type": "send_message", "template": "Got it", "body": "Got it", "allow_auto_reply": True}]


# --- the workspace setting: /v1/workspace/guards and store/guards.py ------------------------------

def test_guard_limits_route(ws: Any) -> None:
    c, h = ws.client, ws.h
    defaults = {"send_caps": [{"count": 10, "per": "10m"}, {"count": 25, "per": "1h"}],
                "generated_per_minute": 20, "default": True}
    assert c.get("/v1/workspace/guards", headers=h("viewer")).json() == defaults
    r = c.put("/v1/workspace/guards", json={"send_caps": [{"count": 3, "per": "90s"}]}, headers=h("admin"))
    assert r.status_code == 200, r.text
    want = {"send_caps": [{"count": 3, "per": "1m30s"}], "generated_per_minute": 20, "default": False}
    assert r.json() == want
    assert c.get("/v1/workspace/guards", headers=h("viewer")).json() == want
    assert c.put("/v1/workspace/guards", json={}, headers=h("manager")).status_code == 403
    bad = c.put("/v1/workspace/guards", json={"send_caps": [{"count": 0, "per": "1m"}], "x": 1},
                headers=h("admin"))
    assert bad.status_code == 422
    assert [d["path"] for d in bad.json()["error"]["details"]] == ["x", "send_caps[0].count"]
    assert c.get("/v1/workspace/guards", headers=h("viewer")).json() == want   # unchanged
    assert c.delete("/v1/workspace/guards", headers=h("manager")).status_code == 403
    assert c.delete("/v1/workspace/guards", headers=h("admin")).status_code == 204
    assert c.get("/v1/workspace/guards", headers=h("viewer")).json() == defaults


@pytest.mark.anyio
async def test_stored_limits_are_what_the_worker_would_pass(settings: Any) -> None:
    from server.store import guards as G
    from server.store.connect import close_store, open_store

    store = await open_store(settings)
    try:
        assert await G.get_limits(store, "ws_x") == DEFAULT_LIMITS
        await G.put_spec(store, "ws_x", {"send_caps": [{"count": 2, "per": "1h"}], "generated_per_minute": 5})
        assert await G.get_limits(store, "ws_x") == GuardLimits(((2, timedelta(hours=1)),), 5)
        await G.put_spec(store, "ws_x", {"send_caps": "broken"})   # e.g. written by an older version
        assert await G.get_limits(store, "ws_x") == DEFAULT_LIMITS
    finally:
        await close_store(store)


def test_automation_authored_events_are_capped_end_to_end(ws: Any) -> None:
    """A help desk reporting back every message our automation sent (author `automation`): from
    the 21st such event in a minute the rules stop running on this ticket, and the runs say why."""
    ws.rule(name="echo", triggers=["message.sent"], actions=[{"type": "add_tags", "tags": ["seen"]}])
    for i in range(24):
        out = ws.send({"id": f"s{i}", "type": "message.sent", "ticket": {"id": "T-3"},
                       "message": {"author": "automation", "body": f"auto {i}"}})
        assert out["status"] == "processed"
    items = ws.client.get("/v1/tickets/T-3/runs?limit=100", headers=ws.h("viewer")).json()["items"]
    by_event = {r["event_id"]: r for r in items}
    ran = [bool(by_event[f"s{i}"]["rules"]) for i in range(24)]
    assert ran == [True] * 20 + [False] * 4
    assert by_event["s23"]["notes"] == ["generated_cap: 20 automation-generated events per minute reached "
                                        "for this ticket; rules not run for this message.sent event"]
    # an agent's own message is not generated: its rules run
    ws.send({"id": "h1", "type": "message.sent", "ticket": {"id": "T-3"}, "message": {"author": "agent", "body": "hi"}})
    items = ws.client.get("/v1/tickets/T-3/runs?limit=100", headers=ws.h("viewer")).json()["items"]
    assert next(r for r in items if r["event_id"] == "h1")["rules"][0]["matched"] is True


def test_workspace_limits_reach_the_pipeline(ws: Any) -> None:
    """PUT /v1/workspace/guards: the worker applies the workspace's own caps from the next event."""
    ws.rule(name="ack", triggers=["message.received"], actions=[{"type": "send_message", "template": "Hi"},
                                                                {"type": "notify", "target": "t", "message": "m"}])
    r = ws.client.put("/v1/workspace/guards", json={"send_caps": [{"count": 2, "per": "1h"}]}, headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    kinds = [[e["type"] for e in ws.send({"id": f"w{i}", "type": "message.received", "ticket": {"id": "T-4"},
                                          "message": {"author": "customer", "body": "x"}})["effects"]]
             for i in range(3)]
    assert kinds == [["send_message", "notify"]] * 2 + [[]]
    assert ws.client.delete("/v1/workspace/guards", headers=ws.h("admin")).status_code == 204
    out = ws.send({"id": "w3", "type": "message.received", "ticket": {"id": "T-4"},
                   "message": {"author": "customer", "body": "x"}})
    assert [e["type"] for e in out["effects"]] == ["send_message", "notify"]   # the defaults again: 10
