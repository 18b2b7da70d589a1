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


def _schemas(spec, op):
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    answers = [r["content"]["application/json"]["schema"] for code, r in op["responses"].items()
               if code.startswith("2") and "application/json" in r.get("content", {})]
    return body, answers


def test_every_operation_has_its_real_request_and_response_schema(client):
    """Issue 12, item 9: most request bodies were a bare {"type": "object"}."""
    spec = client.get("/openapi.json").json()
    bare = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            body, answers = _schemas(spec, op)
            if body == {"type": "object"}:
                bare.append(f"{method.upper()} {path} request")
            bare += [f"{method.upper()} {path} answer" for a in answers if a == {"type": "object"}]
    assert bare == []


def test_the_schema_tables_name_only_served_routes():
    from server.api.schemas import BODIES, PLANNED, RESPONSES

    app = create_app(Settings(data_file=None))
    served = {(m, r.path) for r in app.routes if isinstance(r, Route) for m in (r.methods or ())}
    assert (set(BODIES) | set(RESPONSES)) - served - PLANNED == set()


def test_documented_bodies_validate_and_bad_ones_do_not(client):
    """The docs' own examples are valid under the served schemas; typical mistakes are not."""
    import jsonschema_rs  # schemathesis' own validator

    spec = client.get("/openapi.json").json()

    def valid(method, path, body):
        schema = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        root = {**schema, "components": spec["components"]}  # "#/components/..." resolve here
        return jsonschema_rs.Draft202012Validator(root).is_valid(body)

    from server.demo import DEMO_RULES
    for rule in DEMO_RULES:
        assert valid("post", "/v1/rules", rule), rule["name"]
    assert valid("post", "/v1/rules", {"name": "x", "triggers": ["ticket.created"],
                                        "conditions": {"field": "priority", "op": "gt",
                                                       "value": "normal"},
                                        "actions": [{"type": "close"}]})
    assert not valid("post", "/v1/rules", {"name": "x", "triggers": [], "actions": [{"type": "close"}]})
    assert not valid("post", "/v1/rules", {"name": "x", "triggers": ["ticket.created"],
                                            "actions": [{"type": "explode"}]})
    assert valid("post", "/v1/sla-policies", {
        "name": "vip", "targets": {"first_response": "15m", "resolution": "8h"}, "warn_before": "5m",
        "business_hours": {"timezone": "Europe/Oslo", "week": {"mon": ["09:00", "17:00"]},
                           "holidays": ["2026-12-25"]}})
    assert not valid("post", "/v1/sla-policies", {"name": "vip", "targets": {"first_reply": "1h"}})
    assert valid("post", "/v1/keys", {"role": "ingest", "name": "zendesk bridge"})
    assert not valid("post", "/v1/keys", {"role": "owner"})
    assert valid("put", "/v1/allowlist", {"hosts": ["crm.example.com", "http://127.0.0.1:9000"]})
    assert not valid("put", "/v1/allowlist", {"hosts": "crm.example.com"})
