"""Events end to end: queue, wait, duplicates, batches, ticket mirror, runs, updates feed."""

from __future__ import annotations

from server_helpers import event

VIP_RULE = {
    "name": "VIP refunds", "triggers": ["ticket.created", "message.received"],
    "conditions": {"all": [{"field": "contact.groups", "op": "includes", "value": "vip"},
                           {"field": "subject", "op": "contains", "value": "refund"}]},
    "actions": [{"type": "set", "field": "priority", "value": "urgent"},
                {"type": "add_tags", "tags": ["vip"]},
                {"type": "send_message", "template": "Hi {{contact.name}}"}],
}


def test_event_with_wait_returns_the_run_summary(ws):
    ws.rule(**VIP_RULE)
    out = ws.send(event("e1", ticket={"subject": "Refund please", "tags": ["billing"],
                                      "contact": {"id": "C-1", "name": "Ann", "groups": ["vip"]}}))
    assert out["event_id"] == "e1" and out["status"] == "processed"
    assert out["changes"] == {"priority": ["normal", "urgent"],
                              "tags": {"added": ["vip"], "removed": []}}
    assert out["effects"] == [{"type": "send_message", "template": "Hi {{contact.name}}",
                               "body": "Hi Ann"}]
    assert out["ticket"]["priority"] == "urgent" and out["ticket"]["version"] == 1
    assert out["run_id"]


def test_event_queued_then_processed(ws):
    out = ws.send(event("e1", ticket={"subject": "x"}), wait=False)
    assert out == {"event_id": "e1", "status": "queued"}
    again = ws.send(event("e1", ticket={"subject": "x"}), wait=True)
    assert again["status"] == "duplicate" and again["run_id"]
    ticket = ws.client.get("/v1/tickets/T-1", headers=ws.h("viewer")).json()
    assert ticket["subject"] == "x" and ticket["version"] == 1


def test_duplicate_is_a_no_op(ws):
    ws.rule(name="tag", triggers=["ticket.created", "ticket.updated"],
            actions=[{"type": "add_tags", "tags": ["seen"]}])
    first = ws.send(event("e1"))
    dup = ws.client.post("/v1/events", json=event("e1"), headers=ws.h("ingest"))
    assert dup.status_code == 202 and dup.json() == {"event_id": "e1", "status": "duplicate"}
    dup_wait = ws.send(event("e1"))
    assert dup_wait["status"] == "duplicate" and dup_wait["run_id"] == first["run_id"]
    ticket = ws.client.get("/v1/tickets/T-1", headers=ws.h()).json()
    assert ticket["version"] == 1
    runs = ws.client.get("/v1/tickets/T-1/runs", headers=ws.h()).json()
    assert len(runs["items"]) == 1


def test_batch_in_order_with_duplicates(ws):
    batch = {"events": [event("b1"), event("b2", "ticket.updated", ticket={"status": "open"}),
                        event("b1"), event("b3", tid="T-2")]}
    r = ws.client.post("/v1/events", json=batch, headers=ws.h("ingest"))
    assert r.status_code == 202
    assert r.json() == {"results": [{"event_id": "b1", "status": "queued"},
                                    {"event_id": "b2", "status": "queued"},
                                    {"event_id": "b1", "status": "duplicate"},
                                    {"event_id": "b3", "status": "queued"}]}
    r = ws.client.post("/v1/events?wait=true", json={"events": [event("b4", tid="T-2")]},
                       headers=ws.h("ingest"))
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "processed"
    ws.send(event("b2"))  # waits for b2 (a duplicate) to be processed
    t1 = ws.client.get("/v1/tickets/T-1", headers=ws.h()).json()
    assert t1["status"] == "open" and t1["version"] == 2


def test_ticket_merge_and_timestamps(ws):
    ws.send(event("e1", occurred_at="2026-11-23T08:00:00Z",
                  ticket={"subject": "s", "custom": {"plan": "pro", "seats": 3},
                          "contact": {"id": "C-1", "email": "a@x.io", "custom": {"tier": 1}}}))
    ws.send(event("e2", "message.received", occurred_at="2026-11-23T09:00:00Z",
                  ticket={"custom": {"seats": None, "region": "eu"}, "contact": {"id": "C-1",
                                                                                "name": "Ann"}},
                  message={"author": "customer", "body": "help"}))
    ws.send(event("e3", "message.sent", occurred_at="2026-11-23T09:30:00+01:00",
                  message={"author": "agent", "body": "on it"}))
    t = ws.client.get("/v1/tickets/T-1", headers=ws.h()).json()
    assert t["custom"] == {"plan": "pro", "region": "eu"}
    assert t["contact"]["email"] == "a@x.io" and t["contact"]["name"] == "Ann"
    assert t["contact"]["custom"] == {"tier": 1}
    assert t["created_at"] == "2026-11-23T08:00:00Z"
    assert t["last_customer_message_at"] == "2026-11-23T09:00:00Z"
    assert t["last_agent_message_at"] == "2026-11-23T08:30:00Z"
    assert t["updated_at"] == "2026-11-23T09:00:00Z"  # never moves back
    assert t["version"] == 3 and t["sla"] is None and t["snoozed_until"] is None


def test_changed_rules_see_the_previous_ticket(ws):
    ws.rule(name="reopened", triggers=["ticket.updated"],
            conditions={"all": [{"field": "status", "op": "changed_from", "value": "solved"}]},
            actions=[{"type": "add_tags", "tags": ["reopened"]}])
    ws.send(event("e1", ticket={"status": "solved"}))
    out = ws.send(event("e2", "ticket.updated", ticket={"status": "open"}))
    assert out["changes"] == {"tags": {"added": ["reopened"], "removed": []}}
    out = ws.send(event("e3", "ticket.updated", ticket={"status": "pending"}))
    assert out["changes"] == {}


def test_runs_and_run_record_explain(ws):
    rule = ws.rule(**VIP_RULE)
    out = ws.send(event("e1", ticket={"subject": "hello", "contact": {"id": "C-1", "groups": ["vip"]}}))
    run = ws.client.get(f"/v1/runs/{out['run_id']}", headers=ws.h("viewer")).json()
    assert run["id"] == out["run_id"] and run["event_id"] == "e1" and run["ticket_id"] == "T-1"
    assert run["rules"][0]["id"] == rule["id"] and run["rules"][0]["matched"] is False
    failed = run["rules"][0]["failed"]
    assert failed["field"] == "subject" and failed["op"] == "contains" and failed["seen"] == "hello"
    assert run["scripts"] == [] and run["error"] is None and "total_ms" in run["timings"]
    runs = ws.client.get("/v1/tickets/T-1/runs", headers=ws.h("viewer")).json()
    assert [r["id"] for r in runs["items"]] == [out["run_id"]] and runs["next"] is None
    assert ws.client.get("/v1/runs/nope", headers=ws.h()).status_code == 404
    assert ws.client.get("/v1/tickets/nope/runs", headers=ws.h()).status_code == 404


def test_updates_feed_pages_and_skips_no_change(ws):
    ws.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["t"]}])
    for i in range(5):
        ws.send(event(f"e{i}", tid=f"T-{i}"))
    ws.send(event("quiet", "ticket.updated", tid="T-0"))  # no rule: no feed entry
    feed = ws.client.get("/v1/updates?limit=3", headers=ws.h("viewer")).json()
    assert [u["event_id"] for u in feed["updates"]] == ["e0", "e1", "e2"]
    u = feed["updates"][0]
    assert set(u) == {"cursor", "ticket_id", "event_id", "run_id", "changes", "effects", "at"}
    rest = ws.client.get(f"/v1/updates?after={feed['next']}", headers=ws.h()).json()
    assert [u["event_id"] for u in rest["updates"]] == ["e3", "e4"]
    empty = ws.client.get(f"/v1/updates?after={rest['next']}", headers=ws.h()).json()
    assert empty == {"updates": [], "next": rest["next"]}
    assert ws.client.get("/v1/updates?after=zzz", headers=ws.h()).status_code == 400


def test_ticket_list_filters_and_paging(ws):
    for i in range(7):
        ws.send(event(f"e{i}", tid=f"T-{i}", ticket={
            "status": "open" if i % 2 else "new", "tags": ["Billing"] if i < 3 else [],
            "contact": {"id": f"C-{i % 3}"}}))
    page = ws.client.get("/v1/tickets?limit=4", headers=ws.h("viewer")).json()
    assert [t["id"] for t in page["items"]] == ["T-0", "T-1", "T-2", "T-3"] and page["next"]
    page2 = ws.client.get(f"/v1/tickets?limit=4&cursor={page['next']}", headers=ws.h()).json()
    assert [t["id"] for t in page2["items"]] == ["T-4", "T-5", "T-6"] and page2["next"] is None
    opened = ws.client.get("/v1/tickets?status=open", headers=ws.h()).json()["items"]
    assert [t["id"] for t in opened] == ["T-1", "T-3", "T-5"]
    tagged = ws.client.get("/v1/tickets?tag=billing&status=new", headers=ws.h()).json()["items"]
    assert [t["id"] for t in tagged] == ["T-0", "T-2"]
    # group membership is per contact, set over the API, visible on every ticket of the contact
    r = ws.client.put("/v1/contacts/C-1/groups", json={"groups": ["vip"]}, headers=ws.h("manager"))
    assert r.status_code == 200 and r.json() == {"id": "C-1", "groups": ["vip"]}
    vip = ws.client.get("/v1/tickets?group=vip", headers=ws.h()).json()["items"]
    assert [t["id"] for t in vip] == ["T-1", "T-4"]
    assert vip[0]["contact"]["groups"] == ["vip"]
    assert ws.client.get("/v1/tickets?limit=0", headers=ws.h()).status_code == 400
    assert ws.client.get("/v1/tickets?cursor=!!", headers=ws.h()).status_code == 400


def test_group_membership_reaches_rules_and_events_update_it(ws):
    ws.client.post("/v1/groups", json={"name": "seen"}, headers=ws.h())  # a rule may add only a defined group
    ws.rule(name="vip", triggers=["ticket.updated"],
            conditions={"all": [{"field": "contact.groups", "op": "includes", "value": "vip"}]},
            actions=[{"type": "set", "field": "priority", "value": "high"},
                     {"type": "add_to_group", "group": "seen"}])
    ws.send(event("e1", ticket={"contact": {"id": "C-9", "groups": ["trial"]}}))
    ws.client.put("/v1/contacts/C-9/groups", json={"groups": ["vip", "VIP"]}, headers=ws.h())
    out = ws.send(event("e2", "ticket.updated"))
    assert out["changes"]["priority"] == ["normal", "high"]
    assert out["changes"]["contact.groups"] == {"added": ["seen"], "removed": []}
    contact = ws.client.get("/v1/contacts/C-9", headers=ws.h("viewer")).json()
    assert contact["groups"] == ["vip", "seen"]


def test_healthz_readyz_metrics_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    text = client.get("/metrics").text
    assert "deskflow_events_processed_total" in text and "deskflow_store_up 1" in text
    assert "/v1/events" in client.get("/docs").text
    assert client.get("/admin").status_code == 200


def test_the_wait_summary_does_not_read_the_rules_revisions(ws, monkeypatch):
    """`?wait=true` answers changes, effects and the ticket: it leaves the run's packed rules as
    stored (expanding them reads every rule's revision, up to 1,000 plans at 1,000 rules, for an
    answer that shows none of them), while a read of the run still expands them."""
    from server.store import runs

    ws.rule(**VIP_RULE)
    expanded: list[int] = []
    real = runs.expand_runs

    async def counting(store, workspace, items):
        expanded.append(len(items))
        return await real(store, workspace, items)

    monkeypatch.setattr(runs, "expand_runs", counting)
    out = ws.send(event("e1", ticket={"subject": "Refund please",
                                      "contact": {"id": "C-1", "name": "Ann", "groups": ["vip"]}}))
    assert out["status"] == "processed" and out["changes"]["priority"] == ["normal", "urgent"]
    assert expanded == []
    run = ws.client.get(f"/v1/runs/{out['run_id']}", headers=ws.h("viewer"))
    assert run.status_code == 200, run.text
    assert [e["name"] for e in run.json()["rules"]] == ["VIP refunds"] and expanded == [1]
