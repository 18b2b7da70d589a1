"""Rules as code (issue 8 part 2): export as JSON or YAML, import with a plan, all or nothing,
idempotent, with revisions and audit entries like any other change."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from server_helpers import ROOT_TOKEN, Workspace, event
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings

RULE = {"name": "Refunds", "enabled": True, "triggers": ["ticket.created"],
        "conditions": {"all": [{"field": "subject", "op": "contains", "value": "refund"}]},
        "actions": [{"type": "add_tags", "tags": ["refund"]}]}
POLICY = {"name": "vip", "targets": {"first_response": "15m"},
          "business_hours": {"timezone": "Europe/Oslo", "week": {"mon": ["09:00", "17:00"]},
                             "holidays": ["2026-12-25"]}}
SOURCE = "def run(event, ticket, ctx):\n    return None\n"


def seed(ws: Any) -> list[dict[str, Any]]:
    c, h = ws.client, ws.h()
    rules = [ws.rule(**RULE), ws.rule(**{**RULE, "name": "Second", "enabled": False, "stop": True})]
    c.post("/v1/groups", json={"name": "vip", "color": "#ff8800"}, headers=h)
    c.post("/v1/sla-policies", json=POLICY, headers=h)
    c.post("/v1/scripts", json={"name": "crm", "source": SOURCE, "description": "CRM lookup"}, headers=h)
    c.put("/v1/allowlist", json={"hosts": ["crm.example.com"]}, headers=h)
    c.put("/v1/secrets/CRM_TOKEN", json={"value": "s3cret-value"}, headers=h)
    return rules


def export(ws: Any, role: str = "admin", **params: Any) -> Any:
    r = ws.client.get("/v1/export", params=params, headers=ws.h(role))
    assert r.status_code == 200, r.text
    return r


def apply(ws: Any, doc: Any, *, role: str = "admin", yaml_body: bool = False, **params: Any) -> Any:
    if yaml_body:
        body = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        return ws.client.post("/v1/import", params=params, content=body.encode(),
                              headers={**ws.h(role), "Content-Type": "application/yaml"})
    return ws.client.post("/v1/import", params=params, json=doc, headers=ws.h(role))


def revision_counts(ws: Any) -> dict[str, int]:
    rules = ws.client.get("/v1/rules", headers=ws.h()).json()["items"]
    return {r["id"]: len(ws.client.get(f"/v1/rules/{r['id']}/revisions?limit=500", headers=ws.h())
                         .json()["items"]) for r in rules}


def test_export_has_everything_but_secret_values(ws: Any) -> None:
    rules = seed(ws)
    doc = export(ws).json()
    assert doc["deskflow"] == 1
    assert [r["id"] for r in doc["rules"]] == [r["id"] for r in rules]
    assert doc["rules"][0] == {"id": rules[0]["id"], **RULE}
    assert list(doc["rules"][1]) == ["id", "name", "enabled", "triggers", "conditions", "actions", "stop"]
    assert doc["groups"] == [{"name": "vip", "color": "#ff8800"}]
    assert doc["sla_policies"] == [POLICY]
    assert doc["scripts"] == [{"name": "crm", "version": 1, "timeout": None, "description": "CRM lookup"}]
    assert doc["allowlist"] == ["crm.example.com"] and doc["secrets"] == ["CRM_TOKEN"]
    assert "s3cret" not in export(ws).text and "s3cret" not in export(ws, format="yaml").text
    viewer = export(ws, "viewer").json()
    assert "allowlist" not in viewer and "secrets" not in viewer and viewer["rules"] == doc["rules"]
    assert "secrets" not in export(ws, "developer").json()
    # YAML by ?format= or by Accept; the same document; stable from one export to the next
    by_query = export(ws, format="yaml")
    assert by_query.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(by_query.text) == doc
    by_accept = ws.client.get("/v1/export", headers={**ws.h(), "Accept": "application/yaml"})
    assert by_accept.text == by_query.text == export(ws, format="yaml").text
    assert ws.client.get("/v1/export?format=xml", headers=ws.h()).status_code == 422  # a value outside its set


def test_round_trip_into_another_workspace_then_idempotent(ws: Any) -> None:
    seed(ws)
    text = export(ws, format="yaml").text
    other = Workspace(ws.client, "other")
    plan = apply(other, text, yaml_body=True, dry_run="true")
    assert plan.status_code == 200, plan.text
    body = plan.json()
    assert body["dry_run"] is True and body["applied"] is False
    assert body["summary"] == {"create": 4, "update": 1, "disable": 0, "delete": 0, "unchanged": 0}
    assert {(i["kind"], i["action"]) for i in body["items"]} == {
        ("rule", "create"), ("group", "create"), ("sla_policy", "create"), ("allowlist", "update")}
    assert any("crm" in n and "not in this workspace" in n for n in body["notes"])
    assert any("CRM_TOKEN" in n for n in body["notes"])
    assert other.client.get("/v1/rules", headers=other.h()).json()["items"] == []  # a plan only
    done = apply(other, text, yaml_body=True)
    assert done.status_code == 200 and done.json()["applied"] is True
    mine, theirs = export(ws).json(), export(other).json()
    for key in ("rules", "groups", "sla_policies", "allowlist"):
        assert theirs[key] == mine[key], key
    revs = revision_counts(other)
    assert set(revs.values()) == {1}
    audit_before = other.client.get("/v1/audit?limit=500", headers=other.h()).json()["items"]
    assert audit_before[0]["action"] == "import.apply"
    # the same file again: the plan says unchanged everywhere, and nothing is written
    again = apply(other, text, yaml_body=True, dry_run="true").json()
    assert {i["action"] for i in again["items"]} == {"unchanged"}
    second = apply(other, text, yaml_body=True).json()
    assert second["applied"] is False and set(second["summary"].values()) == {0, len(again["items"])}
    assert revision_counts(other) == revs
    assert other.client.get("/v1/audit?limit=500", headers=other.h()).json()["items"] == audit_before
    # the imported rule works
    out = other.send(event("e1", ticket={"subject": "refund please"}))
    assert out["changes"] == {"tags": {"added": ["refund"], "removed": []}}


def test_one_invalid_item_changes_nothing_and_every_problem_is_reported(ws: Any) -> None:
    rules = seed(ws)
    before = export(ws).json()
    revs = revision_counts(ws)
    audit_before = ws.client.get("/v1/audit?limit=500", headers=ws.h()).json()["items"]
    doc = {**before, "rules": [*before["rules"], {**RULE, "name": "new, fine"},
                               {**RULE, "name": "broken", "conditions": {"field": "subject", "op": "gt", "value": 1}}],
           "groups": [{"name": "vip", "color": "orange"}],
           "sla_policies": [{**POLICY, "targets": {"first_reply": "1h"}}]}
    doc["rules"][0] = {**doc["rules"][0], "actions": [{"type": "set", "field": "priority", "value": "urgent"}]}
    r = apply(ws, doc)
    assert r.status_code == 422, r.text
    paths = {d["path"] for d in r.json()["error"]["details"]}
    assert paths == {"rules[3].conditions.op", "groups[0].color", "sla_policies[0].targets.first_reply"}
    assert export(ws).json() == before
    assert revision_counts(ws) == revs
    assert ws.client.get("/v1/audit?limit=500", headers=ws.h()).json()["items"] == audit_before
    assert ws.client.get(f"/v1/rules/{rules[0]['id']}", headers=ws.h()).json()["actions"] == RULE["actions"]


def test_update_diff_and_revisions(ws: Any) -> None:
    rules = seed(ws)
    doc = export(ws).json()
    doc["rules"][0]["actions"] = [{"type": "set", "field": "priority", "value": "high"}]
    doc["groups"][0]["color"] = "#000000"
    plan = apply(ws, doc, dry_run="true").json()
    changed = [i for i in plan["items"] if i["action"] != "unchanged"]
    assert changed == [
        {"kind": "rule", "id": rules[0]["id"], "name": "Refunds", "action": "update",
         "diff": {"actions": [RULE["actions"], doc["rules"][0]["actions"]]}},
        {"kind": "group", "name": "vip", "action": "update", "diff": {"color": ["#ff8800", "#000000"]}}]
    assert apply(ws, doc, role="manager").status_code == 200
    latest = ws.client.get(f"/v1/rules/{rules[0]['id']}/revisions", headers=ws.h()).json()["items"][0]
    assert latest["action"] == "update" and latest["via"] == "import" and latest["n"] == 2
    assert latest["by"]["key_name"] == "manager key"
    assert ws.send(event("e1", ticket={"subject": "refund"}))["ticket"]["priority"] == "high"


def test_what_the_file_leaves_out(ws: Any) -> None:
    rules = seed(ws)
    only_second = {"rules": [{"id": rules[1]["id"], **{k: v for k, v in export(ws).json()["rules"][1].items()
                                                       if k != "id"}}]}
    keep = apply(ws, only_second, dry_run="true").json()
    assert [(i["id"], i["action"], i["diff"]) for i in keep["items"]] == [
        (rules[1]["id"], "update", {"position": [2, 1]}), (rules[0]["id"], "update", {"position": [1, 2]})]
    disable = apply(ws, only_second, dry_run="true", missing="disable").json()
    assert disable["items"][1]["action"] == "disable"
    assert disable["items"][1]["diff"] == {"enabled": [True, False], "position": [1, 2]}
    pruned = apply(ws, only_second, prune="true")
    assert pruned.status_code == 200, pruned.text
    assert [i["action"] for i in pruned.json()["items"]] == ["delete", "update"]
    assert [r["id"] for r in ws.client.get("/v1/rules", headers=ws.h()).json()["items"]] == [rules[1]["id"]]
    assert ws.client.get(f"/v1/rules/{rules[0]['id']}/revisions", headers=ws.h()).json()["items"][0]["action"] == "delete"
    # sections the file leaves out are left alone, even with missing=delete
    assert [g["name"] for g in ws.client.get("/v1/groups", headers=ws.h()).json()["items"]] == ["vip"]
    assert apply(ws, only_second, missing="everything").status_code == 422


def test_rules_without_ids_match_by_name_and_yaml_dates(ws: Any) -> None:
    text = """
deskflow: 1
rules:
  - name: Refunds
    enabled: true
    triggers: [ticket.created]
    actions: [{type: add_tags, tags: [refund]}]
sla_policies:
  - name: vip
    targets: {first_response: 15m}
    business_hours:
      timezone: Europe/Oslo
      week: {mon: ["09:00", "17:00"]}
      holidays: [2026-12-25]
"""
    first = apply(ws, text, yaml_body=True, role="manager")
    assert first.status_code == 200, first.text
    assert [i["action"] for i in first.json()["items"]] == ["create", "create"]
    policy = ws.client.get("/v1/sla-policies/vip", headers=ws.h()).json()
    assert policy["business_hours"]["holidays"] == ["2026-12-25"]
    again = apply(ws, text, yaml_body=True, role="manager").json()
    assert [i["action"] for i in again["items"]] == ["unchanged", "unchanged"]
    assert len(ws.client.get("/v1/rules", headers=ws.h()).json()["items"]) == 1


def test_allowlist_change_needs_admin_and_bad_bodies(ws: Any) -> None:
    seed(ws)
    doc = export(ws).json()
    doc["allowlist"] = ["billing.example.com"]
    plan = apply(ws, doc, role="manager", dry_run="true")
    assert plan.status_code == 200 and plan.json()["items"][-1]["action"] == "update"
    denied = apply(ws, doc, role="manager")
    assert denied.status_code == 403
    assert ws.client.get("/v1/allowlist", headers=ws.h()).json()["hosts"] == ["crm.example.com"]
    assert apply(ws, doc).status_code == 200
    assert ws.client.get("/v1/allowlist", headers=ws.h()).json()["hosts"] == ["billing.example.com"]
    assert apply(ws, doc, role="viewer").status_code == 403
    r = ws.client.post("/v1/import", content=b"rules: [", headers={**ws.h(), "Content-Type": "application/yaml"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_document"
    r = ws.client.post("/v1/import", content=b"x", headers={**ws.h(), "Content-Type": "text/plain"})
    assert r.status_code == 415
    assert apply(ws, ["not", "a", "mapping"]).status_code == 422
    r = apply(ws, {"deskflow": 2, "rules": "all", "extra": 1})
    assert {d["path"] for d in r.json()["error"]["details"]} == {"deskflow", "rules", "extra"}
    dup = apply(ws, {"rules": [{**RULE, "id": "r1"}, {**RULE, "id": "r1"}]})
    assert dup.status_code == 422 and dup.json()["error"]["details"][0]["path"] == "rules[1].id"


def test_rules_as_the_api_lists_them_import_as_unchanged(ws: Any) -> None:
    """A file built from GET /v1/rules (with positions, revisions, usage) says what the rules say."""
    seed(ws)
    ws.send(event("e1", ticket={"subject": "refund"}))
    listed = ws.client.get("/v1/rules", headers=ws.h()).json()["items"]
    assert listed[0]["usage"]["fired"]["1h"] == 1
    plan = apply(ws, {"rules": listed}, dry_run="true").json()
    assert [i["action"] for i in plan["items"]] == ["unchanged", "unchanged"]
    listed[1]["revision"] = 99
    listed[1]["name"] = "Second, renamed"
    plan = apply(ws, {"rules": listed}).json()
    assert [i["diff"] for i in plan["items"]] == [{}, {"name": ["Second", "Second, renamed"]}]
    stored = ws.client.get(f"/v1/rules/{listed[1]['id']}", headers=ws.h()).json()
    assert stored["revision"] == 2 and "usage" in stored
    raw_revision = ws.client.get(f"/v1/rules/{listed[1]['id']}/revisions/2", headers=ws.h()).json()
    assert "usage" not in raw_revision["rule"] and "last_fired_at" not in raw_revision["rule"]


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[str]:
    """A private redis-server in cluster mode owning every slot: it refuses any MULTI/EXEC whose
    keys span two slots (as tests/server/test_cluster_slots.py sets it up)."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server binary to start a private Redis")
    rnd = random.Random()
    while True:
        port = rnd.randrange(20000, 30000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            break
        except OSError:
            continue
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", str(tmp_path / "nodes.conf"), "--save", "", "--appendonly",
         "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        r.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        while r.cluster("info")["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "cluster did not become ok"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        r.close()
        proc.terminate()
        proc.wait(10)


@pytest.mark.redis
def test_import_revisions_and_audit_stay_in_one_slot(cluster_node: str) -> None:
    settings = Settings(redis_url=cluster_node, data_file=None, root_token=ROOT_TOKEN, partitions=4,
                        block_ms=100)
    with TestClient(create_app(settings, worker=True)) as client:
        ws = Workspace(client)
        rules = seed(ws)
        doc = export(ws).json()
        doc["rules"][0]["name"] = "changed"
        doc["sla_policies"][0]["targets"] = {"resolution": "2h"}
        r = apply(ws, doc, missing="delete")
        assert r.status_code == 200 and r.json()["applied"] is True, r.text
        assert client.post(f"/v1/rules/{rules[0]['id']}/revisions/1/restore", headers=ws.h()).status_code == 200
        restored = client.post("/v1/sla-policies/vip/revisions/1/restore", headers=ws.h())
        assert restored.status_code == 200 and restored.json()["revision"] == 3
        assert client.delete(f"/v1/rules/{rules[1]['id']}", headers=ws.h()).status_code == 204
        actions = [e["action"] for e in client.get("/v1/audit?limit=500", headers=ws.h()).json()["items"]]
        assert actions[:4] == ["rule.delete", "sla_policy.restore", "rule.restore", "import.apply"]
