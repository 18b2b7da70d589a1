"""A contact in an event merges into the STORED contact, as a partial ticket merges into the
stored ticket (issue 12 item 1): absent keys keep their value, `custom` merges by key, null
clears. Before, a second ticket naming only `{"id": "C-9"}` wiped the contact's email, name and
custom, and its acknowledgement read "Hi , ..."."""

from __future__ import annotations

from server_helpers import Workspace, event

from server import automation

BOB = {"id": "C-9", "email": "bob@example.com", "name": "Bob", "custom": {"plan": "gold"}}
ACK = {"name": "ack", "enabled": True, "triggers": ["ticket.created"],
       "actions": [{"type": "send_message", "template": "Hi {{contact.name}}, we got it."}]}


def _contact(ws: Workspace, cid: str = "C-9") -> dict:
    r = ws.client.get(f"/v1/contacts/{cid}", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    body = dict(r.json())
    assert type(body.pop("open_tickets")) is int and type(body.pop("tickets_30d")) is int
    return body   # the stored record; its counts are tested in test_customer_context.py


def test_a_partial_contact_on_a_new_ticket_keeps_the_stored_contact(ws: Workspace) -> None:
    ws.rule(**ACK)
    ws.send(event("e1", tid="T-C1", ticket={"contact": BOB}))
    out = ws.send(event("e2", tid="T-C2", ticket={"contact": {"id": "C-9"}}))
    assert out["effects"][0]["body"] == "Hi Bob, we got it."
    stored = _contact(ws)
    assert stored["email"] == "bob@example.com" and stored["name"] == "Bob"
    assert stored["custom"] == {"plan": "gold"}
    mirror = ws.client.get("/v1/tickets/T-C2", headers=ws.h()).json()["contact"]
    assert mirror == {"id": "C-9", "email": "bob@example.com", "name": "Bob", "groups": [],
                      "custom": {"plan": "gold"}}


def test_contact_keys_merge_and_null_clears(ws: Workspace) -> None:
    ws.send(event("e1", tid="T-C1", ticket={"contact": {**BOB, "groups": ["vip"]}}))
    ws.send(event("e2", tid="T-C2", ticket={"contact": {"id": "C-9", "name": "Robert",
                                                        "custom": {"seats": 3}}}))
    ws.send(event("e3", tid="T-C3", ticket={"contact": {"id": "C-9", "email": None,
                                                        "custom": {"plan": None}}}))
    stored = _contact(ws)
    assert stored == {"id": "C-9", "email": None, "name": "Robert", "groups": ["vip"],
                      "custom": {"seats": 3}}
    # the first ticket's next event sees the contact as it is now, not its older copy
    out = ws.send(event("e4", "ticket.updated", tid="T-C1"))
    assert out["ticket"]["contact"]["name"] == "Robert"
    assert out["ticket"]["contact"]["custom"] == {"seats": 3}


def test_put_groups_does_not_wipe_the_contact(ws: Workspace) -> None:
    ws.rule(**ACK)
    ws.send(event("e1", tid="T-C1", ticket={"contact": BOB}))
    r = ws.client.put("/v1/contacts/C-9/groups", json={"groups": ["vip"]}, headers=ws.h("manager"))
    assert r.status_code == 200 and r.json() == {"id": "C-9", "groups": ["vip"]}
    assert _contact(ws) == {**BOB, "groups": ["vip"]}
    out = ws.send(event("e2", tid="T-C2", ticket={"contact": {"id": "C-9"}}))
    assert out["effects"][0]["body"] == "Hi Bob, we got it."
    assert out["ticket"]["contact"]["groups"] == ["vip"]
    assert _contact(ws) == {**BOB, "groups": ["vip"]}


def test_groups_set_before_the_first_event_are_kept(ws: Workspace) -> None:
    ws.client.put("/v1/contacts/C-9/groups", json={"groups": ["vip"]}, headers=ws.h())
    out = ws.send(event("e1", tid="T-C1", ticket={"contact": BOB}))
    assert out["ticket"]["contact"] == {**BOB, "groups": ["vip"]}
    assert _contact(ws) == {**BOB, "groups": ["vip"]}


def test_merge_event_merges_into_the_stored_contact() -> None:
    """The pure step: the stored record is the base, whatever the ticket's mirror says."""
    ev = {"id": "e", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
          "ticket": {"id": "T-2", "contact": {"id": "C-9", "custom": {"seats": 2}}}}
    stored = {**BOB, "groups": ["vip"]}
    merged = automation.merge_event(None, ev, stored)
    assert merged["contact"] == {**BOB, "groups": ["vip"], "custom": {"plan": "gold", "seats": 2}}
    assert automation.contact_record(merged) == merged["contact"]
    other = automation.merge_event(None, {**ev, "ticket": {"id": "T-3", "contact": {"id": "C-1"}}},
                                   None)
    assert other["contact"] == {"id": "C-1", "groups": [], "custom": {}}
