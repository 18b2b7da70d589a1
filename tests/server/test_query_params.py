"""Query parameters: declared per route, one parser per kind (issue 12 items 2-3, issue 13 A8).

The route lists here come from the served app, so a new route is covered without editing this
file: every route refuses a parameter it does not declare, every paged list refuses bad numbers
and foreign cursors, every `{n}` path parameter answers a 4xx for anything but a number.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from server_helpers import ROOT_TOKEN, Workspace, event
from starlette.routing import Route

from server.api.query import NO_QUERY, Param, Query, ValueProblem, whole_number
from server.app import create_app
from server.settings import Settings

# Served routes the query check does not guard, and why.
UNGUARDED = {
    "/admin", "/admin/", "/admin/{name:str}",   # the managers' static page: a browser's URL
    "/openapi.json", "/docs",                   # the API's own description (server/api/openapi.py)
}
BAD_NUMBERS = ["²", "-1", "0", "1e3", "99999999999999999999", " 5", "５", "", "1.0", "0x10"]


def _served() -> list[tuple[str, str, Any]]:
    app = create_app(Settings(data_file=None))
    return [(m, r.path, r.endpoint) for r in app.routes if isinstance(r, Route)
            for m in sorted(r.methods or ()) if m != "HEAD"]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _err(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    if code:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


def _headers(ws: Workspace, path: str) -> dict[str, str]:
    if path == "/v1/workspaces":
        return {"Authorization": f"Bearer {ROOT_TOKEN}"}
    return ws.h("admin") if path.startswith("/v1/") else {}


def _filled(path: str) -> str:
    for name in ("rule_id", "ticket_id", "run_id", "key_id", "name", "contact_id", "id"):
        path = path.replace("{" + name + "}", "x")
    return path.replace("{n}", "1")


# -- the parser itself ----------------------------------------------------------------------------

def test_one_integer_parser_takes_ascii_digits_only() -> None:
    assert whole_number("42", 1, 500) == 42
    for raw in BAD_NUMBERS + ["501", "0001000"]:
        with pytest.raises(ValueError):
            whole_number(raw, 1, 500)


@pytest.mark.parametrize("raw, value", [("true", True), ("TRUE", True), ("True", True), ("1", True),
                                        ("yes", True), ("Yes", True), ("false", False),
                                        ("False", False), ("0", False), ("no", False), ("NO", False)])
def test_boolean_words(raw: str, value: bool) -> None:
    assert Param("b", "boolean").parse(raw) is value


@pytest.mark.parametrize("raw", ["maybe", "", "on", "off", "y", "t", " true", "2", "truee"])
def test_boolean_refuses_what_it_does_not_know(raw: str) -> None:
    with pytest.raises(ValueProblem) as caught:
        Param("b", "boolean").parse(raw)
    assert "true/false, 1/0 or yes/no" in caught.value.reason


def test_declaration_is_data_for_the_openapi_document() -> None:
    """`deskflow_query` on every guarded endpoint; `openapi()` gives parameter objects."""
    endpoints = {(m, p): e for m, p, e in _served()}
    tickets = endpoints["GET", "/v1/tickets"].deskflow_query
    assert isinstance(tickets, Query)
    params = {p["name"]: p for p in tickets.openapi()}
    assert params["status"]["schema"]["enum"][:2] == ["new", "open"]
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500,
                                         "default": 50}
    feed = {p["name"]: p for p in endpoints["GET", "/v1/updates"].deskflow_query.openapi()}
    assert feed["after"]["deprecated"] is True and feed["limit"]["schema"]["maximum"] == 1000
    assert endpoints["GET", "/v1/rules/{rule_id}"].deskflow_query is NO_QUERY
    for m, p, e in _served():
        if p not in UNGUARDED:
            assert isinstance(getattr(e, "deskflow_query", None), Query), (m, p)


# -- every route ----------------------------------------------------------------------------------

def test_every_route_refuses_an_unknown_parameter(ws: Workspace) -> None:
    """On ANY served route (the list is the app's), a parameter it does not take is a 422 naming
    it, before anything is read or written."""
    checked = 0
    for method, path, _ in _served():
        if path in UNGUARDED:
            continue
        r = ws.client.request(method, _filled(path) + "?zzq_unknown=1", headers=_headers(ws, path))
        e = _err(r, 422, "unknown_parameter")
        assert e["details"] == [{"path": "?zzq_unknown", "reason": e["details"][0]["reason"]}]
        assert "zzq_unknown" in e["message"] and method in e["message"], e
        checked += 1
    assert checked > 60
    # nothing was created by the refused requests
    assert ws.client.get("/v1/rules", headers=ws.h()).json()["items"] == []


def test_misspelt_parameter_gets_a_hint(ws: Workspace) -> None:
    ws.send(event("e1", ticket={"status": "open"}))
    e = _err(ws.client.get("/v1/tickets?stauts=open", headers=ws.h()), 422, "unknown_parameter")
    assert e["details"] == [{"path": "?stauts", "reason": "is not a parameter of GET /v1/tickets; "
                                                          "did you mean ?status?"}]
    e = _err(ws.client.get("/v1/tickets?Limit=5", headers=ws.h()), 422)
    assert "did you mean ?limit?" in e["message"]
    e = _err(ws.client.get("/v1/rules/r1?x=1", headers=ws.h()), 422)
    assert "GET /v1/rules/{rule_id}" in e["message"] and "no query parameters" in e["message"]


def test_filter_values_outside_their_set_are_422(ws: Workspace) -> None:
    cases = [("/v1/tickets?status=bogus", "?status", "new, open, pending, on_hold, solved, closed"),
             ("/v1/webhook/deliveries?state=odd", "?state", "pending, delivered, failed"),
             ("/v1/export?format=xml", "?format", "json, yaml")]
    for url, path, allowed in cases:
        e = _err(ws.client.get(url, headers=ws.h()), 422, "invalid_parameter")
        assert e["details"][0]["path"] == path and allowed in e["details"][0]["reason"], e
    e = _err(ws.client.post("/v1/import?missing=everything", json={"deskflow": 1}, headers=ws.h()),
             422, "invalid_parameter")
    assert "keep, disable, delete" in e["message"]
    e = _err(ws.client.post("/v1/webhook/deliveries/resend?state=pending", headers=ws.h()), 422)
    assert "must be one of failed" in e["message"]
    # values in the set, in any case, still work
    assert ws.client.get("/v1/tickets?status=OPEN", headers=ws.h()).status_code == 200
    assert ws.client.get("/v1/export?format=YAML", headers=ws.h()).text.startswith("deskflow:")


def test_every_problem_at_once(ws: Workspace) -> None:
    e = _err(ws.client.get("/v1/tickets?stauts=open&status=bogus&limit=²", headers=ws.h()), 422)
    assert {d["path"] for d in e["details"]} == {"?stauts", "?status", "?limit"}
    e = _err(ws.client.get("/v1/tickets?status=open&status=new", headers=ws.h()), 422)
    assert "given 2 times" in e["message"]
    assert ws.client.get("/v1/tickets?status=open&status=open", headers=ws.h()).status_code == 200


# -- booleans -------------------------------------------------------------------------------------

RULE = {"name": "r", "enabled": True, "triggers": ["ticket.created"],
        "actions": [{"type": "add_tags", "tags": ["x"]}]}


@pytest.mark.parametrize("word", ["True", "TRUE", "1", "yes", "Yes"])
def test_dry_run_in_any_spelling_previews(ws: Workspace, word: str) -> None:
    """`?dry_run=True` applied the import (only "true" and "1" were read as true)."""
    r = ws.client.post(f"/v1/import?dry_run={word}", json={"deskflow": 1, "rules": [RULE]},
                       headers=ws.h("manager"))
    assert r.status_code == 200, r.text
    assert r.json()["dry_run"] is True and r.json()["applied"] is False
    assert ws.client.get("/v1/rules", headers=ws.h()).json()["items"] == []


def test_a_boolean_not_understood_is_never_acted_on(ws: Workspace) -> None:
    for url in ("/v1/import?dry_run=maybe", "/v1/import?dry_run=", "/v1/import?prune=on"):
        e = _err(ws.client.post(url, json={"deskflow": 1, "rules": [RULE]}, headers=ws.h()), 422,
                 "invalid_parameter")
        assert "true/false, 1/0 or yes/no" in e["message"], e
    assert ws.client.get("/v1/rules", headers=ws.h()).json()["items"] == []
    e = _err(ws.client.post("/v1/events?wait=sure", json=event("e1"), headers=ws.h("ingest")), 422)
    assert e["details"][0]["path"] == "?wait"
    assert ws.client.get("/v1/tickets", headers=ws.h()).json()["items"] == []  # not queued
    applied = ws.client.post("/v1/import?dry_run=No", json={"deskflow": 1, "rules": [RULE]},
                             headers=ws.h())
    assert applied.json()["applied"] is True


def test_wait_in_any_spelling_waits(ws: Workspace) -> None:
    r = ws.client.post("/v1/events?wait=YES", json=event("e1"), headers=ws.h("ingest"))
    assert r.status_code == 200 and r.json()["status"] == "processed"
    r = ws.client.post("/v1/events?wait=0", json=event("e2"), headers=ws.h("ingest"))
    assert r.status_code == 202 and r.json() == {"event_id": "e2", "status": "queued"}


# -- the updates feed pages with ?cursor= ---------------------------------------------------------

def test_updates_feed_takes_cursor_and_after(ws: Workspace) -> None:
    ws.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["t"]}])
    for i in range(4):
        ws.send(event(f"e{i}", tid=f"T-{i}"))
    first = ws.client.get("/v1/updates?limit=2", headers=ws.h()).json()
    by_cursor = ws.client.get(f"/v1/updates?cursor={first['next']}", headers=ws.h()).json()
    by_after = ws.client.get(f"/v1/updates?after={first['next']}", headers=ws.h()).json()
    assert [u["event_id"] for u in by_cursor["updates"]] == ["e2", "e3"]
    assert by_after == by_cursor
    both = ws.client.get(f"/v1/updates?cursor={first['next']}&after={first['next']}",
                         headers=ws.h())
    assert both.json() == by_cursor
    e = _err(ws.client.get(f"/v1/updates?cursor={first['next']}&after=1-0", headers=ws.h()), 422)
    assert e["details"] == [{"path": "?after", "reason": "and ?cursor are two names of one "
                             "parameter, given different values; give one"}]


# -- bad numbers and cursors (issue 13 A8) --------------------------------------------------------

def _paged() -> list[tuple[str, Query]]:
    out = []
    for method, path, endpoint in _served():
        query = getattr(endpoint, "deskflow_query", NO_QUERY)
        if method == "GET" and "limit" in query.names():
            out.append((path, query))
    return out


def test_the_paged_routes_are_found() -> None:
    paths = {p for p, _ in _paged()}
    assert {"/v1/rules", "/v1/tickets", "/v1/audit", "/v1/updates", "/v1/webhook/deliveries",
            "/v1/keys", "/v1/groups", "/v1/scripts", "/v1/sla-policies", "/v1/secrets",
            "/v1/tickets/{ticket_id}/runs", "/v1/rules/{rule_id}/revisions"} <= paths


def test_bad_limits_are_400_on_every_list(ws: Workspace) -> None:
    for path, _ in _paged():
        for raw in BAD_NUMBERS + ["501", "1001"]:
            if raw == "501" and path == "/v1/updates":
                continue   # the feed's limit goes to 1000
            r = ws.client.get(_filled(path), params={"limit": raw}, headers=ws.h())
            e = _err(r, 400, "invalid_limit")
            assert e["details"][0]["path"] == "?limit" and "limit" in e["message"], (path, raw)
        assert ws.client.get(_filled(path) + "?limit=1", headers=ws.h()).status_code in (200, 404)


def test_foreign_and_garbage_cursors_are_400_on_every_list(ws: Workspace) -> None:
    offset, stream = _b64("50"), _b64("1795430353069-0")
    garbage = ["!!", "A" * 5000, _b64("x"), _b64("²"), _b64("５"), "５", "²", _b64("-1"),
               _b64("9" * 40), _b64("1-2-3")]
    for path, _ in _paged():
        own = {"/v1/updates": "1795430353069-0", "/v1/audit": stream}.get(path, offset)
        foreign = [c for c in (offset, stream, "1795430353069-0") if c != own]
        if path == "/v1/updates":
            foreign += ["５-0", "1" * 30 + "-0", "18446744073709551616-0", "1-", "-1"]
        for cursor in garbage + foreign:
            r = ws.client.get(_filled(path), params={"cursor": cursor}, headers=ws.h())
            e = _err(r, 400, "invalid_cursor")
            assert e["details"][0]["path"] == "?cursor", (path, cursor)
        assert ws.client.get(_filled(path), params={"cursor": own}, headers=ws.h()).status_code in (200, 404)


def test_bad_path_numbers_are_404_never_500(ws: Workspace) -> None:
    rule = ws.rule(**RULE)
    assert ws.client.post("/v1/sla-policies", json={"name": "p1", "targets": {"resolution": "8h"}},
                          headers=ws.h()).status_code == 201
    assert ws.client.post("/v1/scripts", json={"name": "s1", "source": "def run(event, ticket, ctx):\n"
                                               "    return None\n"}, headers=ws.h()).status_code == 201
    owner = {"/v1/rules/{rule_id}": rule["id"], "/v1/sla-policies/{name}": "p1",
             "/v1/scripts/{name}": "s1"}
    numbered = [(m, p) for m, p, _ in _served() if "{n}" in p]
    assert len(numbered) >= 5
    for method, path in numbered:
        prefix = path.split("/revisions")[0].split("/versions")[0]
        for raw in [n for n in BAD_NUMBERS if n] + ["9" * 5000]:
            url = path.replace(prefix, prefix.split("{")[0] + owner[prefix]).replace("{n}", raw)
            e = _err(ws.client.request(method, url, headers=ws.h()), 404, "not_found")
            assert "no revision" in e["message"] or "there is no" in e["message"], (url, e)
        good = path.replace(prefix, prefix.split("{")[0] + owner[prefix]).replace("{n}", "1")
        assert ws.client.request(method, good, headers=ws.h()).status_code in (200, 422)


def test_content_length_that_is_not_a_number_is_not_a_500(ws: Workspace) -> None:
    from server.api.common import _declared_length

    from server.errors import BadRequest

    assert _declared_length("12") == 12
    for bad in ("²", "５", "-1", "1e3", "9" * 40):
        with pytest.raises(BadRequest):
            _declared_length(bad)


def test_no_endpoint_reads_the_query_string_itself() -> None:
    """Every parameter goes through a declaration (server/api/query.py), so none can be read
    without being checked, documented and refused when unknown: `ctx.query[...]`, not
    `request.query_params`."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "server"
    allowed = {root / "api" / "query.py", root / "api" / "common.py"}
    readers = [str(p.relative_to(root)) for p in root.rglob("*.py")
               if p not in allowed and re.search(r"\.query_params\b", p.read_text())]
    assert readers == [], f"read parameters through requires(role, Query(...)): {readers}"


def test_a_hostile_query_gets_a_bounded_answer(ws: Workspace) -> None:
    query = "&".join(f"p{i}=1" for i in range(2000)) + "&" + "n" * 20000 + "=1"
    r = ws.client.get(f"/v1/tickets?limit={'9' * 20000}&{query}", headers=ws.h())
    e = _err(r, 422, "unknown_parameter")
    assert len(e["details"]) == 50 and len(r.content) < 20_000
    assert "(and 1997 more)" in e["message"]
