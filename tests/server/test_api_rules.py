"""Rules over the API: CRUD, enable/disable, order, PATCH, dry-run; the worker sees changes."""

from __future__ import annotations

from server_helpers import event

RULE = {"name": "Refunds", "triggers": ["ticket.created", "ticket.updated"],
        "conditions": {"all": [{"field": "subject", "op": "contains", "value": "refund"}]},
        "actions": [{"type": "add_tags", "tags": ["refund"]}]}


def test_crud_and_toggle(ws):
    c, h = ws.client, ws.h("manager")
    r = c.post("/v1/rules", json=RULE, headers=h)
    assert r.status_code == 201
    rule = r.json()
    assert rule["enabled"] is False and rule["id"] and rule["name"] == "Refunds"
    assert c.get(f"/v1/rules/{rule['id']}", headers=ws.h("viewer")).json() == rule
    assert c.post(f"/v1/rules/{rule['id']}/enable", headers=h).json()["enabled"] is True
    assert c.post(f"/v1/rules/{rule['id']}/disable", headers=h).json()["enabled"] is False
    patched = c.patch(f"/v1/rules/{rule['id']}", json={"name": "Renamed", "enabled": True},
                      headers=h).json()
    assert patched["name"] == "Renamed" and patched["enabled"] is True
    assert patched["conditions"] == RULE["conditions"]
    put = c.put(f"/v1/rules/{rule['id']}", json={**RULE, "name": "Put"}, headers=h).json()
    assert put["name"] == "Put" and put["enabled"] is True and put["id"] == rule["id"]
    bad = c.patch(f"/v1/rules/{rule['id']}", json={"actions": []}, headers=h)
    assert bad.status_code == 422
    assert c.get(f"/v1/rules/{rule['id']}", headers=h).json()["name"] == "Put"
    assert c.delete(f"/v1/rules/{rule['id']}", headers=h).status_code == 204
    assert c.get(f"/v1/rules/{rule['id']}", headers=h).status_code == 404


def test_list_order_and_paging(ws):
    c, h = ws.client, ws.h("manager")
    ids = [c.post("/v1/rules", json={**RULE, "name": f"r{i}"}, headers=h).json()["id"]
           for i in range(5)]
    page = c.get("/v1/rules?limit=2", headers=h).json()
    assert [r["id"] for r in page["items"]] == ids[:2] and page["next"]
    rest = c.get(f"/v1/rules?limit=10&cursor={page['next']}", headers=h).json()
    assert [r["id"] for r in rest["items"]] == ids[2:] and rest["next"] is None
    r = c.put("/v1/rules/order", json={"ids": [ids[4], ids[2]]}, headers=h)
    assert r.status_code == 200
    want = [ids[4], ids[2], ids[0], ids[1], ids[3]]
    assert [x["id"] for x in r.json()["items"]] == want
    assert [x["id"] for x in c.get("/v1/rules", headers=h).json()["items"]] == want
    assert c.put("/v1/rules/order", json={"ids": [ids[0], ids[0]]}, headers=h).status_code == 422


def test_worker_uses_new_rules_at_once(ws):
    c, h = ws.client, ws.h("manager")
    rule = c.post("/v1/rules", json=RULE, headers=h).json()
    out = ws.send(event("e1", ticket={"subject": "refund"}))
    assert out["changes"] == {}  # disabled
    c.post(f"/v1/rules/{rule['id']}/enable", headers=h)
    out = ws.send(event("e2", "ticket.updated"))
    assert out["changes"] == {"tags": {"added": ["refund"], "removed": []}}
    c.patch(f"/v1/rules/{rule['id']}", json={"actions": [{"type": "set", "field": "priority",
                                                         "value": "high"}]}, headers=h)
    out = ws.send(event("e3", "ticket.updated"))
    assert out["changes"] == {"priority": ["normal", "high"]}


def test_rule_runs_lists_where_it_fired(ws):
    rule = ws.rule(**RULE)
    ws.send(event("e1", ticket={"subject": "refund"}))
    ws.send(event("e2", tid="T-2", ticket={"subject": "other"}))
    out = ws.send(event("e3", tid="T-3", ticket={"subject": "Refund!"}))
    runs = ws.client.get(f"/v1/rules/{rule['id']}/runs?limit=1", headers=ws.h("viewer")).json()
    assert [r["event_id"] for r in runs["items"]] == ["e3"] and runs["items"][0]["id"] == out["run_id"]
    rest = ws.client.get(f"/v1/rules/{rule['id']}/runs?cursor={runs['next']}", headers=ws.h()).json()
    assert [r["event_id"] for r in rest["items"]] == ["e1"] and rest["next"] is None
    ws.client.delete(f"/v1/rules/{rule['id']}", headers=ws.h())
    assert ws.client.get(f"/v1/rules/{rule['id']}/runs", headers=ws.h()).status_code == 404


def test_rule_order_and_stop_apply(ws):
    first = ws.rule(name="first", triggers=["ticket.created"], stop=True,
                    actions=[{"type": "set", "field": "priority", "value": "low"}])
    second = ws.rule(name="second", triggers=["ticket.created"],
                     actions=[{"type": "set", "field": "priority", "value": "high"}])
    assert ws.send(event("e1", tid="A"))["ticket"]["priority"] == "low"
    ws.client.put("/v1/rules/order", json={"ids": [second["id"], first["id"]]}, headers=ws.h())
    assert ws.send(event("e2", tid="B"))["ticket"]["priority"] == "low"  # second, then first stops
    run = ws.client.get("/v1/tickets/B/runs", headers=ws.h()).json()["items"][0]
    assert [r["id"] for r in run["rules"]] == [second["id"], first["id"]]


def test_dry_run_explains_and_applies_nothing(ws):
    rule = ws.rule(**RULE)
    r = ws.client.post(f"/v1/rules/{rule['id']}/test", headers=ws.h("manager"),
                       json={"event": event("t", ticket={"subject": "Need a REFUND"})})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["matched"] is True and out["rule"]["id"] == rule["id"]
    leaf = out["rule"]["conditions"][0]
    assert leaf["held"] is True and leaf["seen"] == "Need a REFUND" and leaf["field"] == "subject"
    assert out["changes"] == {"tags": {"added": ["refund"], "removed": []}}
    r = ws.client.post(f"/v1/rules/{rule['id']}/test", headers=ws.h("manager"),
                       json={"event": {"type": "ticket.created", "ticket": {"id": "X"}},
                             "ticket": {"id": "X", "subject": "hello"}})
    out = r.json()
    assert out["matched"] is False and out["rule"]["failed"]["seen"] == "hello"
    assert ws.client.get("/v1/tickets", headers=ws.h()).json()["items"] == []
    bad = ws.client.post(f"/v1/rules/{rule['id']}/test", headers=ws.h(), json={"event": {}})
    assert bad.status_code == 422


def test_groups_crud(ws):
    c, h = ws.client, ws.h("manager")
    r = c.post("/v1/groups", json={"name": "vip", "color": "#ff8800"}, headers=h)
    assert r.status_code == 201 and r.json()["name"] == "vip" and r.json()["color"] == "#ff8800"
    assert c.post("/v1/groups", json={"name": "vip"}, headers=h).status_code == 409
    c.post("/v1/groups", json={"name": "trial"}, headers=h)
    assert [g["name"] for g in c.get("/v1/groups", headers=h).json()["items"]] == ["trial", "vip"]
    c.put("/v1/contacts/C-1/groups", json={"groups": ["vip"]}, headers=h)
    got = c.get("/v1/groups/vip", headers=ws.h("viewer")).json()
    assert got["color"] == "#ff8800" and got["contacts"] == 1
    assert c.patch("/v1/groups/vip", json={"color": "#000000"}, headers=h).json()["color"] == "#000000"
    assert c.patch("/v1/groups/vip", json={"name": "other"}, headers=h).status_code == 422
    assert c.delete("/v1/groups/vip", headers=h).status_code == 204
    assert c.get("/v1/groups/vip", headers=h).status_code == 404
