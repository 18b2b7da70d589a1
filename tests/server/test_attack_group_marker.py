"""Hostile tenant vs the contact-group index's bookkeeping: the backfill's "done" marker lives in
the same key space as the group indexes (keys.group_members(ws, "contact", "\\x00")), and an
event's contact could carry any non-empty group name, "\\x00" included. After a first listing
had set the marker (a string), such an event was answered "processed" while its commit failed
half-way on the ZADD to that key: the contact's other group index entries were never written
(C-1 missing from ?group=vip, a silent drop); before a first listing, it would have made the
backfill think it had already run. Control characters in an event's groups are now a 422."""

from __future__ import annotations

from server_helpers import Workspace, event


def test_a_group_named_like_the_backfill_marker_breaks_nothing(ws: Workspace) -> None:
    ws.send(event("e-0", tid="T-0", ticket={"contact": {"id": "C-0", "groups": ["vip"]}}))
    r = ws.client.get("/v1/contacts?group=vip", headers=ws.h("viewer"))   # sets the marker
    assert r.status_code == 200 and [c["id"] for c in r.json()["items"]] == ["C-0"], r.text
    out = ws.client.post("/v1/events?wait=true", headers=ws.h("ingest"), json=event(
        "e-1", tid="T-1", ticket={"contact": {"id": "C-1", "groups": ["\x00", "vip"]}}))
    assert out.status_code == 422, out.text
    assert out.json()["error"]["details"][0]["path"] == "ticket.contact.groups", out.text
    # the workspace goes on: later events apply, the listing answers
    later = ws.send(event("e-2", tid="T-2", ticket={"contact": {"id": "C-2", "groups": ["vip"]}}))
    assert later["status"] == "processed", later
    r = ws.client.get("/v1/contacts?group=vip", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    listed = [c["id"] for c in r.json()["items"]]
    assert listed == ["C-0", "C-2"], listed
    assert ws.client.get("/v1/groups", headers=ws.h("viewer")).status_code == 200
