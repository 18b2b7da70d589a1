"""Misspellings are not swallowed (issue 12 item 5): keys that are not part of the event format
are listed in the answer's `ignored` (with `hints`), are not applied, and with ?strict=true or
the workspace's `strict_events` they are a 422; a value outside a field's set is a 422."""

from __future__ import annotations

from typing import Any

import pytest
from server_helpers import Workspace, event

from server.api.validate import validate_event


def _post(ws: Workspace, body: Any, query: str = "") -> Any:
    return ws.client.post(f"/v1/events{query}", json=body, headers=ws.h("ingest"))


def test_unknown_keys_are_listed_with_hints(ws: Workspace) -> None:
    body = {**event("e1", "message.received", ticket={"subjet": "Refund", "requester": "ann",
                                                       "contact": {"id": "C-1", "emial": "a@x.io"}},
                    message={"author": "customer", "body": "hi", "bdy": "x"}),
            "mesage": {"body": "hello"}}
    r = _post(ws, body)
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["status"] == "queued"
    assert sorted(out["ignored"]) == ["mesage", "message.bdy", "ticket.contact.emial",
                                      "ticket.requester", "ticket.subjet"]
    assert out["hints"] == {"mesage": "message", "message.bdy": "body",
                            "ticket.contact.emial": "email", "ticket.subjet": "subject"}
    # nothing of them was applied
    waited = _post(ws, event("e2", "ticket.updated", ticket={"subjet": "again"}), "?wait=true")
    assert waited.status_code == 200 and waited.json()["ignored"] == ["ticket.subjet"]
    ticket = ws.client.get("/v1/tickets/T-1", headers=ws.h()).json()
    assert ticket["subject"] is None and "requester" not in ticket and "subjet" not in ticket
    assert "emial" not in ticket["contact"]
    assert "emial" not in ws.client.get("/v1/contacts/C-1", headers=ws.h()).json()


def test_a_clean_event_has_no_ignored(ws: Workspace) -> None:
    r = _post(ws, event("e1", ticket={"subject": "s", "custom": {"anything": {"goes": 1}}}))
    assert r.json() == {"event_id": "e1", "status": "queued"}


def test_service_fields_are_ignored_too(ws: Workspace) -> None:
    out = _post(ws, event("e1", ticket={"version": 7, "sla": {}, "subject": "s"})).json()
    assert out["ignored"] == ["ticket.version", "ticket.sla"] and out["hints"] == {}
    e = _post(ws, event("e2", ticket={"version": 7}), "?strict=true").json()["error"]
    assert e["details"] == [{"path": "ticket.version",
                             "reason": "is set by the service; an event cannot set it (leave it out)"}]


def test_strict_makes_them_a_422(ws: Workspace) -> None:
    r = _post(ws, event("e1", ticket={"subjet": "Refund"}), "?strict=true")
    assert r.status_code == 422, r.text
    e = r.json()["error"]
    assert e["details"] == [{"path": "ticket.subjet",
                             "reason": "is not part of the event format; did you mean `subject`?"}]
    assert "ticket.subjet" in e["message"]
    assert ws.client.get("/v1/tickets", headers=ws.h()).json()["items"] == []  # not queued
    assert _post(ws, event("e1", ticket={"subject": "Refund"}), "?strict=1").status_code == 202


def test_strict_events_workspace_setting(ws: Workspace) -> None:
    got = ws.client.get("/v1/workspace/settings", headers=ws.h("viewer")).json()
    assert got == {"strict_events": False, "default": True}
    r = ws.client.put("/v1/workspace/settings", json={"strict_events": True}, headers=ws.h("admin"))
    assert r.status_code == 200 and r.json() == {"strict_events": True, "default": False}
    assert ws.client.put("/v1/workspace/settings", json={"strict_events": True},
                         headers=ws.h("manager")).status_code == 403
    assert _post(ws, event("e1", ticket={"subjet": "x"})).status_code == 422
    # a request may still ask for the lenient answer
    r = _post(ws, event("e1", ticket={"subjet": "x"}), "?strict=false")
    assert r.status_code == 202 and r.json()["ignored"] == ["ticket.subjet"]
    for bad, reason in [({"strict_event": True}, "did you mean `strict_events`?"),
                        ({"strict_events": "yes"}, "must be true or false")]:
        r = ws.client.put("/v1/workspace/settings", json=bad, headers=ws.h())
        assert r.status_code == 422 and reason in r.json()["error"]["message"], r.text


def test_batch_lists_ignored_per_event(ws: Workspace) -> None:
    batch = {"events": [event("b1"), event("b2", tid="T-2", ticket={"prority": "high"})]}
    r = _post(ws, batch)
    assert r.status_code == 202
    assert r.json()["results"] == [
        {"event_id": "b1", "status": "queued"},
        {"event_id": "b2", "status": "queued", "ignored": ["ticket.prority"],
         "hints": {"ticket.prority": "priority"}}]
    r = _post(ws, {"events": [event("b3"), event("b4", ticket={"prority": "high"})]}, "?strict=yes")
    assert r.status_code == 422
    assert [d["path"] for d in r.json()["error"]["details"]] == ["events[1].ticket.prority"]


@pytest.mark.parametrize("author", ["bot", "Customer", "", "robot"])
def test_message_author_outside_its_set_is_422(ws: Workspace, author: str) -> None:
    r = _post(ws, event("e1", "message.received", message={"author": author, "body": "hi"}))
    assert r.status_code == 422, r.text
    d = r.json()["error"]["details"]
    assert d[0]["path"] == "message.author" and "customer, agent, system" in d[0]["reason"]


def test_the_queued_event_carries_ignored_for_the_run_record() -> None:
    """What is enqueued: the known keys only, and `ignored` for the worker to copy into the run
    record (server/worker.py)."""
    ev, problems = validate_event(
        {**event("e1", ticket={"subjet": "x", "contact": {"id": "C", "phone": "1"}}), "extra": 1},
        "2026-11-23T08:00:00Z")
    assert problems == [] and ev is not None
    assert ev["ignored"] == ["extra", "ticket.subjet", "ticket.contact.phone"]
    assert ev["ticket"] == {"id": "T-1", "contact": {"id": "C"}} and "extra" not in ev
    clean, _ = validate_event(event("e2"), "2026-11-23T08:00:00Z")
    assert clean is not None and "ignored" not in clean


def test_ignored_is_bounded() -> None:
    ev, _ = validate_event(event("e1", ticket={f"k{i}": i for i in range(500)} | {"x" * 5000: 1}),
                           "2026-11-23T08:00:00Z")
    assert ev is not None and len(ev["ignored"]) == 50
    ev, _ = validate_event(event("e1", ticket={"x" * 5000: 1}), "2026-11-23T08:00:00Z")
    assert ev is not None and ev["ignored"] == ["ticket." + "x" * 100 + "…"]


def test_the_run_record_lists_the_ignored_keys_too(ws) -> None:  # type: ignore[no-untyped-def]
    out = ws.send({"id": "ig-1", "type": "ticket.created",
                   "ticket": {"id": "T-IG", "subjet": "typo", "subject": "kept"}})
    assert out["status"] == "processed" and out["ignored"] == ["ticket.subjet"]
    run = ws.client.get(f"/v1/runs/{out['run_id']}", headers=ws.h("viewer")).json()
    assert run["ignored"] == ["ticket.subjet"]
    clean = ws.send({"id": "ig-2", "type": "ticket.updated", "ticket": {"id": "T-IG"}})
    assert ws.client.get(f"/v1/runs/{clean['run_id']}", headers=ws.h("viewer")).json()["ignored"] == []
