"""Bad input always gets a clear 4xx in the error envelope, never a 500."""

from __future__ import annotations

import orjson
from server_helpers import event


def _err(r, status, code=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_malformed_json_is_400(ws):
    h = {**ws.h("ingest"), "Content-Type": "application/json"}
    e = _err(ws.client.post("/v1/events", content=b'{"id": "x",', headers=h), 400, "invalid_json")
    assert "not valid JSON" in e["message"]
    _err(ws.client.post("/v1/events", content=b"", headers=h), 400, "invalid_json")


def test_non_json_is_415(ws):
    r = ws.client.post("/v1/events", content=b"id=1", headers={
        **ws.h("ingest"), "Content-Type": "application/x-www-form-urlencoded"})
    _err(r, 415, "unsupported_media_type")
    r = ws.client.post("/v1/rules", content=b"{}", headers={**ws.h(), "Content-Type": "text/plain"})
    _err(r, 415)


def test_oversize_body_and_batch_are_413(ws):
    big = {"events": [event("x", ticket={"description": "a" * (1024 * 1024)})]}
    _err(ws.client.post("/v1/events", json=big, headers=ws.h("ingest")), 413, "payload_too_large")
    many = {"events": [event(f"e{i}") for i in range(501)]}
    e = _err(ws.client.post("/v1/events", json=many, headers=ws.h("ingest")), 413)
    assert "500" in e["message"]
    exactly = {"events": [event(f"e{i}", tid=f"T-{i % 7}") for i in range(500)]}
    r = ws.client.post("/v1/events", json=exactly, headers=ws.h("ingest"))
    assert r.status_code == 202 and len(r.json()["results"]) == 500


def test_oversize_without_content_length_is_413(ws):
    def chunks():
        for _ in range(20):
            yield b" " * (64 * 1024)
        yield orjson.dumps(event("x"))

    r = ws.client.post("/v1/events", content=chunks(),
                       headers={**ws.h("ingest"), "Content-Type": "application/json"})
    _err(r, 413)


def test_wrong_types_are_422_with_paths(ws):
    cases = [
        ([], ""),
        ({"type": "ticket.created", "ticket": {"id": "T"}}, "id"),
        ({**event("a"), "type": "ticket.deleted"}, "type"),
        ({**event("a"), "occurred_at": "yesterday"}, "occurred_at"),
        ({**event("a"), "ticket": "T-1"}, "ticket"),
        ({**event("a"), "ticket": {"id": 5}}, "ticket.id"),
        (event("a", ticket={"tags": "vip"}), "ticket.tags"),
        (event("a", ticket={"status": "done"}), "ticket.status"),
        (event("a", ticket={"priority": 3}), "ticket.priority"),
        (event("a", ticket={"subject": ["x"]}), "ticket.subject"),
        (event("a", ticket={"custom": []}), "ticket.custom"),
        (event("a", ticket={"contact": {"groups": "vip"}}), "ticket.contact.groups"),
        ({**event("a", "message.received"), "message": None}, "message"),
        (event("a", "message.received", message={"body": 7}), "message.body"),
    ]
    for body, path in cases:
        e = _err(ws.client.post("/v1/events", json=body, headers=ws.h("ingest")), 422,
                 "validation_failed")
        assert path in [d["path"] for d in e["details"]], (body, e)
    e = _err(ws.client.post("/v1/events", json={"events": [event("a"), {"id": "b"}]},
                            headers=ws.h("ingest")), 422)
    assert {d["path"] for d in e["details"]} >= {"events[1].type", "events[1].ticket"}
    _err(ws.client.post("/v1/events", json={"events": []}, headers=ws.h("ingest")), 422)
    # nothing of a rejected batch was queued
    assert ws.client.get("/v1/tickets", headers=ws.h()).json()["items"] == []


def test_rule_and_other_bodies_are_422(ws):
    e = _err(ws.client.post("/v1/rules", json={"name": "x", "triggers": [], "actions": []},
                            headers=ws.h()), 422)
    assert {"triggers", "actions"} <= {d["path"] for d in e["details"]}
    e = _err(ws.client.post("/v1/rules", json={
        "name": "x", "triggers": ["ticket.created"], "actions": [{"type": "close"}],
        "conditions": {"all": [{"field": "subject", "op": "gt", "value": 1}]}}, headers=ws.h()), 422)
    assert e["details"][0]["path"].startswith("conditions.all[0]")
    _err(ws.client.post("/v1/rules", json=["x"], headers=ws.h()), 422)
    _err(ws.client.post("/v1/keys", json={"role": "owner"}, headers=ws.h()), 422)
    _err(ws.client.post("/v1/groups", json={"name": "bad name!"}, headers=ws.h()), 422)
    _err(ws.client.post("/v1/groups", json={"name": "ok", "color": "red"}, headers=ws.h()), 422)
    _err(ws.client.put("/v1/contacts/C/groups", json={"groups": "vip"}, headers=ws.h()), 422)
    _err(ws.client.put("/v1/rules/order", json={"ids": ["nope"]}, headers=ws.h()), 422)
    _err(ws.client.post("/v1/workspaces", json={"name": ""},
                        headers={"Authorization": "Bearer test-root-token"}), 422)


def test_unknown_route_and_method(ws):
    _err(ws.client.get("/v1/nothing", headers=ws.h()), 404, "not_found")
    _err(ws.client.get("/nothing"), 404)
    _err(ws.client.delete("/v1/events", headers=ws.h()), 405, "method_not_allowed")


def test_role_message_reads_right(ws):
    e = _err(ws.client.get("/v1/keys", headers=ws.h("manager")), 403, "forbidden")
    assert e["message"] == "This needs an admin key or higher; this key's role is manager."
    e = _err(ws.client.post("/v1/rules", json={}, headers=ws.h("viewer")), 403)
    assert e["message"] == "This needs a manager key or higher; this key's role is viewer."
