"""The OpenAPI 3.1 document, built from the app's own routes (so it cannot drift from them),
and /docs, a self-contained HTML rendering of it (no CDN)."""

from __future__ import annotations

import html
import inspect
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from server.api.common import json_response

__all__ = ["build_openapi", "routes"]

_ERROR = {"$ref": "#/components/responses/Error"}
_BODIES = {
    ("POST", "/v1/events"): "Event or {\"events\": [...]} (at most 500, 1 MiB)",
    ("POST", "/v1/workspaces"): "{\"name\"}",
    ("POST", "/v1/keys"): "{\"role\", \"name\"}",
    ("POST", "/v1/rules"): "Rule",
    ("PUT", "/v1/rules/{rule_id}"): "Rule",
    ("PATCH", "/v1/rules/{rule_id}"): "Some top-level keys of a rule",
    ("PUT", "/v1/rules/order"): "{\"ids\": [...]}",
    ("POST", "/v1/rules/{rule_id}/test"): "{\"event\", \"ticket\"?, \"now\"?}",
    ("POST", "/v1/groups"): "{\"name\", \"color\"?}",
    ("PATCH", "/v1/groups/{name}"): "{\"color\"?, \"description\"?}",
    ("PUT", "/v1/contacts/{contact_id}/groups"): "{\"groups\": [...]}",
}
_STATUS = {"POST": "201", "DELETE": "204"}
_ACCEPTED = {("POST", "/v1/events"): "202", ("POST", "/v1/rules/{rule_id}/enable"): "200",
             ("POST", "/v1/rules/{rule_id}/disable"): "200", ("POST", "/v1/rules/{rule_id}/test"): "200"}


def _operation(method: str, path: str, endpoint: Any) -> dict[str, Any]:
    doc = inspect.getdoc(endpoint) or ""
    role = getattr(endpoint, "deskflow_role", None)
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{endpoint.__name__}",
        "summary": doc.split("\n", 1)[0] if doc else endpoint.__name__,
        "tags": [path.split("/")[2] if path.startswith("/v1/") else "service"],
    }
    if doc:
        op["description"] = doc
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
              for n in re.findall(r"{(\w+)}", path)]
    if params:
        op["parameters"] = params
    if role:
        op["security"] = [{"bearer": []}]
        op["x-deskflow-role"] = role
    if (method, path) in _BODIES:
        op["requestBody"] = {"required": True, "description": _BODIES[(method, path)],
                             "content": {"application/json": {"schema": {"type": "object"}}}}
    ok = _ACCEPTED.get((method, path)) or _STATUS.get(method, "200")
    responses: dict[str, Any] = {ok: {"description": "Success"}}
    if ok != "204":
        responses[ok]["content"] = {"application/json": {"schema": {"type": "object"}}}
    if role:
        responses.update({"401": _ERROR, "403": _ERROR, "404": _ERROR, "503": _ERROR})
    if "requestBody" in op:
        responses.update({"400": _ERROR, "413": _ERROR, "415": _ERROR, "422": _ERROR})
    op["responses"] = responses
    return op


def build_openapi(app_routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app_routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _operation(method, route.path,
                                                                          route.endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "deskflow", "version": "1.0.0",
                 "description": "Scriptable automation for help desks. Errors are "
                                "{\"error\": {\"code\", \"message\", \"details\"}}."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}},
            "responses": {"Error": {"description": "Error envelope", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
    }


async def openapi_json(request: Request) -> Response:
    """This document."""
    return json_response(build_openapi(request.app.routes))


async def docs(request: Request) -> Response:
    """A readable page of the OpenAPI document (no scripts, no CDN)."""
    spec = build_openapi(request.app.routes)
    rows = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            role = op.get("x-deskflow-role", "public")
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                        f"</code></td><td>{html.escape(role)}</td><td>"
                        f"{html.escape(op.get('summary', ''))}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>deskflow API</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}td,th{{padding:4px 10px;text-align:left;
border-bottom:1px solid #ddd}}code{{font-size:0.95em}}</style></head><body>
<h1>deskflow API v1</h1><p>Machine-readable: <a href="/openapi.json">/openapi.json</a>.
Auth: <code>Authorization: Bearer &lt;key&gt;</code>. Errors:
<code>{{"error": {{"code", "message", "details"}}}}</code>.</p>
<table><tr><th>method</th><th>path</th><th>role</th><th>what</th></tr>{''.join(rows)}</table>
</body></html>"""
    return HTMLResponse(page)


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
    Route("/docs", docs, methods=["GET"], include_in_schema=False),
]
