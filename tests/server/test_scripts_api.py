"""Scripts over HTTP: upload and versions, refusals, test-runs, allow-list, secrets, and scripts
running in the event pipeline against a real local CRM (tests/sandbox/crm_app.py)."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sandbox"))
from crm_app import CRM_TOKEN, CrmServer  # noqa: E402

CRM_VIP = (ROOT / "scripts" / "crm_vip.py").read_text()
TRIVIAL = "def run(event, ticket, ctx):\n    ctx.log('hello', ticket.get('id'))\n    return {'add_tags': ['seen']}\n"


@pytest.fixture(scope="module")
def crm() -> Iterator[CrmServer]:
    with CrmServer() as server:
        yield server


def upload(ws: Any, name: str, source: str, **extra: Any) -> Any:
    return ws.client.post("/v1/scripts", json={"name": name, "source": source, **extra}, headers=ws.h("developer"))


def test_upload_adds_versions_and_reads_back(ws: Any) -> None:
    r = upload(ws, "greet", TRIVIAL, timeout="10s")
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and "source" not in r.json()
    assert upload(ws, "greet", TRIVIAL.replace("hello", "hi")).json()["version"] == 2
    got = ws.client.get("/v1/scripts/greet", headers=ws.h("viewer")).json()
    assert got["version"] == 2 and "hi" in got["source"] and [v["version"] for v in got["versions"]] == [1, 2]
    v1 = ws.client.get("/v1/scripts/greet/versions/1", headers=ws.h("viewer")).json()
    assert "hello" in v1["source"] and v1["timeout"] == "10s"
    assert ws.client.get("/v1/scripts/greet/versions/3", headers=ws.h("viewer")).status_code == 404
    listed = ws.client.get("/v1/scripts", headers=ws.h("viewer")).json()
    assert [s["name"] for s in listed["items"]] == ["greet"] and listed["next"] is None


@pytest.mark.parametrize("body, path", [
    ({"name": "Bad Name", "source": TRIVIAL}, "name"),
    ({"name": "x", "source": ""}, "source"),
    ({"name": "x", "source": "x = 1\n" * 20000}, "source"),
    ({"name": "x", "source": TRIVIAL, "timeout": "31s"}, "timeout"),
    ({"name": "x", "source": TRIVIAL, "timeout": 5}, "timeout"),
    ({"name": "x", "source": TRIVIAL, "owner": "me"}, "owner"),
])
def test_bad_uploads_are_422_naming_the_field(ws: Any, body: dict[str, Any], path: str) -> None:
    r = ws.client.post("/v1/scripts", json=body, headers=ws.h("developer"))
    assert r.status_code == 422, r.text
    assert path in [d["path"] for d in r.json()["error"]["details"]]


def test_a_script_the_policy_refuses_gets_line_numbered_reasons(ws: Any) -> None:
    r = upload(ws, "evil", "def run(event, ticket, ctx):\n    return ctx.__class__\n")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "script_refused"
    assert any(d["reason"].startswith("Line 2") for d in r.json()["error"]["details"])
    assert ws.client.get("/v1/scripts/evil", headers=ws.h("viewer")).status_code == 404


def test_roles_for_scripts_allowlist_and_secrets(ws: Any) -> None:
    assert upload(ws, "greet", TRIVIAL).status_code == 201
    assert ws.client.post("/v1/scripts", json={"name": "m", "source": TRIVIAL}, headers=ws.h("manager")).status_code == 403
    assert ws.client.get("/v1/scripts", headers=ws.h("ingest")).status_code == 403
    assert ws.client.put("/v1/allowlist", json={"hosts": ["crm.example.com"]}, headers=ws.h("developer")).status_code == 403
    assert ws.client.put("/v1/secrets/T", json={"value": "v"}, headers=ws.h("developer")).status_code == 403
    assert ws.client.post("/v1/scripts/greet/test", json={"event": {}}, headers=ws.h("manager")).status_code == 403


def test_secrets_are_write_only(ws: Any) -> None:
    assert ws.client.put("/v1/secrets/CRM_TOKEN", json={"value": "s3cret"}, headers=ws.h("admin")).status_code == 201
    assert ws.client.put("/v1/secrets/CRM_TOKEN", json={"value": "s3cret2"}, headers=ws.h("admin")).status_code == 200
    listed = ws.client.get("/v1/secrets", headers=ws.h("admin"))
    assert listed.json()["items"] == [{"name": "CRM_TOKEN"}] and "s3cret" not in listed.text
    bad = ws.client.put("/v1/secrets/bad-name", json={"value": "a\r\nX-Evil: 1"}, headers=ws.h("admin"))
    assert bad.status_code == 422 and {d["path"] for d in bad.json()["error"]["details"]} == {"name", "value"}
    assert ws.client.delete("/v1/secrets/CRM_TOKEN", headers=ws.h("admin")).status_code == 204
    assert ws.client.delete("/v1/secrets/CRM_TOKEN", headers=ws.h("admin")).status_code == 404


@pytest.mark.parametrize("entry", ["127.1", "http://2130706433", "user@crm.example.com", "ftp://x.example",
                                   "crm.example.com/path", "*.example.com"])
def test_allowlist_refuses_tricky_entries(ws: Any, entry: str) -> None:
    r = ws.client.put("/v1/allowlist", json={"hosts": ["ok.example.com", entry]}, headers=ws.h("admin"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"] == "hosts[1]"


def test_test_run_reports_logs_and_errors_and_applies_nothing(ws: Any) -> None:
    upload(ws, "greet", TRIVIAL)
    r = ws.client.post("/v1/scripts/greet/test", json={"event": {"type": "ticket.created", "ticket": {"id": "T-9"}}},
                       headers=ws.h("developer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["error"] is None and body["updates"] == {"add_tags": ["seen"]} and body["logs"] == ["hello T-9"]
    assert ws.client.get("/v1/tickets/T-9", headers=ws.h("viewer")).status_code == 404
    upload(ws, "loops", "def run(event, ticket, ctx):\n    while True:\n        pass\n", timeout="1s")
    slow = ws.client.post("/v1/scripts/loops/test", json={"event": {}}, headers=ws.h("developer")).json()
    assert slow["error"]["code"] in ("timeout", "cpu_limit")
    upload(ws, "oops", "def run(event, ticket, ctx):\n    return {'colour': 'red'}\n")
    bad = ws.client.post("/v1/scripts/oops/test", json={"event": {}}, headers=ws.h("developer")).json()
    assert bad["error"]["code"] == "invalid_output" and bad["updates"] is None


def _vip_setup(ws: Any, crm: CrmServer) -> None:
    source = CRM_VIP.replace('ctx.vars.get("crm_url", "https://crm.example.com")', repr(crm.url))
    assert upload(ws, "crm-vip", source).status_code == 201
    assert ws.client.put("/v1/allowlist", json={"hosts": [crm.url]}, headers=ws.h("admin")).status_code == 200
    assert ws.client.put("/v1/secrets/CRM_TOKEN", json={"value": CRM_TOKEN}, headers=ws.h("admin")).status_code == 201
    ws.rule(name="ask the CRM", triggers=["ticket.created"],
            actions=[{"type": "run_script", "script": "crm-vip"}])
    ws.rule(name="VIPs get a hello", triggers=["ticket.created"],
            conditions={"field": "tags", "op": "includes", "value": "vip"},
            actions=[{"type": "send_message", "template": "Hi {{contact.name}}, a VIP agent is on it."}])


def test_the_crm_vip_example_runs_through_the_event_pipeline(ws: Any, crm: CrmServer) -> None:
    """The shipped scripts/crm_vip.py (its CRM base URL pointed at the local CRM), run by a rule."""
    _vip_setup(ws, crm)
    out = ws.send({"id": "e1", "type": "ticket.created", "ticket": {
        "id": "T-1", "subject": "Refund", "contact": {"id": "C-1", "email": "ann@example.com", "name": "Ann"}}})
    assert out["status"] == "processed"
    assert out["changes"]["priority"] == ["normal", "urgent"]
    assert out["changes"]["department"] == [None, "vip-desk"]
    assert out["effects"] == [{"type": "send_message", "template": "Hi {{contact.name}}, a VIP agent is on it.",
                               "body": "Hi Ann, a VIP agent is on it."}]
    run = ws.client.get(f"/v1/runs/{out['run_id']}", headers=ws.h("viewer")).json()
    [script] = run["scripts"]
    assert script["name"] == "crm-vip" and script["version"] == 1 and script["error"] is None
    assert script["logs"] == ["VIP contact ann@example.com"]
    assert script["http_calls"][0]["status"] == 200 and CRM_TOKEN not in str(run)
    plain = ws.send({"id": "e2", "type": "ticket.created", "ticket": {
        "id": "T-2", "contact": {"id": "C-2", "email": "bob@example.com"}}})
    assert "priority" not in plain["changes"] and plain["effects"] == []


def test_a_failing_script_is_recorded_and_the_event_still_applies(ws: Any) -> None:
    upload(ws, "boom", "def run(event, ticket, ctx):\n    return 1 / 0\n")
    ws.rule(name="boom", triggers=["ticket.created"],
            actions=[{"type": "run_script", "script": "boom"}, {"type": "add_tags", "tags": ["after"]}])
    missing = {"name": "missing", "enabled": True, "triggers": ["ticket.created"],
               "actions": [{"type": "run_script", "script": "nope"}]}
    assert ws.client.post("/v1/rules", json=missing, headers=ws.h("manager")).status_code == 422
    # A rule saved before references were checked (or a script gone under it) still runs and
    # records script_not_found: stored directly, as an older version of the service left it.
    from server.store import catalog
    ws.client.portal.call(catalog.put_rule, ws.client.app_state["store"], ws.id,
                          {**missing, "id": "rule_legacy", "position": 99})
    out = ws.send({"id": "e1", "type": "ticket.created", "ticket": {"id": "T-1"}})
    assert out["status"] == "processed" and out["changes"]["tags"] == {"added": ["after"], "removed": []}
    run = ws.client.get(f"/v1/runs/{out['run_id']}", headers=ws.h("viewer")).json()
    errors = {s["name"]: s["error"] for s in run["scripts"]}
    assert errors["boom"]["code"] == "script_error" and "line 2" in errors["boom"]["message"].lower()
    assert errors["nope"]["code"] == "script_not_found"


def test_scripts_and_secrets_do_not_cross_workspaces(ws: Any, crm: CrmServer) -> None:
    _vip_setup(ws, crm)
    r = ws.client.post("/v1/workspaces", json={"name": "other"}, headers={"Authorization": "Bearer test-root-token"})
    other = {"Authorization": f"Bearer {r.json()['admin_key']}"}
    assert ws.client.get("/v1/scripts/crm-vip", headers=other).status_code == 404
    assert ws.client.get("/v1/secrets", headers=other).json()["items"] == []
    assert ws.client.get("/v1/allowlist", headers=other).json()["hosts"] == []


def _example(name: str, crm: CrmServer) -> str:
    """A shipped example, its CRM/billing base URL pointed at the local app (events cannot set
    ctx.vars, which the examples read it from)."""
    source = (ROOT / "scripts" / f"{name}.py").read_text()
    for var, default in (("crm_url", "https://crm.example.com"), ("billing_url", "https://billing.example.com")):
        source = source.replace(f'ctx.vars.get("{var}", "{default}")', repr(crm.url))
    return source


def test_every_other_example_runs_through_the_event_pipeline(ws: Any, crm: CrmServer) -> None:
    from crm_app import BILLING_TOKEN

    for name, slug in (("billing_overdue", "billing-overdue"), ("pick_department", "pick-department"),
                       ("sentiment_tags", "sentiment-tags")):
        assert upload(ws, slug, _example(name, crm)).status_code == 201
    assert ws.client.put("/v1/allowlist", json={"hosts": [crm.url]}, headers=ws.h("admin")).status_code == 200
    ws.client.put("/v1/secrets/BILLING_TOKEN", json={"value": BILLING_TOKEN}, headers=ws.h("admin"))
    ws.rule(name="billing", triggers=["ticket.created"], actions=[{"type": "run_script", "script": "billing-overdue"}])
    ws.rule(name="route", triggers=["ticket.created"], actions=[{"type": "run_script", "script": "pick-department"}])
    ws.rule(name="mood", triggers=["message.received"], actions=[{"type": "run_script", "script": "sentiment-tags"}])

    out = ws.send({"id": "e1", "type": "ticket.created", "ticket": {
        "id": "T-1", "subject": "Refund for last invoice", "contact": {"id": "C-1", "email": "bob@example.com"}}})
    assert out["changes"]["priority"] == ["normal", "high"]
    assert out["changes"]["custom.overdue_total"] == [None, 420.0]
    assert out["changes"]["department"] == [None, "billing"]
    assert set(out["changes"]["tags"]["added"]) == {"billing-overdue", "routed"}
    assert [e["type"] for e in out["effects"]] == ["notify"] and "INV-7" in out["effects"][0]["message"]

    mood = ws.send({"id": "e2", "type": "message.received", "ticket": {"id": "T-1", "tags": ["feels-good"]},
                    "message": {"author": "customer", "body": "I feel bad today, this is terrible"}})
    assert mood["changes"]["tags"] == {"added": ["feels-bad"], "removed": ["feels-good"]}
    run = ws.client.get(f"/v1/runs/{mood['run_id']}", headers=ws.h("viewer")).json()
    assert [s["name"] for s in run["scripts"]] == ["sentiment-tags"] and run["scripts"][0]["error"] is None


def test_http_request_vars_reach_later_rules_and_scripts_ctx_vars(ws: Any, crm: CrmServer) -> None:
    """An http_request action maps the CRM's customerType into vars.*; a later rule conditions on it
    and a later script reads it from ctx.vars (the shipped crm-vip reads its base URL from there)."""
    assert ws.client.put("/v1/allowlist", json={"hosts": [crm.url]}, headers=ws.h("admin")).status_code == 200
    ws.client.put("/v1/secrets/CRM_TOKEN", json={"value": CRM_TOKEN}, headers=ws.h("admin"))
    upload(ws, "show-vars", "def run(event, ticket, ctx):\n    ctx.log('type', ctx.vars.get('customer_type'))\n"
                            "    return None\n")
    r = ws.client.post("/v1/rules", headers=ws.h("admin"), json={   # it sends a secret: admin only
        "name": "ask", "triggers": ["ticket.created"], "enabled": True, "actions": [
            {"type": "http_request", "url": crm.url + "/contacts?email=ann%40example.com", "secret": "CRM_TOKEN",
             "map": {"customer_type": "$.customerType"}},
            {"type": "run_script", "script": "show-vars"}]})
    assert r.status_code == 201, r.text
    ws.rule(name="vip", triggers=["ticket.created"],
            conditions={"field": "vars.customer_type", "op": "is", "value": "vip"},
            actions=[{"type": "add_tags", "tags": ["vip"]}])
    out = ws.send({"id": "e1", "type": "ticket.created", "ticket": {"id": "T-1"}})
    assert out["changes"]["tags"] == {"added": ["vip"], "removed": []}
    run = ws.client.get(f"/v1/runs/{out['run_id']}", headers=ws.h("viewer")).json()
    assert run["vars"] == {"customer_type": "VIP"}
    assert run["http_calls"][0]["status"] == 200 and CRM_TOKEN not in str(run)
    assert run["scripts"][0]["logs"] == ["type VIP"]
