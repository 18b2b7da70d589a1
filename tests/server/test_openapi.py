"""/openapi.json is OpenAPI 3.1 and lists exactly the app's routes."""

from __future__ import annotations

from starlette.routing import Route

from server.app import create_app
from server.settings import Settings


def test_openapi_matches_routes(client):
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    app = create_app(Settings(data_file=None))
    want = {(r.path, m.lower()) for r in app.routes
            if isinstance(r, Route) and r.include_in_schema for m in (r.methods or ()) if m != "HEAD"}
    got = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    assert got == want
    ev = spec["paths"]["/v1/events"]["post"]
    assert ev["x-deskflow-role"] == "events" and "202" in ev["responses"]
    assert "413" in ev["responses"] and "415" in ev["responses"]
    assert spec["paths"]["/v1/rules/{rule_id}"]["get"]["parameters"][0]["name"] == "rule_id"


def test_rules_as_code_and_revisions_are_described(client):
    spec = client.get("/openapi.json").json()
    imp = spec["paths"]["/v1/import"]["post"]
    assert imp["x-deskflow-role"] == "manager" and "200" in imp["responses"]
    assert set(imp["requestBody"]["content"]) == {"application/json", "application/yaml"}
    assert "422" in imp["responses"] and "415" in imp["responses"]
    exp = spec["paths"]["/v1/export"]["get"]
    assert set(exp["responses"]["200"]["content"]) == {"application/json", "application/yaml"}
    restore = spec["paths"]["/v1/rules/{rule_id}/revisions/{n}/restore"]["post"]
    assert "200" in restore["responses"] and restore["x-deskflow-role"] == "manager"
    assert [p["name"] for p in restore["parameters"]] == ["rule_id", "n"]
    assert spec["paths"]["/v1/audit"]["get"]["x-deskflow-role"] == "admin"
