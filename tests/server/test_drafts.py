"""Rule drafts (issue 18 item 3): a draft lives beside its rule, the run path never sees it, and
publishing replaces the live rule in one revision after an expected-revision check."""

from __future__ import annotations

from typing import Any

from server_helpers import event

from server.store import drafts as D

RULE = {"name": "Refunds", "enabled": True, "triggers": ["ticket.created"],
        "conditions": {"all": [{"field": "subject", "op": "contains", "value": "refund"}]},
        "actions": [{"type": "add_tags", "tags": ["refund"]}]}
EDITED = {**RULE, "actions": [{"type": "add_tags", "tags": ["money"]}]}


def _tags(ws: Any, eid: str, tid: str) -> list[str]:
    out = ws.send(event(eid, tid=tid, ticket={"subject": "refund please"}))
    return list(out["ticket"]["tags"])


def test_a_draft_is_edited_and_tested_without_touching_the_live_rule(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    rule = ws.rule(**RULE)
    rid = rule["id"]
    made = c.post(f"/v1/rules/{rid}/draft", headers=h)
    assert made.status_code == 201, made.text
    assert made.json()["base_revision"] == 1 and made.json()["rule"]["actions"] == RULE["actions"]
    assert c.post(f"/v1/rules/{rid}/draft", headers=h).json()["error"]["code"] == "draft_exists"
    saved = c.put(f"/v1/rules/{rid}/draft", json=EDITED, headers=h)
    assert saved.status_code == 200 and saved.json()["rule"]["actions"] == EDITED["actions"]
    # the live rule is unchanged, enabled, and still what the worker runs
    live = c.get(f"/v1/rules/{rid}", headers=h).json()
    assert live["revision"] == 1 and live["enabled"] is True and live["actions"] == RULE["actions"]
    assert _tags(ws, "e1", "T-1") == ["refund"]
    # the draft's test runs the draft
    test = c.post(f"/v1/rules/{rid}/draft/test",
                  json={"event": event("x", ticket={"subject": "refund"})}, headers=h)
    assert test.status_code == 200 and test.json()["changes"]["tags"]["added"] == ["money"]
    # an invalid draft is a 422 naming the path, and nothing is saved
    bad = c.put(f"/v1/rules/{rid}/draft", json={**EDITED, "actions": []}, headers=h)
    assert bad.status_code == 422 and any(d["path"] == "actions" for d in bad.json()["error"]["details"])
    assert c.get(f"/v1/rules/{rid}/draft", headers=ws.h("viewer")).json()["rule"]["actions"] == EDITED["actions"]
    listed = c.get("/v1/drafts", headers=ws.h("viewer")).json()["items"]
    assert [d["rule_id"] for d in listed] == [rid] and listed[0]["stale"] is False
    # discard: gone, the live rule as it was
    assert c.delete(f"/v1/rules/{rid}/draft", headers=h).status_code == 204
    assert c.get(f"/v1/rules/{rid}/draft", headers=h).status_code == 404
    assert c.delete(f"/v1/rules/{rid}/draft", headers=h).status_code == 404
    assert c.get(f"/v1/rules/{rid}", headers=h).json()["revision"] == 1


def test_publish_is_one_revision_and_the_worker_runs_it(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    rid = ws.rule(**RULE)["id"]
    c.put(f"/v1/rules/{rid}/draft", json=EDITED, headers=h)
    pub = c.post(f"/v1/rules/{rid}/draft/publish", headers=h)
    assert pub.status_code == 200, pub.text
    assert pub.json()["revision"] == 2 and pub.json()["actions"] == EDITED["actions"]
    revs = c.get(f"/v1/rules/{rid}/revisions", headers=h).json()["items"]
    assert [(r["n"], r["action"]) for r in revs] == [(2, "publish"), (1, "create")]
    assert c.get(f"/v1/rules/{rid}/draft", headers=h).status_code == 404
    assert _tags(ws, "e2", "T-2") == ["money"]


def test_publish_refuses_a_draft_behind_the_live_rule(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    rid = ws.rule(**RULE)["id"]
    c.post(f"/v1/rules/{rid}/draft", json={"rule": EDITED}, headers=h)
    c.patch(f"/v1/rules/{rid}", json={"name": "Refunds (renamed live)"}, headers=h)
    assert c.get(f"/v1/rules/{rid}/draft", headers=h).json()["stale"] is True
    stale = c.post(f"/v1/rules/{rid}/draft/publish", headers=h)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "rule_changed"
    assert "revision 2, not 1" in stale.json()["error"]["message"]
    assert c.get(f"/v1/rules/{rid}", headers=h).json()["actions"] == RULE["actions"]
    ok = c.post(f"/v1/rules/{rid}/draft/publish", json={"revision": 2}, headers=h)
    assert ok.status_code == 200 and ok.json()["revision"] == 3
    assert ok.json()["name"] == "Refunds"  # the draft's whole definition, name included


def test_viewers_read_drafts_and_cannot_change_them(ws: Any) -> None:
    c = ws.client
    rid = ws.rule(**RULE)["id"]
    c.post(f"/v1/rules/{rid}/draft", headers=ws.h("manager"))
    v = ws.h("viewer")
    assert c.get(f"/v1/rules/{rid}/draft", headers=v).status_code == 200
    for method, path, body in [("PUT", "draft", EDITED), ("DELETE", "draft", None),
                               ("POST", "draft/publish", None), ("POST", "duplicate", None)]:
        r = c.request(method, f"/v1/rules/{rid}/{path}", json=body, headers=v)
        assert r.status_code == 403, (method, path)
    assert c.get(f"/v1/rules/{rid}/draft", headers=v).json()["rule"]["actions"] == RULE["actions"]


def test_duplicate_makes_a_disabled_copy(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    rid = ws.rule(**RULE)["id"]
    dup = c.post(f"/v1/rules/{rid}/duplicate", headers=h)
    assert dup.status_code == 201, dup.text
    copy = dup.json()
    assert copy["id"] != rid and copy["name"] == "Copy of Refunds" and copy["enabled"] is False
    assert copy["actions"] == RULE["actions"] and copy["position"] == 2
    assert [r["id"] for r in c.get("/v1/rules", headers=h).json()["items"]] == [rid, copy["id"]]


def test_draft_count_and_size_limits_are_named(ws: Any, monkeypatch: Any) -> None:
    c, h = ws.client, ws.h("manager")
    monkeypatch.setattr(D, "MAX_DRAFTS", 2)
    ids = [ws.rule(**{**RULE, "name": f"r{i}"})["id"] for i in range(3)]
    for rid in ids[:2]:
        assert c.post(f"/v1/rules/{rid}/draft", headers=h).status_code == 201
    over = c.post(f"/v1/rules/{ids[2]}/draft", headers=h)
    assert over.status_code == 422 and over.json()["error"]["code"] == "too_many_drafts"
    assert "MAX_DRAFTS" in over.json()["error"]["message"]
    # a deleted rule's draft no longer counts
    c.delete(f"/v1/rules/{ids[0]}", headers=h)
    assert c.post(f"/v1/rules/{ids[2]}/draft", headers=h).status_code == 201
    big = {**RULE, "description": "x" * (D.MAX_DRAFT_BYTES + 1)}
    r = c.put(f"/v1/rules/{ids[2]}/draft", json=big, headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "draft_too_large"
    assert "MAX_DRAFT_BYTES" in r.json()["error"]["message"]


def test_publish_checks_references_and_secrets_like_any_rule_write(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    rid = ws.rule(**RULE)["id"]
    missing = {**RULE, "actions": [{"type": "run_script", "script": "nope"}]}
    assert c.put(f"/v1/rules/{rid}/draft", json=missing, headers=h).status_code == 201  # a draft may
    r = c.post(f"/v1/rules/{rid}/draft/publish", headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_reference"
    assert c.get(f"/v1/rules/{rid}", headers=h).json()["revision"] == 1
    assert c.get(f"/v1/rules/{rid}/draft", headers=h).status_code == 200  # kept, to fix
    secret = {**RULE, "actions": [{"type": "http_request", "url": "https://crm.example.com/x",
                                   "secret": "CRM_TOKEN"}]}
    assert c.put(f"/v1/rules/{rid}/draft", json=secret, headers=h).status_code == 403


def test_a_publish_from_a_stale_draft_is_refused(ws: Any) -> None:
    """Two managers: the second one's publish, from a draft taken before the first's, is a 409."""
    c, h = ws.client, ws.h("manager")
    rid = ws.rule(**RULE)["id"]
    c.post(f"/v1/rules/{rid}/draft", headers=h)
    c.put(f"/v1/rules/{rid}/draft", json=EDITED, headers=h)
    assert c.post(f"/v1/rules/{rid}/draft/publish", headers=h).status_code == 200
    c.post(f"/v1/rules/{rid}/draft", json={"rule": RULE}, headers=h)
    c.patch(f"/v1/rules/{rid}", json={"stop": True}, headers=h)  # a change after the draft
    r = c.post(f"/v1/rules/{rid}/draft/publish", json={"revision": 2}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "rule_changed"
    bad = c.post(f"/v1/rules/{rid}/draft/publish", json={"revision": "3"}, headers=h)
    assert bad.status_code == 422


def test_publish_checks_the_draft_once_while_other_rules_change(ws: Any, monkeypatch: Any) -> None:
    """The check ran inside the publish's WATCH on the workspace's rules: any rule change during
    it (up to 10 s of CPU for a big rule) ran the whole check again. Now it runs before the
    transaction, once; the transaction only asks whether the draft is still what was checked."""
    import orjson

    from server.api import drafts as api_drafts
    from server.store import keys as K

    c, h = ws.client, ws.h("manager")
    rid, other = ws.rule(**RULE)["id"], ws.rule(**{**RULE, "name": "Other"})["id"]
    c.put(f"/v1/rules/{rid}/draft", json=EDITED, headers=h)
    checked: list[Any] = []
    real = api_drafts.problems_of

    async def check(ctx: Any, content: Any, prefix: str = "") -> Any:
        checked.append(content)
        rules = ctx.store.redis
        raw = orjson.loads(await rules.hget(K.rules(ws.id), other))
        raw["updated_at"] = f"2026-01-01T00:00:0{len(checked)}Z"   # another rule changes meanwhile
        await rules.hset(K.rules(ws.id), other, orjson.dumps(raw).decode())
        return await real(ctx, content, prefix)

    monkeypatch.setattr(api_drafts, "problems_of", check)
    pub = c.post(f"/v1/rules/{rid}/draft/publish", headers=h)
    assert pub.status_code == 200, pub.text
    assert len(checked) == 1 and pub.json()["actions"] == EDITED["actions"]


def test_a_draft_changed_during_its_check_is_checked_again_before_it_is_published(
        ws: Any, monkeypatch: Any) -> None:
    """What is published is what was checked: a draft saved again while the publish checked the
    earlier one is checked in its turn (an invalid one would otherwise go live unchecked)."""
    import orjson

    from server.api import drafts as api_drafts
    from server.store import keys as K

    c, h = ws.client, ws.h("manager")
    rid = ws.rule(**RULE)["id"]
    c.put(f"/v1/rules/{rid}/draft", json=EDITED, headers=h)
    later = {**EDITED, "actions": [{"type": "add_tags", "tags": ["later"]}]}
    checked: list[Any] = []
    real = api_drafts.problems_of

    async def check(ctx: Any, content: Any, prefix: str = "") -> Any:
        checked.append(content["actions"])
        if len(checked) == 1:   # the draft is saved again while its first check runs
            draft = orjson.loads(await ctx.store.redis.hget(K.rule_drafts(ws.id), rid))
            draft["rule"] = later
            await ctx.store.redis.hset(K.rule_drafts(ws.id), rid, orjson.dumps(draft).decode())
        return await real(ctx, content, prefix)

    monkeypatch.setattr(api_drafts, "problems_of", check)
    pub = c.post(f"/v1/rules/{rid}/draft/publish", headers=h)
    assert pub.status_code == 200, pub.text
    assert checked == [EDITED["actions"], later["actions"]]
    assert pub.json()["actions"] == later["actions"]
