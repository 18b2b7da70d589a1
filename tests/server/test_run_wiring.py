"""What the worker adds to a run record from the workspace: the revision of each rule that fired,
and the workspace's own guard limits (suppressed effects listed with the reason)."""

from __future__ import annotations

from server_helpers import Workspace, event

NOTIFY = {"name": "tell ops", "triggers": ["ticket.created", "ticket.updated"], "enabled": True,
          "actions": [{"type": "notify", "target": "ops", "message": "{{ticket.id}}"}]}


def _run(ws: Workspace, run_id: str) -> dict:
    r = ws.client.get(f"/v1/runs/{run_id}", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_run_records_name_the_revision_of_each_rule_that_fired(ws: Workspace) -> None:
    rule = ws.rule(**NOTIFY)
    first = _run(ws, ws.send(event("e1"))["run_id"])
    assert first["matched"] == [rule["id"]] and first["rule_revisions"] == {rule["id"]: 1}
    r = ws.client.patch(f"/v1/rules/{rule['id']}", json={"name": "tell ops, v2"}, headers=ws.h("manager"))
    assert r.status_code == 200
    second = _run(ws, ws.send(event("e2", "ticket.updated"))["run_id"])
    assert second["rule_revisions"] == {rule["id"]: r.json()["revision"]} and r.json()["revision"] > 1
    assert second["rules_rev"] > first["rules_rev"]
    rev = ws.client.get(f"/v1/rules/{rule['id']}/revisions/{second['rule_revisions'][rule['id']]}",
                        headers=ws.h("viewer"))
    assert rev.status_code == 200


def test_the_workspace_guard_limits_reach_the_worker(ws: Workspace) -> None:
    ws.rule(**NOTIFY)
    r = ws.client.put("/v1/workspace/guards", json={"send_caps": [{"count": 2, "per": "10m"}]},
                      headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    runs = [_run(ws, ws.send(event(f"e{i}", "ticket.updated" if i else "ticket.created"))["run_id"])
            for i in range(3)]
    assert [len(run["effects"]) for run in runs] == [1, 1, 0]
    [gone] = runs[2]["suppressed"]
    assert gone["effect"]["type"] == "notify" and "2" in gone["reason"]
    assert any("notify" in note or "suppress" in note for note in runs[2]["notes"])
