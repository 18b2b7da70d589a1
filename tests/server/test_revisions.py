"""Rule and SLA policy revisions (issue 8 part 1): every change is an immutable revision naming who
and when; revisions are listed newest first, read one by one, restored as a new revision, and
outlive a deleted rule."""

from __future__ import annotations

from typing import Any

import pytest

from server_helpers import event

RULE = {"name": "Refunds", "triggers": ["ticket.created"],
        "conditions": {"all": [{"field": "subject", "op": "contains", "value": "refund"}]},
        "actions": [{"type": "add_tags", "tags": ["refund"]}]}
POLICY = {"name": "vip", "targets": {"first_response": "15m", "resolution": "8h"}}


def revs(ws: Any, rule_id: str, **params: Any) -> Any:
    r = ws.client.get(f"/v1/rules/{rule_id}/revisions", params=params, headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    return r.json()


def test_every_kind_of_change_is_a_revision_with_who_and_when(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    rule = c.post("/v1/rules", json=RULE, headers=h).json()
    rid = rule["id"]
    assert rule["revision"] == 1
    c.post(f"/v1/rules/{rid}/enable", headers=h)
    c.post(f"/v1/rules/{rid}/disable", headers=h)
    c.patch(f"/v1/rules/{rid}", json={"name": "Refunds, renamed"}, headers=h)
    put = c.put(f"/v1/rules/{rid}", json={**RULE, "name": "Refunds, renamed", "stop": True}, headers=h)
    assert put.json()["revision"] == 5
    other = c.post("/v1/rules", json={**RULE, "name": "other"}, headers=h).json()
    c.put("/v1/rules/order", json={"ids": [other["id"], rid]}, headers=h)
    items = revs(ws, rid)["items"]
    assert [r["n"] for r in items] == [6, 5, 4, 3, 2, 1]
    assert [r["action"] for r in items] == ["reorder", "update", "rename", "disable", "enable", "create"]
    assert all(r["by"]["key_name"] == "manager key" and r["by"]["key_id"].startswith("key_") for r in items)
    assert all(r["at"].endswith("Z") for r in items)
    assert items[0]["rule"]["position"] == 2 and items[3]["rule"]["enabled"] is False
    assert items[2]["rule"]["name"] == "Refunds, renamed" and items[5]["rule"]["name"] == "Refunds"
    # the rule's revision counter is the number of its latest revision
    assert c.get(f"/v1/rules/{rid}", headers=h).json()["revision"] == 6
    # the other rule moved from 2 to 1: its own reorder revision
    assert [r["action"] for r in revs(ws, other["id"])["items"]] == ["reorder", "create"]
    one = c.get(f"/v1/rules/{rid}/revisions/3", headers=ws.h("viewer")).json()
    assert one == items[3]
    assert c.get(f"/v1/rules/{rid}/revisions/99", headers=h).status_code == 404
    assert c.get(f"/v1/rules/{rid}/revisions/x", headers=h).status_code == 404


def test_a_change_that_changes_nothing_is_no_revision(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    rule = c.post("/v1/rules", json=RULE, headers=h).json()
    c.post(f"/v1/rules/{rule['id']}/disable", headers=h)  # already disabled
    c.put(f"/v1/rules/{rule['id']}", json=RULE, headers=h)  # the same content
    c.put("/v1/rules/order", json={"ids": [rule["id"]]}, headers=h)  # the same place
    assert [r["n"] for r in revs(ws, rule["id"])["items"]] == [1]
    bad = c.patch(f"/v1/rules/{rule['id']}", json={"actions": []}, headers=h)
    assert bad.status_code == 422
    assert [r["n"] for r in revs(ws, rule["id"])["items"]] == [1]


def test_revisions_page_newest_first(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    rid = c.post("/v1/rules", json=RULE, headers=h).json()["id"]
    for i in range(4):
        c.patch(f"/v1/rules/{rid}", json={"name": f"n{i}"}, headers=h)
    first = revs(ws, rid, limit=2)
    assert [r["n"] for r in first["items"]] == [5, 4] and first["next"]
    second = revs(ws, rid, limit=2, cursor=first["next"])
    third = revs(ws, rid, limit=2, cursor=second["next"])
    assert [r["n"] for r in second["items"]] == [3, 2]
    assert [r["n"] for r in third["items"]] == [1] and third["next"] is None


def test_restore_makes_a_new_revision_and_the_worker_uses_it(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    rid = c.post("/v1/rules", json={**RULE, "enabled": True}, headers=h).json()["id"]
    c.patch(f"/v1/rules/{rid}", json={"actions": [{"type": "set", "field": "priority", "value": "high"}]},
            headers=h)
    assert ws.send(event("e1", ticket={"subject": "refund"}))["changes"] == {"priority": ["normal", "high"]}
    assert c.post(f"/v1/rules/{rid}/revisions/1/restore", headers=ws.h("viewer")).status_code == 403
    r = c.post(f"/v1/rules/{rid}/revisions/1/restore", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == 3 and r.json()["actions"] == RULE["actions"]
    latest = revs(ws, rid)["items"][0]
    assert latest["action"] == "restore" and latest["restored_from"] == 1 and latest["n"] == 3
    assert latest["rule"]["actions"] == RULE["actions"]
    out = ws.send(event("e2", tid="T-2", ticket={"subject": "refund"}))
    assert out["changes"] == {"tags": {"added": ["refund"], "removed": []}}


def test_deleted_rule_keeps_its_revisions_and_can_come_back(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    rid = c.post("/v1/rules", json=RULE, headers=h).json()["id"]
    c.patch(f"/v1/rules/{rid}", json={"name": "kept"}, headers=h)
    assert c.delete(f"/v1/rules/{rid}", headers=h).status_code == 204
    assert c.get(f"/v1/rules/{rid}", headers=h).status_code == 404
    items = revs(ws, rid)["items"]
    assert [(r["n"], r["action"]) for r in items] == [(3, "delete"), (2, "rename"), (1, "create")]
    assert items[0]["rule"]["name"] == "kept"
    assert c.post(f"/v1/rules/{rid}/revisions/3/restore", headers=h).status_code == 422
    back = c.post(f"/v1/rules/{rid}/revisions/2/restore", headers=h)
    assert back.status_code == 200, back.text
    assert back.json()["name"] == "kept" and back.json()["revision"] == 4
    assert c.get(f"/v1/rules/{rid}", headers=h).json()["name"] == "kept"
    assert c.get("/v1/rules/rule_nope/revisions", headers=h).status_code == 404


def test_sla_policy_revisions(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    assert c.post("/v1/sla-policies", json=POLICY, headers=h).json()["revision"] == 1
    c.put("/v1/sla-policies/vip", json={**POLICY, "targets": {"resolution": "4h"}}, headers=h)
    c.put("/v1/sla-policies/vip", json={**POLICY, "targets": {"resolution": "4h"}}, headers=h)  # same
    items = c.get("/v1/sla-policies/vip/revisions", headers=ws.h("viewer")).json()["items"]
    assert [(r["n"], r["action"]) for r in items] == [(2, "update"), (1, "create")]
    assert items[0]["policy"]["targets"] == {"resolution": "4h"} and items[0]["by"]["key_name"] == "manager key"
    one = c.get("/v1/sla-policies/vip/revisions/1", headers=ws.h("viewer")).json()
    assert one["policy"]["targets"] == POLICY["targets"]
    r = c.post("/v1/sla-policies/vip/revisions/1/restore", headers=h)
    assert r.status_code == 200 and r.json()["targets"] == POLICY["targets"] and r.json()["revision"] == 3
    assert c.delete("/v1/sla-policies/vip", headers=h).status_code == 204
    items = c.get("/v1/sla-policies/vip/revisions", headers=h).json()["items"]
    assert [r["action"] for r in items] == ["delete", "restore", "update", "create"]
    r = c.post("/v1/sla-policies/vip/revisions/2/restore", headers=h)
    assert r.status_code == 200 and r.json()["targets"] == {"resolution": "4h"} and r.json()["revision"] == 5
    assert c.get("/v1/sla-policies/vip", headers=h).json()["targets"] == {"resolution": "4h"}
    assert c.get("/v1/sla-policies/none/revisions", headers=h).status_code == 404


def test_concurrent_changes_get_consecutive_revisions(ws: Any) -> None:
    """Two writers racing on one rule: WATCH makes the loser read again, so no revision number is
    given twice and none is lost."""
    import threading

    c, h = ws.client, ws.h("manager")
    rid = c.post("/v1/rules", json=RULE, headers=h).json()["id"]
    errors: list[str] = []

    def writer(tag: str) -> None:
        for i in range(15):
            r = c.patch(f"/v1/rules/{rid}", json={"name": f"{tag}{i}"}, headers=h)
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    items = revs(ws, rid, limit=100)["items"]
    assert [r["n"] for r in items] == list(range(31, 0, -1))
    assert {r["rule"]["name"] for r in items[:-1]} == {f"{t}{i}" for t in "ab" for i in range(15)}
    assert c.get(f"/v1/rules/{rid}", headers=h).json()["revision"] == 31


@pytest.mark.anyio
async def test_a_change_raced_without_end_is_a_409_not_a_loop(settings: Any) -> None:
    """transact went round for as long as something else kept writing what it watches (a
    workspace saving its rules in a loop made its own other writes spin on the API's loop)."""
    from server.errors import Conflict
    from server.store import revisions as R
    from server.store.connect import close_store, open_store

    store = await open_store(settings)
    tries = 0
    try:
        await store.redis.delete("t:watched")

        async def build(p: Any) -> tuple[None, Any]:
            nonlocal tries
            tries += 1
            await p.get("t:watched")
            await store.redis.incr("t:watched")   # another writer, every time

            def writer(pipe: Any) -> None:
                pipe.set("t:mine", "1")

            return None, writer

        with pytest.raises(Conflict) as raised:
            await R.transact(store, ["t:watched"], build)
        assert tries == R.TRANSACT_TRIES and "TRANSACT_TRIES" in raised.value.message
        assert await store.redis.get("t:mine") is None
    finally:
        await store.redis.delete("t:watched", "t:mine")
        await close_store(store)
