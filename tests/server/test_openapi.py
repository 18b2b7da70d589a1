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
