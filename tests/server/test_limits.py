"""Every input limit of README "Limits": over it, a 413 or 422 in the error envelope whose text
names the limit and its maximum; at it, accepted (so each test pins the boundary, not just "big
fails")."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from server_helpers import Workspace, event
from starlette.testclient import TestClient

from rules.ops import MAX_REGEX_LENGTH
from server.api.scripts import MAX_SOURCE_BYTES
from server.api.validate import MAX_CUSTOM_BYTES, MAX_GROUPS, MAX_ID, MAX_TAG_CHARS, MAX_TAGS
from server.app import create_app
from server.settings import Settings

RULE = {"name": "r", "triggers": ["ticket.created"],
        "conditions": {"all": [{"field": "subject", "op": "contains", "value": "x"}]},
        "actions": [{"type": "add_tags", "tags": ["t"]}]}


def _refused(r: Any, status: int, *words: str) -> dict[str, Any]:
    """The answer is `status` in the error envelope, and its message and details, read together
    as a client would show them, contain every one of `words` (the limit's name, its maximum)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    err = body["error"]
    text = err["message"] + " " + orjson.dumps(err["details"]).decode()
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    return dict(err)


def _events(ws: Workspace, body: Any) -> Any:
    return ws.client.post("/v1/events", json=body, headers=ws.h("ingest"))


def test_body_size(ws: Workspace, settings: Settings) -> None:
    limit = settings.max_body_bytes
    pad = "a" * (limit - len(orjson.dumps(event("e1", ticket={"description": ""}))))
    at = orjson.dumps(event("e1", ticket={"description": pad}))
    assert len(at) == limit
    h = {**ws.h("ingest"), "Content-Type": "application/json"}
    assert ws.client.post("/v1/events", content=at, headers=h).status_code == 202
    over = orjson.dumps(event("e2", ticket={"description": pad + "a"}))
    err = _refused(ws.client.post("/v1/events", content=over, headers=h), 413,
                   "body size limit", f"{limit} bytes")
    assert err["code"] == "payload_too_large"


def test_batch_size(ws: Workspace, settings: Settings) -> None:
    n = settings.max_batch
    r = _events(ws, {"events": [event(f"b{i}", tid=f"T-{i % 5}") for i in range(n)]})
    assert r.status_code == 202 and len(r.json()["results"]) == n
    err = _refused(_events(ws, {"events": [event(f"c{i}") for i in range(n + 1)]}), 413,
                   "batch size limit", f"{n} events", f"{n + 1} events")
    assert err["code"] == "batch_too_large"


def test_json_nesting_depth(ws: Workspace, settings: Settings) -> None:
    limit = settings.max_json_depth

    def nested(levels: int) -> dict[str, Any]:
        value: Any = "x"
        for _ in range(levels):
            value = {"k": value}
        return value

    # the event object, its ticket and custom are 3 levels; custom's value makes up the rest
    ok = event("d1", ticket={"custom": {"deep": nested(limit - 3)}})
    assert _events(ws, ok).status_code == 202
    deep = event("d2", ticket={"custom": {"deep": nested(limit - 2)}})
    err = _refused(_events(ws, deep), 422, "JSON nesting limit", f"{limit} levels")
    assert err["code"] == "too_deep"
    # the same limit guards every JSON body, and orjson's own ceiling (1024) says the same
    h = {**ws.h(), "Content-Type": "application/json"}
    huge = b'{"a":' * 2000 + b"1" + b"}" * 2000
    for path in ("/v1/rules", "/v1/events"):
        _refused(ws.client.post(path, content=huge, headers=h), 422, f"{limit} levels")


def test_id_length(ws: Workspace) -> None:
    at = "i" * MAX_ID
    assert _events(ws, event(at, tid=at)).status_code == 202
    over = "i" * (MAX_ID + 1)
    for body, path in ((event(over), "id"), (event("e", tid=over), "ticket.id"),
                       (event("e", ticket={"contact": {"id": over}}), "ticket.contact.id")):
        err = _refused(_events(ws, body), 422, "id length limit", f"{MAX_ID} characters")
        assert [d["path"] for d in err["details"]] == [path]


def test_tag_count_and_length(ws: Workspace) -> None:
    tags = [f"t{i}" for i in range(MAX_TAGS)]
    assert _events(ws, event("t1", ticket={"tags": tags})).status_code == 202
    _refused(_events(ws, event("t2", ticket={"tags": [*tags, "one-more"]})), 422,
             "ticket.tags", "limit is 100 tags", f"has {MAX_TAGS + 1} tags")
    assert _events(ws, event("t3", ticket={"tags": ["x" * MAX_TAG_CHARS]})).status_code == 202
    _refused(_events(ws, event("t4", ticket={"tags": ["x" * (MAX_TAG_CHARS + 1)]})), 422,
             "ticket.tags", f"at most {MAX_TAG_CHARS} characters (the limit)")


def test_contact_group_count(ws: Workspace) -> None:
    groups = [f"g{i}" for i in range(MAX_GROUPS)]
    contact = {"id": "C-1", "groups": groups}
    assert _events(ws, event("g1", ticket={"contact": contact})).status_code == 202
    contact = {"id": "C-1", "groups": [*groups, "more"]}
    _refused(_events(ws, event("g2", ticket={"contact": contact})), 422,
             "ticket.contact.groups", f"limit is {MAX_GROUPS} groups")


@pytest.mark.parametrize("where", ["ticket", "contact"])
def test_custom_field_size(ws: Workspace, where: str) -> None:
    def custom(size: int) -> dict[str, str]:
        return {"v": "x" * (size - len(b'{"v":""}'))}

    def body(eid: str, size: int) -> dict[str, Any]:
        if where == "ticket":
            return event(eid, ticket={"custom": custom(size)})
        return event(eid, ticket={"contact": {"id": "C-1", "custom": custom(size)}})

    assert _events(ws, body("c1", MAX_CUSTOM_BYTES)).status_code == 202
    path = "ticket.custom" if where == "ticket" else "ticket.contact.custom"
    _refused(_events(ws, body("c2", MAX_CUSTOM_BYTES + 1)), 422, path,
             "custom field size limit", f"{MAX_CUSTOM_BYTES} bytes", f"{MAX_CUSTOM_BYTES + 1} bytes")


def _rule_with(conditions: Any) -> dict[str, Any]:
    return {**RULE, "conditions": conditions}


def test_condition_depth(ws: Workspace) -> None:
    def groups(levels: int) -> dict[str, Any]:
        cond: dict[str, Any] = {"field": "subject", "op": "contains", "value": "x"}
        for _ in range(levels):
            cond = {"all": [cond]}
        return cond

    r = ws.client.post("/v1/rules", json=_rule_with(groups(32)), headers=ws.h())
    assert r.status_code == 201, r.text
    _refused(ws.client.post("/v1/rules", json=_rule_with(groups(33)), headers=ws.h()), 422,
             "conditions nest deeper than 32 levels")


def test_regex_length(ws: Workspace) -> None:
    def regex(n: int) -> dict[str, Any]:
        return {"all": [{"field": "subject", "op": "matches", "value": "a" * n}]}

    r = ws.client.post("/v1/rules", json=_rule_with(regex(MAX_REGEX_LENGTH)), headers=ws.h())
    assert r.status_code == 201, r.text
    _refused(ws.client.post("/v1/rules", json=_rule_with(regex(MAX_REGEX_LENGTH + 1)),
                            headers=ws.h()), 422,
             "conditions.all[0].value", f"regex longer than {MAX_REGEX_LENGTH} characters")


def test_script_size(ws: Workspace) -> None:
    run = "def run(event, ticket, ctx):\n    return {}\n"
    pad = "#" * (MAX_SOURCE_BYTES - len(run) - 1) + "\n"
    at = ws.client.post("/v1/scripts", json={"name": "big", "source": pad + run}, headers=ws.h())
    assert at.status_code == 201, at.text
    over = ws.client.post("/v1/scripts", json={"name": "big", "source": "#" + pad + run},
                          headers=ws.h())
    _refused(over, 422, "source", f"{MAX_SOURCE_BYTES:,}", f"{MAX_SOURCE_BYTES + 1:,} bytes")


@pytest.fixture
def few_rules(settings: Settings) -> Iterator[Workspace]:
    """A service whose workspaces may hold 3 rules."""
    with TestClient(create_app(dataclasses.replace(settings, max_rules=3))) as c:
        yield Workspace(c)


def test_rule_count_per_workspace(few_rules: Workspace) -> None:
    ws = few_rules
    for i in range(3):
        assert ws.client.post("/v1/rules", json={**RULE, "name": f"r{i}"},
                              headers=ws.h()).status_code == 201
    err = _refused(ws.client.post("/v1/rules", json={**RULE, "name": "r3"}, headers=ws.h()), 422,
                   "rule count limit", "3 rules")
    assert err["code"] == "too_many_rules"
    assert len(ws.client.get("/v1/rules", headers=ws.h()).json()["items"]) == 3
    # an import that would leave more than the limit changes nothing
    doc = {"deskflow": 1, "rules": [{**RULE, "name": f"n{i}"} for i in range(2)]}
    r = ws.client.post("/v1/import", json=doc, headers=ws.h())
    _refused(r, 422, "rule count limit", "3 rules")
    assert len(ws.client.get("/v1/rules", headers=ws.h()).json()["items"]) == 3


def test_import_nesting_depth(ws: Workspace, settings: Settings) -> None:
    """POST /v1/import reads its own body (JSON or YAML), so it needs the same nesting limit."""
    limit = settings.max_json_depth
    yaml_doc = ("deskflow: 1\nrules:\n- name: r\n  description: " + "[" * 1000 + "]" * 1000 + "\n")
    r = ws.client.post("/v1/import", content=yaml_doc.encode(),
                       headers={**ws.h(), "Content-Type": "application/yaml"})
    err = _refused(r, 422, "JSON nesting limit", f"{limit} levels")
    assert err["code"] == "too_deep"
