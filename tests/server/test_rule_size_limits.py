"""The bounds of a workspace's rules: one rule's definition at most MAX_RULE_BYTES of compact JSON
(413 rule_too_large), all of them at most Settings.max_rule_bytes as stored (422
too_many_rule_bytes), on every path that writes a rule; a workspace stored over them before they
existed may still read, disable, reorder, delete and shrink (server/store/rule_size.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import yaml
from server_helpers import Workspace
from starlette.testclient import TestClient

from server.app import create_app
from server.errors import PayloadTooLarge, Unprocessable
from server.settings import Settings
from server.store import catalog
from server.store import keys as K
from server.store import rule_snapshot
from server.store.rule_size import MAX_RULE_BYTES, definition_bytes

RULE = {"name": "r", "enabled": False, "triggers": ["ticket.created"],
        "actions": [{"type": "add_tags", "tags": ["x"]}]}


def _sized(size: int, **rule: Any) -> dict[str, Any]:
    """A rule whose definition is exactly `size` bytes of compact JSON."""
    base = {**RULE, **rule, "description": ""}
    return {**base, "description": "d" * (size - definition_bytes(base))}


def _refused(r: Any, status: int, code: str, *words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text[:500]
    err = r.json()["error"]
    assert err["code"] == code, err
    text = err["message"] + " " + orjson.dumps(err["details"]).decode()
    for word in words:
        assert word in text, f"{word!r} not in {text[:600]!r}"
    return dict(err)


def _ids(ws: Workspace) -> list[str]:
    return [r["id"] for r in ws.client.get("/v1/rules?limit=500", headers=ws.h()).json()["items"]]


def _store_directly(ws: Workspace, rule: dict[str, Any]) -> None:
    """A rule as a version before the bounds stored it: straight into the rules hash (and the
    counter moved, as every write moves it)."""
    store = ws.client.app_state["store"]
    ws.client.portal.call(store.redis.hset, K.rules(ws.id), rule["id"], orjson.dumps(rule).decode())
    ws.client.portal.call(store.redis.incr, K.rules_rev(ws.id))


def test_a_rule_at_the_limit_is_written_and_a_byte_more_is_413_on_create_put_and_patch(ws: Workspace) -> None:
    c, h = ws.client, ws.h("manager")
    at = c.post("/v1/rules", json=_sized(MAX_RULE_BYTES), headers=h)
    assert at.status_code == 201, at.text[:300]
    rid = at.json()["id"]
    over = _sized(MAX_RULE_BYTES + 1)
    _refused(c.post("/v1/rules", json=over, headers=h), 413, "rule_too_large", "MAX_RULE_BYTES",
             str(MAX_RULE_BYTES), str(MAX_RULE_BYTES + 1))
    _refused(c.put(f"/v1/rules/{rid}", json=over, headers=h), 413, "rule_too_large", "MAX_RULE_BYTES")
    _refused(c.patch(f"/v1/rules/{rid}", json={"description": over["description"]}, headers=h),
             413, "rule_too_large", "MAX_RULE_BYTES")
    assert _ids(ws) == [rid]
    assert c.get(f"/v1/rules/{rid}", headers=h).json()["description"] == at.json()["description"]


def test_an_import_names_each_rule_over_the_limit_json_and_yaml(ws: Workspace) -> None:
    c, h = ws.client, ws.h("manager")
    doc = {"deskflow": 1, "rules": [{**RULE, "name": "small"},
                                    _sized(MAX_RULE_BYTES + 1, name="big one"),
                                    _sized(MAX_RULE_BYTES, name="at the limit"),
                                    _sized(MAX_RULE_BYTES + 100, name="big two")]}
    for query in ("", "?dry_run=true"):
        err = _refused(c.post(f"/v1/import{query}", json=doc, headers=h), 413, "rule_too_large",
                       "MAX_RULE_BYTES", str(MAX_RULE_BYTES))
        assert [d["path"] for d in err["details"]] == ["rules[1]", "rules[3]"], err["details"]
    text = yaml.safe_dump(orjson.loads(orjson.dumps(doc)), sort_keys=False)   # (no aliases)
    err = _refused(c.post("/v1/import", content=text.encode(),
                          headers={**h, "Content-Type": "application/yaml"}),
                   413, "rule_too_large", "MAX_RULE_BYTES")
    assert [d["path"] for d in err["details"]] == ["rules[1]", "rules[3]"]
    assert _ids(ws) == []
    doc["rules"] = [doc["rules"][0], doc["rules"][2]]
    assert c.post("/v1/import", json=doc, headers=h).status_code == 200
    assert len(_ids(ws)) == 2


def test_a_rule_stored_over_the_limit_before_may_shrink_and_be_disabled_not_grow_or_be_copied(
        ws: Workspace) -> None:
    c, h = ws.client, ws.h("manager")
    old = {**_sized(2 * MAX_RULE_BYTES, name="old"), "id": "old", "position": 1, "revision": 1,
           "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": "2026-01-01T00:00:00.000000Z"}
    _store_directly(ws, old)
    assert c.get("/v1/rules/old", headers=h).json()["description"] == old["description"]
    assert c.post("/v1/rules/old/enable", headers=h).status_code == 200
    assert c.post("/v1/rules/old/disable", headers=h).status_code == 200
    assert c.put("/v1/rules/order", json={"ids": ["old"]}, headers=h).status_code == 200
    _refused(c.patch("/v1/rules/old", json={"description": old["description"] + "more"}, headers=h),
             413, "rule_too_large", "MAX_RULE_BYTES")
    _refused(c.post("/v1/rules/old/duplicate", headers=h), 413, "rule_too_large", "MAX_RULE_BYTES")
    shrunk = c.patch("/v1/rules/old", json={"description": old["description"][:MAX_RULE_BYTES]}, headers=h)
    assert shrunk.status_code == 200, shrunk.text[:300]   # still over, but smaller: allowed
    small = c.patch("/v1/rules/old", json={"description": "short"}, headers=h)
    assert small.status_code == 200
    # its first revision (as it was stored) is over the limit: restoring it is growth
    _refused(c.post("/v1/rules/old/revisions/1/restore", headers=h), 413, "rule_too_large",
             "MAX_RULE_BYTES")
    assert c.get("/v1/rules/old", headers=h).json()["description"] == "short"
    assert c.delete("/v1/rules/old", headers=h).status_code == 204


def test_a_draft_within_its_limit_publishes_within_the_rule_limit(ws: Workspace) -> None:
    c, h = ws.client, ws.h("manager")
    rid = ws.rule(**RULE)["id"]
    over = _sized(MAX_RULE_BYTES + 1)
    over.pop("enabled")
    r = c.put(f"/v1/rules/{rid}/draft", json=over, headers=h)
    _refused(r, 413, "draft_too_large", "MAX_DRAFT_BYTES")
    at = _sized(MAX_RULE_BYTES)
    at.pop("enabled")   # (publishing sets it: the draft is measured with it)
    at["description"] = at["description"][:-len(',"enabled":false')]
    assert c.put(f"/v1/rules/{rid}/draft", json=at, headers=h).status_code == 201
    pub = c.post(f"/v1/rules/{rid}/draft/publish", headers=h)
    assert pub.status_code == 200, pub.text[:300]
    assert pub.json()["description"] == at["description"]


@pytest.fixture
def small_total(settings: Settings) -> Iterator[Workspace]:
    """A service whose workspaces' rules may be 20,000 bytes together."""
    with TestClient(create_app(dataclasses.replace(settings, max_rule_bytes=20_000))) as c:
        yield Workspace(c)


def test_the_write_past_the_workspace_total_is_refused_on_every_path(small_total: Workspace) -> None:
    ws = small_total
    c, h = ws.client, ws.h("manager")
    ids = [c.post("/v1/rules", json=_sized(6_000, name=f"r{i}"), headers=h).json()["id"] for i in range(3)]
    words = ("DESKFLOW_MAX_RULE_BYTES", "20000", "GET /v1/rules?unused_for=30d")
    err = _refused(c.post("/v1/rules", json=_sized(3_000, name="r3"), headers=h), 422,
                   "too_many_rule_bytes", *words)
    now = err["details"][0]["current"]
    assert 18_000 < now <= 20_000 and f"{now} bytes now" in err["message"]
    grown = c.get(f"/v1/rules/{ids[0]}", headers=h).json()["description"] + "x" * 3_000
    _refused(c.patch(f"/v1/rules/{ids[0]}", json={"description": grown}, headers=h), 422,
             "too_many_rule_bytes", *words)
    _refused(c.put(f"/v1/rules/{ids[0]}", json={**_sized(9_000, name="r0")}, headers=h), 422,
             "too_many_rule_bytes", *words)
    _refused(c.post(f"/v1/rules/{ids[1]}/duplicate", headers=h), 422, "too_many_rule_bytes", *words)
    doc = {"deskflow": 1, "rules": [{**_sized(3_000, name="new")}]}
    _refused(c.post("/v1/import", json=doc, headers=h), 422, "too_many_rule_bytes", *words)
    # a draft that grows its rule past the total is refused when published
    assert c.put(f"/v1/rules/{ids[2]}/draft", json=_sized(9_000, name="r2"), headers=h).status_code == 201
    _refused(c.post(f"/v1/rules/{ids[2]}/draft/publish", headers=h), 422, "too_many_rule_bytes", *words)
    # a shrink, then the restore of the revision before it (growth past the total again)
    assert c.patch(f"/v1/rules/{ids[0]}", json={"description": "x"}, headers=h).status_code == 200
    assert c.post("/v1/rules", json=_sized(5_000, name="fits"), headers=h).status_code == 201
    _refused(c.post(f"/v1/rules/{ids[0]}/revisions/1/restore", headers=h), 422, "too_many_rule_bytes",
             *words)
    assert len(_ids(ws)) == 4


def _refused_ok(r: Any) -> None:
    assert r.status_code < 300, r.text[:300]


def test_a_workspace_over_the_total_from_before_may_disable_reorder_delete_and_shrink(
        small_total: Workspace) -> None:
    ws = small_total
    c, h = ws.client, ws.h("manager")
    for i in range(4):   # 4 x 6,000 bytes: over the 20,000 it may hold now
        _store_directly(ws, {**_sized(6_000, name=f"o{i}"), "id": f"o{i}", "position": i + 1,
                             "revision": 1, "created_at": f"2026-01-0{i + 1}T00:00:00.000000Z"})
    assert _ids(ws) == ["o0", "o1", "o2", "o3"]
    _refused_ok(c.post("/v1/rules/o1/disable", headers=h))
    _refused_ok(c.put("/v1/rules/order", json={"ids": ["o3", "o2"]}, headers=h))
    _refused_ok(c.patch("/v1/rules/o0", json={"name": "o"}, headers=h))   # (shorter)
    _refused(c.patch("/v1/rules/o0", json={"name": "a longer name"}, headers=h), 422,
             "too_many_rule_bytes", "DESKFLOW_MAX_RULE_BYTES")
    _refused(c.post("/v1/rules", json={**RULE}, headers=h), 422, "too_many_rule_bytes")
    _refused_ok(c.patch("/v1/rules/o2", json={"description": "short"}, headers=h))
    _refused_ok(c.delete("/v1/rules/o3", headers=h))
    _refused_ok(c.post("/v1/rules", json={**RULE}, headers=h))   # under the total again
    # an import that only keeps and reorders what is there writes nothing new: allowed
    assert c.post("/v1/import", json={"deskflow": 1, "rules": []}, headers=h).status_code == 200


def test_the_store_write_of_a_rule_the_demo_uses_has_the_same_bounds(small_total: Workspace) -> None:
    from server.demo import DEMO_RULES

    ws = small_total
    store = ws.client.app_state["store"]
    assert all(definition_bytes(r) <= MAX_RULE_BYTES for r in DEMO_RULES)
    with pytest.raises(PayloadTooLarge) as exc:
        ws.client.portal.call(catalog.put_rule, store, ws.id, {**_sized(MAX_RULE_BYTES + 1), "id": "big"})
    assert exc.value.code == "rule_too_large" and "MAX_RULE_BYTES" in exc.value.message
    for i in range(3):
        ws.client.portal.call(catalog.put_rule, store, ws.id, {**_sized(6_000), "id": f"r{i}"})
    with pytest.raises(Unprocessable) as over:
        ws.client.portal.call(catalog.put_rule, store, ws.id, {**_sized(3_000), "id": "r3"})
    assert over.value.code == "too_many_rule_bytes" and "DESKFLOW_MAX_RULE_BYTES" in over.value.message
    assert _ids(ws) == ["r0", "r1", "r2"]


def test_a_workspace_at_the_total_is_listed_and_written_from_its_kept_rules(
        ws: Workspace, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the limit (4 MiB of 64 KiB rules) a listing keeps the rules per revision, and a rule
    write of this process leaves them kept at the next revision: neither reads the rules hash
    again (store/rule_snapshot.py)."""
    c, h = ws.client, ws.h("manager")
    store = c.app_state["store"]
    made = 0
    while True:
        r = c.post("/v1/rules", json=_sized(MAX_RULE_BYTES, name=f"r{made}"), headers=h)
        if r.status_code != 201:
            _refused(r, 422, "too_many_rule_bytes")
            break
        made += 1
    assert made == settings.max_rule_bytes // (MAX_RULE_BYTES + 200)   # (each stored with its bookkeeping)
    rev = c.portal.call(store.redis.get, K.rules_rev(ws.id))
    kept = rule_snapshot.kept_rules(store, ws.id, rev)
    assert kept is not None and len(kept) == made and kept.total > settings.max_rule_bytes - MAX_RULE_BYTES
    reads: list[int] = []
    parsed = rule_snapshot._parsed

    def counted(rev: Any, raw: Any) -> Any:
        reads.append(len(raw))
        return parsed(rev, raw)

    monkeypatch.setattr(rule_snapshot, "_parsed", counted)
    assert len(c.get("/v1/rules?limit=1", headers=h).json()["items"]) == 1
    first = c.get("/v1/rules?limit=1", headers=h).json()["items"][0]["id"]
    assert c.patch(f"/v1/rules/{first}", json={"name": "x"}, headers=h).status_code == 200   # (shorter)
    assert c.get("/v1/rules?limit=1", headers=h).json()["items"][0]["name"] == "x"
    assert c.get("/v1/export", headers=h).status_code == 200
    assert reads == [], "the rules hash was read again"
    after = c.portal.call(store.redis.get, K.rules_rev(ws.id))
    assert after != rev and rule_snapshot.kept_rules(store, ws.id, after) is not None


def test_rules_read_from_the_hash_are_sized_in_bytes_as_written_ones_are() -> None:
    """The limit is in bytes of JSON, and a write counts a rule's bytes (store/revisions.py); the
    rules read back from the hash counted characters, so non-ASCII rules were under-counted."""
    from server.store.rule_snapshot import _parsed

    stored = '{"id":"r1","name":"é✓ 規則"}'
    assert _parsed("1", {"r1": stored}).sizes["r1"] == len(stored.encode()) > len(stored)
