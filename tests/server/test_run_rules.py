"""A run record's `rules` are stored packed and expanded when read (server/store/run_rules.py):
with each rule as it stood at the revision the event ran under, whatever happened to it since."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from server.store import keys as K
from server_helpers import Workspace


def _rules_of(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    r = ws.client.get(f"/v1/runs/{run_id}", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    return list(r.json()["rules"])


def _event(n: int, **ticket: Any) -> dict[str, Any]:
    return {"id": f"E{n}", "type": "ticket.updated", "ticket": {"id": "T-1", **ticket}}


def test_a_run_shows_its_rules_as_they_were_after_they_change_and_go(ws: Workspace) -> None:
    vip = ws.rule(name="VIP desk", triggers=["ticket.updated"],
                  conditions={"all": [{"field": "priority", "op": "is", "value": "urgent"},
                                      {"any": [{"field": "subject", "op": "contains", "value": "refund"},
                                               {"field": "channel", "op": "is", "value": "chat"}]}]},
                  actions=[{"type": "add_tags", "tags": ["vip"]}])
    tagger = ws.rule(name="tag billing", triggers=["ticket.updated"],
                     conditions={"all": [{"field": "subject", "op": "contains", "value": "invoice"}]},
                     actions=[{"type": "add_tags", "tags": ["billing"]}])
    out = ws.send(_event(1, subject="Refund please", priority="low", channel="email"))
    before = _rules_of(ws, out["run_id"])
    assert [e["name"] for e in before] == ["VIP desk", "tag billing"]
    assert before[0]["failed"] == {"path": "conditions.all[0]", "field": "priority", "op": "is",
                                   "value": "urgent", "seen": "low"}
    assert before[1]["failed"]["seen"] == "Refund please" and before[1]["revision"] == 1
    # the rules change (another condition, another name) and one is deleted
    r = ws.client.put(f"/v1/rules/{vip['id']}", headers=ws.h("manager"), json={
        "name": "VIP desk v2", "triggers": ["ticket.updated"],
        "conditions": {"all": [{"field": "channel", "op": "is", "value": "phone"}]},
        "actions": [{"type": "add_tags", "tags": ["vip"]}]})
    assert r.status_code == 200, r.text
    assert ws.client.delete(f"/v1/rules/{tagger['id']}", headers=ws.h("manager")).status_code == 204
    assert _rules_of(ws, out["run_id"]) == before
    # a new event runs under the new revision, and its record says so
    out2 = ws.send(_event(2, subject="Refund please", priority="low", channel="email"))
    after = _rules_of(ws, out2["run_id"])
    assert [(e["name"], e["revision"]) for e in after] == [("VIP desk v2", 2)]
    assert after[0]["failed"]["field"] == "channel" and after[0]["failed"]["seen"] == "email"
    # the listings expand the same way
    items = ws.client.get("/v1/tickets/T-1/runs", headers=ws.h("viewer")).json()["items"]
    assert [it["rules"] for it in items] == [after, before]


def test_a_fired_rule_shows_the_any_branch_that_held(ws: Workspace) -> None:
    ws.rule(name="chatty refunds", triggers=["ticket.updated"],
            conditions={"all": [{"field": "priority", "op": "is", "value": "urgent"},
                                {"any": [{"field": "subject", "op": "contains", "value": "refund"},
                                         {"field": "channel", "op": "is", "value": "chat"}]}]},
            actions=[{"type": "add_tags", "tags": ["x"]}])
    out = ws.send(_event(1, subject="hello", priority="urgent", channel="chat"))
    [entry] = _rules_of(ws, out["run_id"])
    assert entry["matched"] is True and entry["failed"] is None
    assert entry["any_held"] == {"conditions.all[1]": "conditions.all[1].any[1]"}


# --- the store: what is kept, and records whose rule has no stored revision -----------------------

RULE = {"id": "r1", "name": "vip only", "enabled": True, "position": 1, "triggers": ["ticket.updated"],
        "conditions": {"all": [{"field": "tags", "op": "includes", "value": "vip"}]},
        "actions": [{"type": "add_tags", "tags": ["b"]}]}


async def _one_run(settings: Any) -> tuple[Any, str, str]:
    from server.store import catalog, events
    from server.store.connect import open_store
    from server.worker import Worker

    store = await open_store(settings)
    ws, _ = await catalog.create_workspace(store, "w")
    # written as older versions did: no revisions (the rule cache counts it as revision 1)
    await store.redis.hset(K.rules(ws["id"]), RULE["id"], orjson.dumps(RULE))
    await store.redis.incr(K.rules_rev(ws["id"]))
    await events.ensure_groups(store)
    await events.append_events(store, ws["id"], [{**_event(1, tags=["plain"]), "occurred_at": "2026-11-23T08:00:00Z"}])
    await Worker(store=store, burst=True).run()
    marker = orjson.loads(await store.redis.get(K.event_marker(ws["id"], "E1")))
    return store, ws["id"], marker["run_id"]


@pytest.mark.anyio
async def test_the_stored_rules_are_packed_and_a_rule_without_revisions_reads_as_stored(settings: Any) -> None:
    from server.store import runs
    from server.store.connect import close_store

    store, ws, run_id = await _one_run(settings)
    try:
        raw = orjson.loads(await store.redis.get(K.run(ws, run_id)))
        [packed] = raw["rules"]
        assert packed["packed"] == 1 and packed["ids"] == ["r1"] and packed["revs"] == [1]
        run = await runs.get_run(store, ws, run_id)
        assert run is not None
        assert run["rules"] == [{"id": "r1", "name": "vip only", "matched": False, "revision": 1,
                                 "failed": {"path": "conditions.all[0]", "field": "tags", "op": "includes",
                                            "value": "vip", "seen": ["plain"]}}]
    finally:
        await close_store(store)


@pytest.mark.anyio
async def test_a_rule_whose_revision_is_gone_says_so_and_the_read_does_not_fail(settings: Any) -> None:
    from server.store import runs
    from server.store.connect import close_store

    store, ws, run_id = await _one_run(settings)
    try:
        await store.redis.hset(K.rules(ws), "r1", orjson.dumps({**RULE, "revision": 5}))
        run = await runs.get_run(store, ws, run_id)
        assert run is not None
        [entry] = run["rules"]
        assert entry["id"] == "r1" and entry["matched"] is False and entry["failed"] is None
        assert entry["notes"] == ["revision 1 of rule r1 is not stored: its entry cannot be shown"]
    finally:
        await close_store(store)


@pytest.mark.anyio
async def test_a_rule_put_as_it_is_gets_a_revision_so_an_edit_does_not_take_its_number(settings: Any) -> None:
    from server.store import catalog, revisions
    from server.store.connect import close_store, open_store

    store = await open_store(settings)
    try:
        ws, _ = await catalog.create_workspace(store, "w")
        await catalog.put_rule(store, ws["id"], RULE)
        await catalog.put_rule(store, ws["id"], {**RULE, "name": "renamed"})
        assert await revisions.count(store, ws["id"], revisions.RULE, "r1") == 2
        first = await revisions.get(store, ws["id"], revisions.RULE, "r1", 1)
        assert first is not None and first["rule"]["name"] == "vip only"
        [rule] = (await revisions.read_all(store.redis, ws["id"], revisions.RULE)).values()
        assert rule["name"] == "renamed" and rule["revision"] == 2
    finally:
        await close_store(store)
