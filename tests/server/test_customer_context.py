"""ctx.history, ctx.customer and the contact/ticket count fields, end to end through
POST /v1/events on both stores (issue 19)."""

from __future__ import annotations

from typing import Any

import orjson
from server_helpers import Workspace, event

from server.store import keys as K

ESCALATE_ON_THIRD = '''
def run(event, ticket, ctx):
    waiting = 0
    for item in ctx.history + [{"message": event.get("message")}]:
        m = item.get("message")
        if not m:
            continue
        if m["author"] == "agent":
            waiting = 0
        elif m["author"] == "customer":
            waiting += 1
    if waiting >= 3:
        return {"priority": "urgent", "add_tags": ["unanswered-3"]}
    return None
'''

CUSTOMER = '''
def run(event, ticket, ctx):
    c = ctx.customer
    if c is None:
        return {"add_tags": ["no-customer"]}
    ids = ",".join(t["id"] for t in c["recent"])
    return {"custom": {"open": c["open_tickets"], "d30": c["tickets_30d"], "recent": ids,
                       "history_seen": len(ctx.history)}}
'''


def _msg(eid: str, author: str, tid: str = "T-1", body: str = "") -> dict[str, Any]:
    etype = "message.received" if author == "customer" else "message.sent"
    return event(eid, etype, tid=tid, message={"author": author, "body": body or f"{eid} says hi",
                                               "channel": "email"})


def _script(ws: Workspace, name: str, source: str) -> dict[str, Any]:
    r = ws.client.post("/v1/scripts", json={"name": name, "source": source}, headers=ws.h("admin"))
    assert r.status_code == 201, r.text
    return dict(r.json())


def _ticket(ws: Workspace, tid: str) -> dict[str, Any]:
    r = ws.client.get(f"/v1/tickets/{tid}", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_script_escalates_on_the_third_unanswered_customer_message(ws: Workspace) -> None:
    _script(ws, "third", ESCALATE_ON_THIRD)
    ws.rule(name="third", triggers=["message.received"],
            actions=[{"type": "run_script", "script": "third"}])
    ws.send(event("e0", ticket={"subject": "help"}))
    ws.send(_msg("m1", "customer"))
    ws.send(_msg("m2", "customer"))
    ws.send(_msg("a1", "agent"))          # an answer resets the count
    ws.send(_msg("m3", "customer"))
    ws.send(_msg("m4", "customer"))
    assert _ticket(ws, "T-1")["priority"] == "normal"
    ws.send(_msg("m5", "customer"))       # the third since the agent's answer
    t = _ticket(ws, "T-1")
    assert t["priority"] == "urgent" and "unanswered-3" in t["tags"]
    assert t["message_count"] == 6 and t["customer_messages_since_agent"] == 3


def test_a_script_stored_before_uses_existed_still_sees_its_history(ws: Workspace) -> None:
    _script(ws, "third", ESCALATE_ON_THIRD)
    store = ws.client.app_state["store"]  # type: ignore[attr-defined]

    async def forget_uses() -> None:   # the script's record as an older deskflow stored it
        meta = orjson.loads(await store.redis.hget(K.scripts(ws.id), "third"))
        del meta["uses"]
        await store.redis.hset(K.scripts(ws.id), "third", orjson.dumps(meta).decode())

    ws.client.portal.call(forget_uses)  # type: ignore[union-attr]
    ws.rule(name="third", triggers=["message.received"],
            actions=[{"type": "run_script", "script": "third"}])
    ws.send(event("e0", ticket={"subject": "help"}))
    for i in range(3):
        ws.send(_msg(f"m{i}", "customer"))
    assert "unanswered-3" in _ticket(ws, "T-1")["tags"]


def test_uses_is_stored_with_the_script_version(ws: Workspace) -> None:
    assert _script(ws, "third", ESCALATE_ON_THIRD)["uses"] == ["history"]
    assert _script(ws, "cust", CUSTOMER)["uses"] == ["history", "customer"]
    assert _script(ws, "plain", "def run(event, ticket, ctx):\n    return None\n")["uses"] == []


def test_a_script_reads_the_customer_summary(ws: Workspace) -> None:
    _script(ws, "cust", CUSTOMER)
    ws.rule(name="cust", triggers=["ticket.created"],
            actions=[{"type": "run_script", "script": "cust"}])
    for n in range(3):
        ws.send(event(f"e{n}", tid=f"T-{n}", ticket={"subject": f"s{n}", "status": "open",
                                                    "contact": {"id": "C-1"}},
                      occurred_at=f"2026-11-2{n}T08:00:00Z"))
    t = _ticket(ws, "T-2")
    assert t["custom"]["open"] == 3
    assert t["custom"]["recent"] == "T-2,T-1,T-0"
    assert t["custom"]["history_seen"] == 0
    assert "open_tickets" not in t["contact"]   # the counts are not stored on tickets


def test_a_rule_on_contact_open_tickets(ws: Workspace) -> None:
    ws.rule(name="busy", triggers=["ticket.created", "ticket.updated"],
            conditions={"all": [{"field": "contact.open_tickets", "op": "gte", "value": 3}]},
            actions=[{"type": "add_tags", "tags": ["busy-customer"]}])
    for n in range(2):
        ws.send(event(f"e{n}", tid=f"T-{n}", ticket={"status": "open", "contact": {"id": "C-1"}}))
    ws.send(event("s0", "ticket.updated", tid="T-0", ticket={"status": "solved"}))
    ws.send(event("e2", tid="T-2", ticket={"status": "open", "contact": {"id": "C-1"}}))
    assert "busy-customer" not in _ticket(ws, "T-2")["tags"]    # two open: T-0 was solved
    ws.send(event("r0", "ticket.updated", tid="T-0", ticket={"status": "open"}))  # reopened
    assert "busy-customer" in _ticket(ws, "T-0")["tags"]
    # a ticket moving to another contact leaves C-1's count
    ws.send(event("mv", "ticket.updated", tid="T-1", ticket={"contact": {"id": "C-2"}}))
    ws.send(event("e3", "ticket.updated", tid="T-2", ticket={"subject": "x"}))
    assert "busy-customer" not in _ticket(ws, "T-2")["tags"]
    r = ws.client.get("/v1/contacts/C-1", headers=ws.h("viewer"))
    assert r.json()["open_tickets"] == 2 and r.json()["tickets_30d"] >= 0


def test_message_count_fields_in_rules(ws: Workspace) -> None:
    ws.rule(name="nag", triggers=["message.received"],
            conditions={"all": [{"field": "ticket.customer_messages_since_agent", "op": "gte",
                                 "value": 2},
                                {"field": "ticket.message_count", "op": "gte", "value": 3}]},
            actions=[{"type": "add_tags", "tags": ["nag"]}])
    ws.send(event("e0"))
    ws.send(_msg("m1", "customer"))
    ws.send(_msg("m2", "customer"))
    assert "nag" not in _ticket(ws, "T-1")["tags"]
    ws.send(_msg("m3", "customer"))
    assert "nag" in _ticket(ws, "T-1")["tags"]


def test_history_is_bounded(ws: Workspace) -> None:
    _script(ws, "count", '''
def run(event, ticket, ctx):
    return {"custom": {"n": len(ctx.history), "first": ctx.history[0]["type"],
                       "big": max(len(h["message"]["body"]) for h in ctx.history if h["message"])}}
''')
    ws.send(event("e0"))
    for n in range(60):
        ws.send(_msg(f"m{n}", "customer", body="é" * 10_000))
    ws.rule(name="count", triggers=["ticket.updated"],
            actions=[{"type": "run_script", "script": "count"}])
    ws.send(event("u", "ticket.updated"))
    custom = _ticket(ws, "T-1")["custom"]
    assert custom["n"] == 50 and custom["first"] == "message.received"
    assert custom["big"] < 2100   # 4 KiB of UTF-8 per body


def test_contacts_by_group_are_paged_from_the_groups_index(ws: Workspace) -> None:
    for n in range(5):
        ws.send(event(f"e{n}", tid=f"T-{n}", ticket={"contact": {"id": f"C-{n}",
                                                                 "groups": ["VIP"] if n % 2 else []}}))
    r = ws.client.put("/v1/contacts/C-0/groups", json={"groups": ["vip"]}, headers=ws.h("manager"))
    assert r.status_code == 200
    r = ws.client.get("/v1/contacts?group=vip&limit=2", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    page = r.json()
    assert [c["id"] for c in page["items"]] == ["C-0", "C-1"]
    page2 = ws.client.get(f"/v1/contacts?group=vip&limit=2&cursor={page['next']}",
                          headers=ws.h("viewer")).json()
    assert [c["id"] for c in page2["items"]] == ["C-3"] and page2["next"] is None
    ws.client.put("/v1/contacts/C-1/groups", json={"groups": []}, headers=ws.h("manager"))
    ws.send(event("x3", "ticket.updated", tid="T-3", ticket={"contact": {"id": "C-3", "groups": []}}))
    ids = [c["id"] for c in ws.client.get("/v1/contacts?group=VIP",
                                          headers=ws.h("viewer")).json()["items"]]
    assert ids == ["C-0"]
    every = ws.client.get("/v1/contacts?limit=3", headers=ws.h("viewer")).json()
    assert [c["id"] for c in every["items"]] == ["C-0", "C-1", "C-2"] and every["next"]


def test_contact_list_filters_are_validated(ws: Workspace) -> None:
    assert [c["id"] for c in ws.client.get("/v1/contacts", headers=ws.h("viewer")).json()["items"]] == []
    for query, status in (("?group=-x", 422), ("?group=a%20b", 422),
                          ("?group=vip&limit=0", 400), ("?group=vip&colour=x", 422)):
        r = ws.client.get(f"/v1/contacts{query}", headers=ws.h("viewer"))
        assert r.status_code == status, (query, r.text)
    assert ws.client.get("/v1/contacts?group=vip").status_code == 401


def test_groups_take_a_text_colour_validated_like_the_background(ws: Workspace) -> None:
    r = ws.client.post("/v1/groups", json={"name": "vip", "color": "#112233",
                                           "text_color": "#ffffff"}, headers=ws.h("manager"))
    assert r.status_code == 201 and r.json()["text_color"] == "#ffffff"
    r = ws.client.patch("/v1/groups/vip", json={"text_color": "white"}, headers=ws.h("manager"))
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "text_color"
    r = ws.client.patch("/v1/groups/vip", json={"text_color": "#000000"}, headers=ws.h("viewer"))
    assert r.status_code == 403


def test_day_buckets_are_named_as_strftime_names_them() -> None:
    """customers._day_of remembers each day's name (strftime was ~5 us, three or four an event):
    the name is strftime's for any aware time, in its own zone, across the years RFC 3339 has."""
    from datetime import timedelta, timezone

    from hypothesis import given
    from hypothesis import strategies as st

    from server import customers

    zones = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))

    @given(st.datetimes(timezones=zones))
    def same(when: Any) -> None:
        assert customers._day_of(when) == when.strftime("%Y-%m-%d")

    same()
