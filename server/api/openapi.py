"""The OpenAPI 3.1 document, built from the app's own routes (so it cannot drift from them),
and /docs, a self-contained HTML rendering of it (no CDN)."""

from __future__ import annotations

import dis
import html
import inspect
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from server.api.common import json_response
from server.api.schemas import BODIES, COMPONENTS, RESPONSES
from server.api.validate import (EVENT_TYPES, MAX_GROUPS, MAX_ID, MAX_TAG_CHARS, MAX_TAGS,
                                 PRIORITIES, STATUSES)

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
    ("POST", "/v1/groups"): "{\"name\", \"color\"?, \"text_color\"?}",
    ("PATCH", "/v1/groups/{name}"): "{\"color\"?, \"text_color\"?, \"description\"?}",
    ("PUT", "/v1/contacts/{contact_id}/groups"): "{\"groups\": [...]}",
    ("PUT", "/v1/companies/{company_id}/groups"): "{\"groups\": [...]}",
}
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID}
_TEXT = {"type": ["string", "null"]}
_NAMES = {"type": ["array", "null"],
          "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_CHARS}}
# The event of API.md ("Events"), with the limits of server/api/validate.py (README "Limits").
_SCHEMAS: dict[str, Any] = {
    "Contact": {"type": "object", "required": ["id"], "properties": {
        "id": _ID, "email": _TEXT, "name": _TEXT, "groups": {**_NAMES, "maxItems": MAX_GROUPS},
        "custom": {"type": ["object", "null"]},
        "company": {"anyOf": [{"$ref": "#/components/schemas/Company"}, {"type": "null"}]}}},
    "Company": {"type": "object", "required": ["id"], "properties": {
        "id": _ID, "name": {"type": ["string", "null"], "maxLength": 200},
        "domain": {"type": ["string", "null"], "maxLength": 253},
        "groups": {**_NAMES, "maxItems": MAX_GROUPS}, "custom": {"type": ["object", "null"]}}},
    "Ticket": {"type": "object", "required": ["id"], "properties": {
        "id": _ID, **{k: _TEXT for k in ("subject", "description", "channel", "department",
                                         "assignee")},
        "status": {"enum": list(STATUSES)}, "priority": {"enum": list(PRIORITIES)},
        "tags": {**_NAMES, "maxItems": MAX_TAGS}, "custom": {"type": ["object", "null"]},
        "contact": {"anyOf": [{"$ref": "#/components/schemas/Contact"}, {"type": "null"}]}}},
    "Event": {"type": "object", "required": ["id", "type", "ticket"], "properties": {
        "id": _ID, "type": {"enum": list(EVENT_TYPES)},
        "occurred_at": {"type": "string", "format": "date-time"},
        "ticket": {"$ref": "#/components/schemas/Ticket"},
        "message": {"type": ["object", "null"], "properties": {
            "author": _TEXT, "body": _TEXT, "channel": _TEXT}}}},
}
# API.md's example event: also the first case schemathesis sends (its explicit phase).
_EXAMPLES = {("POST", "/v1/events"): {
    "id": "evt-123", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
    "ticket": {"id": "T-1", "subject": "Refund please", "status": "new", "priority": "normal",
               "channel": "email", "tags": ["billing"], "custom": {"plan": "pro"},
               "contact": {"id": "C-1", "email": "ann@example.com", "name": "Ann",
                           "groups": ["vip"], "custom": {}}}}}
_BODY_SCHEMAS = {**BODIES, ("POST", "/v1/events"): {"oneOf": [
    {"$ref": "#/components/schemas/Event"},
    {"type": "object", "required": ["events"], "not": {"required": ["type"]}, "properties": {
        "events": {"type": "array", "minItems": 1, "maxItems": 500,  # Settings.max_batch
                   "items": {"$ref": "#/components/schemas/Event"}}}}]}}
# Routes that do not answer JSON: (media type, body schema).
_MEDIA = {"/admin": ("text/html", {"type": "string"}),
          "/metrics": ("text/plain", {"type": "string"})}
# Rules as code (server/api/export.py): these take or give YAML as well as JSON.
_YAML = frozenset({("POST", "/v1/import"), ("GET", "/v1/export")})
# With DESKFLOW_METRICS_TOKEN set these want it as a Bearer token (server/auth.py), else 401.
_OPERATOR = frozenset({"/metrics", "/healthz", "/readyz"})
# Names an endpoint reaches when it reads the request body (server/api/common.py) or the query.
_BODY_READERS = frozenset({"read_json", "read_object", "_read_document"})
_QUERY_READERS = frozenset({"query_params", "page_params", "decode_cursor"})
_PAGED = [{"name": "limit", "in": "query", "required": False,
           "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
          {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}}]


def _reach(fn: Any, depth: int = 3) -> tuple[set[str], set[str], set[int]]:
    """What an endpoint's code says about it, so the document stays true to the endpoints without
    a table to maintain: (global names of the endpoint itself, the same plus those of the helpers
    of its module it calls, `depth` calls deep, and `status:<n>` for each ApiError class among
    them), and the 2xx constants the endpoint itself answers with (`json_response(x, 201)`,
    `Response(status_code=204)`; a constant compared against, as in `len(x) > 200`, is not one)."""
    fn = inspect.unwrap(fn)
    if not inspect.isfunction(fn):
        return set(), set(), set()
    module = fn.__globals__
    own: set[str] = set()
    names: set[str] = set()
    statuses: set[int] = set()
    seen: set[int] = set()

    def walk(code: Any, level: int, top: bool) -> None:
        if id(code) in seen:
            return
        seen.add(id(code))
        names.update(code.co_names)
        if top:
            own.update(code.co_names)
        instructions = list(dis.get_instructions(code))
        for i, ins in enumerate(instructions):
            if inspect.iscode(ins.argval):  # comprehensions, lambdas, nested functions
                walk(ins.argval, level, top)
            elif (top and type(ins.argval) is int and ins.opname.startswith("LOAD_")
                  and 200 <= ins.argval < 300 and not (
                      i + 1 < len(instructions) and instructions[i + 1].opname == "COMPARE_OP")):
                statuses.add(ins.argval)
        for name in code.co_names if level else ():
            helper = module.get(name)
            if inspect.isfunction(helper) and helper.__module__ == fn.__module__:
                walk(inspect.unwrap(helper).__code__, level - 1, False)

    walk(fn.__code__, depth, True)
    names |= {f"status:{module[n].status}" for n in list(names)
              if isinstance(module.get(n), type) and isinstance(getattr(module[n], "status", None), int)}
    return own, names, statuses


def _operation(method: str, path: str, endpoint: Any) -> dict[str, Any]:
    doc = inspect.getdoc(endpoint) or ""
    role = getattr(endpoint, "deskflow_role", None)
    own, names, statuses = _reach(endpoint)
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{endpoint.__name__}",
        "summary": doc.split("\n", 1)[0] if doc else endpoint.__name__,
        "tags": [path.split("/")[2] if path.startswith("/v1/") else "service"],
    }
    if doc:
        op["description"] = doc
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
              for n in re.findall(r"{(\w+)}", path)]
    query = getattr(endpoint, "deskflow_query", None)  # server/api/query.py: what it declares
    if query is not None:
        params += query.openapi()
    elif "page_params" in own:
        params += _PAGED
    if params:
        op["parameters"] = params
    if role:
        op["security"] = [{"bearer": []}]
        op["x-deskflow-role"] = role
    body = (method, path) in _BODIES or (method in ("POST", "PUT", "PATCH") and
                                         bool(names & _BODY_READERS))
    if body:
        schema = _BODY_SCHEMAS.get((method, path), {"type": "object"})
        op["requestBody"] = {"required": True,
                             "description": _BODIES.get((method, path), "A JSON object"),
                             "content": {"application/json": {"schema": schema}}}
        if (method, path) in _EXAMPLES:
            op["requestBody"]["content"]["application/json"]["example"] = _EXAMPLES[method, path]
        if (method, path) in _YAML:
            op["requestBody"]["content"]["application/yaml"] = {"schema": {"type": "object"}}
    responses: dict[str, Any] = {}
    media, answer = _MEDIA.get(path, ("application/json",
                                      RESPONSES.get((method, path), {"type": "object"})))
    for status in sorted(statuses or {200}):
        responses[str(status)] = {"description": "Success"}
        if status != 204:
            responses[str(status)]["content"] = {media: {"schema": answer}}
            if (method, path) in _YAML:
                responses[str(status)]["content"]["application/yaml"] = {"schema": answer}
    errors: set[int] = {int(n[7:]) for n in names if n.startswith("status:")}
    if role:
        errors |= {401, 403, 404, 429, 503}
    elif path in _OPERATOR:
        errors.add(401)
    if body:
        errors |= {400, 413, 415, 422}
    if names & _QUERY_READERS:
        errors.add(400)
    if query is not None:  # an unknown parameter is a 422; a bad number or cursor a 400
        errors |= {400, 422}
    if "StoreUnavailable" in names:
        errors.add(503)
    for status in sorted(errors):
        responses[str(status)] = _ERROR
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
            "schemas": {**_SCHEMAS, **COMPONENTS, "Error": {"type": "object", "required": ["error"],
                                              "properties": {
                "error": {"type": "object", "required": ["code", "message", "details"],
                          "properties": {"code": {"type": "string", "minLength": 1},
                                         "message": {"type": "string", "minLength": 1},
                                         "details": {}}}}}},
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
