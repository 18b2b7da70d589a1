"""The role table on every /v1 route, the root token, and isolation between workspaces."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from server_helpers import ROOT_TOKEN, Workspace, event
from starlette.routing import Route
from starlette.testclient import TestClient
from testkit import claim_redis_db, service_settings

from server.app import create_app
from server.settings import Settings

ROLES = ["ingest", "viewer", "manager", "developer", "admin"]
BELOW = {"viewer": {"ingest"}, "manager": {"ingest", "viewer"},
         "developer": {"ingest", "viewer", "manager"},
         "admin": {"ingest", "viewer", "manager", "developer"},
         "events": {"viewer"}, "root": set(ROLES)}

RULE = {"name": "r", "triggers": ["ticket.created"], "actions": [{"type": "close"}]}

# (method, path template, who may, body). {rule}, {key}, {run} are filled in per workspace.
MATRIX = [
    ("POST", "/v1/workspaces", "root", {"name": "x"}),
    ("GET", "/v1/workspace", "viewer", None),
    ("GET", "/v1/workspace/guards", "viewer", None),
    ("PUT", "/v1/workspace/guards", "admin", {}),
    ("DELETE", "/v1/workspace/guards", "admin", None),
    ("GET", "/v1/workspace/settings", "viewer", None),
    ("PUT", "/v1/workspace/settings", "admin", {"strict_events": False}),
    ("POST", "/v1/keys", "admin", {"role": "viewer"}),
    ("GET", "/v1/keys", "admin", None),
    ("DELETE", "/v1/keys/{key}", "admin", None),
    ("POST", "/v1/events", "events", event("m1")),
    ("GET", "/v1/tickets", "viewer", None),
    ("GET", "/v1/tickets/T-1", "viewer", None),
    ("GET", "/v1/tickets/T-1/runs", "viewer", None),
    ("GET", "/v1/runs/{run}", "viewer", None),
    ("GET", "/v1/runs", "viewer", None),
    ("GET", "/v1/stats/events", "viewer", None),
    ("GET", "/v1/stats/sla", "viewer", None),
    ("GET", "/v1/stats/rules", "viewer", None),
    ("GET", "/v1/updates", "viewer", None),
    ("POST", "/v1/rules", "manager", RULE),
    ("GET", "/v1/rules", "viewer", None),
    ("PUT", "/v1/rules/order", "manager", {"ids": []}),
    ("GET", "/v1/rules/{rule}", "viewer", None),
    ("PUT", "/v1/rules/{rule}", "manager", RULE),
    ("PATCH", "/v1/rules/{rule}", "manager", {"name": "renamed"}),
    ("POST", "/v1/rules/{rule}/enable", "manager", None),
    ("POST", "/v1/rules/{rule}/disable", "manager", None),
    ("POST", "/v1/rules/{rule}/test", "manager", {"event": event("t1")}),
    ("GET", "/v1/rules/{rule}/runs", "viewer", None),
    ("GET", "/v1/rules/{rule}/days", "viewer", None),
    ("GET", "/v1/rules/{rule}/revisions", "viewer", None),
    ("GET", "/v1/rules/{rule}/revisions/1", "viewer", None),
    ("POST", "/v1/rules/{rule}/revisions/1/restore", "manager", None),
    ("GET", "/v1/drafts", "viewer", None),
    ("POST", "/v1/rules/{rule}/draft", "manager", None),
    ("GET", "/v1/rules/{rule}/draft", "viewer", None),
    ("PUT", "/v1/rules/{rule}/draft", "manager", RULE),
    ("POST", "/v1/rules/{rule}/draft/test", "manager", {"event": event("t2")}),
    ("POST", "/v1/rules/{rule}/draft/publish", "manager", None),
    ("DELETE", "/v1/rules/{rule}/draft", "manager", None),
    ("POST", "/v1/rules/{rule}/duplicate", "manager", None),
    ("POST", "/v1/rules/backtest", "manager", {"rule": RULE, "limit": 10}),
    ("DELETE", "/v1/rules/{rule}", "manager", None),
    ("POST", "/v1/groups", "manager", {"name": "vip2"}),
    ("GET", "/v1/groups", "viewer", None),
    ("GET", "/v1/groups/vip", "viewer", None),
    ("PATCH", "/v1/groups/vip", "manager", {"color": "#00ff00"}),
    ("DELETE", "/v1/groups/vip", "manager", None),
    ("GET", "/v1/contacts/C-1", "viewer", None),
    ("GET", "/v1/contacts", "viewer", None),
    ("PUT", "/v1/contacts/C-1/groups", "manager", {"groups": ["vip"]}),
    ("GET", "/v1/companies/CO-1", "viewer", None),
    ("GET", "/v1/companies", "viewer", None),
    ("PUT", "/v1/companies/CO-1/groups", "manager", {"groups": ["vip"]}),
    ("POST", "/v1/scripts", "developer", {"name": "s1", "source": "def run(event, ticket, ctx):\n    return None\n"}),
    ("GET", "/v1/scripts", "viewer", None),
    ("GET", "/v1/scripts/s1", "viewer", None),
    ("GET", "/v1/scripts/s1/versions/1", "viewer", None),
    ("POST", "/v1/scripts/s1/test", "developer", {"event": {}}),
    ("DELETE", "/v1/scripts/s1", "developer", None),
    ("PUT", "/v1/allowlist", "admin", {"hosts": ["crm.example.com"]}),
    ("GET", "/v1/allowlist", "developer", None),
    ("GET", "/v1/secrets", "admin", None),
    ("PUT", "/v1/secrets/S1", "admin", {"value": "v"}),
    ("DELETE", "/v1/secrets/S1", "admin", None),
    ("POST", "/v1/sla-policies", "manager", {"name": "p1", "targets": {"resolution": "8h"}}),
    ("GET", "/v1/sla-policies", "viewer", None),
    ("PUT", "/v1/sla-policies/order", "manager", {"names": []}),
    ("GET", "/v1/sla-policies/p1", "viewer", None),
    ("PUT", "/v1/sla-policies/p1", "manager", {"targets": {"resolution": "4h"}}),
    ("GET", "/v1/sla-policies/p1/revisions", "viewer", None),
    ("GET", "/v1/sla-policies/p1/revisions/1", "viewer", None),
    ("POST", "/v1/sla-policies/p1/revisions/1/restore", "manager", None),
    ("DELETE", "/v1/sla-policies/p1", "manager", None),
    ("GET", "/v1/audit", "admin", None),
    ("GET", "/v1/export", "viewer", None),
    ("POST", "/v1/import", "manager", {"deskflow": 1}),
    ("PUT", "/v1/webhook", "admin", {"url": "http://127.0.0.1:9/hook", "secret": "s"}),
    ("GET", "/v1/webhook", "admin", None),
    ("DELETE", "/v1/webhook", "admin", None),
    ("GET", "/v1/webhook/deliveries", "admin", None),
    ("POST", "/v1/webhook/deliveries/resend", "admin", None),
    ("GET", "/v1/webhook/deliveries/D-1", "admin", None),
    ("POST", "/v1/webhook/deliveries/D-1/resend", "admin", None),
]


def test_matrix_covers_every_route() -> None:
    app = create_app(Settings(data_file=None))
    routes = {(m, r.path) for r in app.routes if isinstance(r, Route) and r.path.startswith("/v1/")
              for m in (r.methods or ()) if m != "HEAD"}
    covered = {(m, p.replace("{rule}", "{rule_id}").replace("{key}", "{key_id}")
                .replace("{run}", "{run_id}").replace("T-1", "{ticket_id}")
                .replace("/groups/vip", "/groups/{name}").replace("C-1", "{contact_id}")
                .replace("CO-1", "{company_id}")
                .replace("/scripts/s1", "/scripts/{name}").replace("/versions/1", "/versions/{n}")
                .replace("/revisions/1", "/revisions/{n}")
                .replace("/secrets/S1", "/secrets/{name}").replace("/sla-policies/p1", "/sla-policies/{name}")
                .replace("/deliveries/D-1", "/deliveries/{id}"))
               for m, p, _, _ in MATRIX}
    assert routes == covered


def _fill(ws: Workspace, path: str) -> str:
    c = ws.client
    if "{rule}" in path:
        path = path.replace("{rule}", ws.rule(**RULE)["id"])
    if "{key}" in path:
        r = c.post("/v1/keys", json={"role": "viewer"}, headers=ws.h())
        path = path.replace("{key}", r.json()["id"])
    if "{run}" in path:
        path = path.replace("{run}", ws.send(event("seed-run", tid="T-run"))["run_id"])
    return path


@pytest.fixture(scope="module", params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def matrix_client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """One app (worker running) per store for the whole matrix, not one per case: each case
    seeds a workspace of its own on it, and workspaces share nothing (test_nothing_crosses_
    workspaces below), so a case sees what it saw on an app of its own."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(claim_redis_db()) if request.param == "redis" else None
        yield stack.enter_context(TestClient(create_app(service_settings(url), worker=True)))


@pytest.fixture
def seeded(matrix_client: TestClient) -> Workspace:
    ws = Workspace(matrix_client)
    ws.send(event("seed", ticket={"contact": {"id": "C-1", "company": {"id": "CO-1"}}}))
    ws.client.post("/v1/groups", json={"name": "vip"}, headers=ws.h())
    ws.client.put("/v1/allowlist", json={"hosts": ["http://127.0.0.1:9"]}, headers=ws.h())
    for role in ROLES:
        ws.key(role)
    return ws


@pytest.mark.parametrize(("method", "path", "who", "body"), MATRIX,
                         ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_role_matrix(seeded, method, path, who, body):
    ws = seeded
    for role in [*ROLES, "root"]:
        url = _fill(ws, path)
        token = ROOT_TOKEN if role == "root" else ws.key(role)
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None and method == "POST" and path == "/v1/events":
            body = {**body, "id": f"m-{role}"}
        r = ws.client.request(method, url, json=body, headers=headers)
        denied = role in BELOW[who] if role != "root" else who != "root"
        if role != "root" and who == "root":
            denied = True
        if denied:
            assert r.status_code == 403, (role, method, url, r.text)
            assert r.json()["error"]["code"] == "forbidden"
        else:
            # allowed: success, or a 404/409 left by a higher role's earlier turn (deleted, exists)
            assert r.status_code in (200, 201, 202, 204, 404, 409), (role, method, url, r.text)


def test_missing_and_bad_keys_are_401(client):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = client.get("/v1/rules", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"


def test_revoked_key_stops_at_once(ws):
    r = ws.client.post("/v1/keys", json={"role": "viewer", "name": "temp"}, headers=ws.h())
    key = r.json()
    assert key["role"] == "viewer" and key["key"].startswith("df_")
    h = {"Authorization": f"Bearer {key['key']}"}
    assert ws.client.get("/v1/rules", headers=h).status_code == 200
    listed = ws.client.get("/v1/keys", headers=ws.h()).json()["items"]
    assert key["id"] in {k["id"] for k in listed}
    assert all("key" not in k and "hash" not in k for k in listed)
    assert ws.client.delete(f"/v1/keys/{key['id']}", headers=ws.h()).status_code == 204
    assert ws.client.get("/v1/rules", headers=h).status_code == 401
    assert ws.client.delete(f"/v1/keys/{key['id']}", headers=ws.h()).status_code == 404


def test_root_token_unset_means_no_workspace_creation(settings):
    from dataclasses import replace

    from starlette.testclient import TestClient

    with TestClient(create_app(replace(settings, root_token=None))) as c:
        r = c.post("/v1/workspaces", json={"name": "x"},
                   headers={"Authorization": f"Bearer {ROOT_TOKEN}"})
        assert r.status_code == 401


def test_nothing_crosses_workspaces(client):
    a, b = Workspace(client, "a"), Workspace(client, "b")
    rule = a.rule(**RULE)
    out = a.send(event("e1", ticket={"contact": {"id": "C-1", "company": {"id": "CO-1"}}}))
    client.post("/v1/groups", json={"name": "vip"}, headers=a.h())
    a_key = client.post("/v1/keys", json={"role": "viewer"}, headers=a.h()).json()
    hb = b.h()
    for method, url in [("GET", "/v1/tickets/T-1"), ("GET", "/v1/tickets/T-1/runs"),
                        ("GET", f"/v1/runs/{out['run_id']}"), ("GET", f"/v1/rules/{rule['id']}"),
                        ("PATCH", f"/v1/rules/{rule['id']}"), ("DELETE", f"/v1/rules/{rule['id']}"),
                        ("POST", f"/v1/rules/{rule['id']}/enable"), ("GET", "/v1/groups/vip"),
                        ("GET", "/v1/contacts/C-1"), ("GET", "/v1/companies/CO-1"),
                        ("DELETE", f"/v1/keys/{a_key['id']}")]:
        body = {"name": "x"} if method == "PATCH" else None
        r = client.request(method, url, json=body, headers=hb)
        assert r.status_code == 404, (method, url, r.text)
    assert client.get("/v1/tickets", headers=hb).json()["items"] == []
    assert client.get("/v1/rules", headers=hb).json()["items"] == []
    assert client.get("/v1/updates", headers=hb).json()["updates"] == []
    assert client.get("/v1/groups", headers=hb).json()["items"] == []
    assert client.get("/v1/companies", headers=hb).json()["items"] == []
    assert a_key["id"] not in {k["id"] for k in client.get("/v1/keys", headers=hb).json()["items"]}
    # the same event id in B is B's own event, not a duplicate of A's
    assert b.send(event("e1"))["status"] == "processed"
    assert client.get("/v1/tickets/T-1", headers=a.h()).json()["version"] == 1
