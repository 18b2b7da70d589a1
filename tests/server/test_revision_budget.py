"""The bound on what a workspace's rule and SLA policy revisions hold (Settings.max_revision_bytes,
server/store/revisions.py): without it one manager key filled the store for every workspace --
a PATCH of a rule in a loop, or a reorder of many rules, writes a whole revision of each rule each
time, and revisions were never dropped. Past the bound a write first drops revisions no run
record can name any more (retired more than run_ttl_s + RETIRED_GRACE_S ago), oldest first, else
it is refused whole with 422 too_many_revision_bytes; deletes and disables always go through."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from server_helpers import Workspace
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from server.store import catalog
from server.store import keys as K
from server.store import revisions as R
from server.store.revisions import REVISION_OVERHEAD, RETIRED_GRACE_S

LIMIT = 80_000
RULE = {"name": "r", "enabled": True, "triggers": ["ticket.created"],
        "conditions": {"all": [{"field": "subject", "op": "contains", "value": "zzz-never"}]},
        "actions": [{"type": "add_tags", "tags": ["x"]}]}


@pytest.fixture
def small(settings: Settings) -> Iterator[TestClient]:
    """A service whose workspaces' revisions may hold LIMIT bytes."""
    with TestClient(create_app(dataclasses.replace(settings, max_revision_bytes=LIMIT))) as c:
        yield c


def _refused(r: Any) -> dict[str, Any]:
    assert r.status_code == 422, r.text[:500]
    err = r.json()["error"]
    assert err["code"] == "too_many_revision_bytes", err
    assert "DESKFLOW_MAX_REVISION_BYTES" in err["message"] and str(LIMIT) in err["message"]
    assert err["details"][0]["limit"] == LIMIT
    return dict(err)


def _held(c: TestClient, ws: str) -> int:
    store = c.app_state["store"]
    return int(c.portal.call(store.redis.get, K.revision_bytes(ws)) or 0)


def _stored(c: TestClient, ws: str) -> int:
    """What the workspace's revision hashes hold, counted as the bound counts it."""
    store = c.app_state["store"]

    async def total() -> int:
        n = 0
        async for key in store.redis.scan_iter(match=f"{K.revisions(ws, '*', '')}*"):
            for v in (await store.redis.hgetall(key)).values():
                n += len(v if isinstance(v, bytes) else v.encode()) + REVISION_OVERHEAD
        return n
    return int(c.portal.call(total))


def _fill(c: TestClient, ws: Workspace, rid: str) -> int:
    """PATCH rule `rid` until the bound refuses; the number of PATCHes that went through."""
    h = ws.h("manager")
    for i in range(1, 1000):
        r = c.patch(f"/v1/rules/{rid}", json={"description": f"edit {i} " + "d" * 3_000}, headers=h)
        if r.status_code != 200:
            _refused(r)
            return i - 1
    raise AssertionError("1,000 PATCHes of a 3 KB rule all went through a bound of 80 KB")


def test_a_workspaces_revisions_stop_at_the_bound_on_every_path(small: TestClient) -> None:
    c = small
    ws, other = Workspace(c, "attacker"), Workspace(c, "victim")
    h = ws.h("manager")
    rid = ws.rule(**RULE)["id"]
    made = _fill(c, ws, rid)
    assert 10 < made < 30, made
    assert LIMIT - 4 * 3_600 < _held(c, ws.id) <= LIMIT
    for i in range(10):   # the room a 3 KB edit did not fit, taken by small rules
        r = c.post("/v1/rules", json={**RULE, "name": f"small{i}"}, headers=h)
        if r.status_code != 201:
            _refused(r)
            break
    held = _held(c, ws.id)
    assert LIMIT - 1_000 < held <= LIMIT, held
    assert held == _stored(c, ws.id)   # the counter is exactly what the hashes hold
    # every path that writes a revision is refused now, whole
    _refused(c.post("/v1/rules", json={**RULE, "name": "new"}, headers=h))
    _refused(c.put(f"/v1/rules/{rid}", json={**RULE, "name": "put"}, headers=h))
    _refused(c.post(f"/v1/rules/{rid}/duplicate", headers=h))
    _refused(c.post(f"/v1/rules/{rid}/revisions/1/restore", headers=h))
    _refused(c.post("/v1/import", json={"deskflow": 1, "rules": [{**RULE, "name": "imp"}]}, headers=h))
    policy = {"name": "p", "targets": {"first_response": "1h"}}
    r = c.post("/v1/sla-policies", json=policy, headers=h)
    _refused(r)
    assert _held(c, ws.id) == held and c.get("/v1/rules", headers=h).json()["items"][0]["name"] == "r"
    # the other workspace has its own bound
    assert other.rule(**RULE)["name"] == "r"
    # a workspace can always stop a rule: disable, then delete, go through past the bound
    r = c.patch(f"/v1/rules/{rid}", json={"enabled": False}, headers=h)
    assert r.status_code == 200, r.text
    assert c.delete(f"/v1/rules/{rid}", headers=h).status_code == 204
    assert c.get(f"/v1/rules/{rid}/revisions", headers=h).json()["items"][0]["action"] == "delete"


def test_a_reorder_loop_stops_at_the_bound(small: TestClient) -> None:
    """One reorder writes a revision of every rule it moves: 8 rules of 2 KB alternating their
    order wrote ~16 KB a request without end."""
    c = small
    ws = Workspace(c)
    h = ws.h("manager")
    ids = [ws.rule(**{**RULE, "name": f"r{i}", "description": "d" * 2_000})["id"] for i in range(8)]
    for i in range(200):
        r = c.put("/v1/rules/order", json={"ids": ids[::-1] if i % 2 == 0 else ids}, headers=h)
        if r.status_code != 200:
            _refused(r)
            break
    else:
        raise AssertionError("200 reorders of 8 rules of 2 KB all went through a bound of 80 KB")
    assert i >= 2   # (each reorder moved all 8: ~21 KB of revisions)
    assert _stored(c, ws.id) == _held(c, ws.id) <= LIMIT


def _age(c: TestClient, ws: str, members: list[Any], seconds: float) -> None:
    """Mark retired revisions as retired `seconds` ago (instead of waiting 31 days)."""
    store = c.app_state["store"]
    at = int((time.time() - seconds) * 1000)
    c.portal.call(store.redis.zadd, K.revisions_retired(ws), {m: at for m in members})


def _retired(c: TestClient, ws: str) -> list[Any]:
    store = c.app_state["store"]
    return list(c.portal.call(store.redis.zrange, K.revisions_retired(ws), 0, -1))


def test_what_no_run_can_name_makes_room_oldest_first(small: TestClient, settings: Settings) -> None:
    c = small
    ws = Workspace(c)
    h = ws.h("manager")
    rid = ws.rule(**RULE)["id"]
    made = _fill(c, ws, rid)
    top = made + 1
    retired = _retired(c, ws.id)
    assert sorted(orjson.loads(m)[2] for m in retired) == list(range(1, top))
    # retired a day less than the run retention + grace ago: a run may still name them
    _age(c, ws.id, retired, settings.run_ttl_s + RETIRED_GRACE_S - 3600)
    _refused(c.patch(f"/v1/rules/{rid}", json={"description": "again " + "d" * 3_000}, headers=h))
    # the five oldest past it: they go, oldest first, as many as the write needs
    oldest = sorted(retired, key=lambda m: orjson.loads(m)[2])[:5]
    _age(c, ws.id, oldest, settings.run_ttl_s + RETIRED_GRACE_S + 3600)
    before = _held(c, ws.id)
    r = c.patch(f"/v1/rules/{rid}", json={"description": "again " + "d" * 3_000}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == top + 1   # numbered after the highest, not after how many are kept
    assert c.get(f"/v1/rules/{rid}/revisions/1", headers=h).status_code == 404
    assert c.get(f"/v1/rules/{rid}/revisions/{top}", headers=h).status_code == 200
    kept = [i["n"] for i in c.get(f"/v1/rules/{rid}/revisions?limit=500", headers=h).json()["items"]]
    gone = set(range(1, top + 2)) - set(kept)
    assert gone and gone <= {1, 2, 3, 4, 5} and min(kept) == max(gone) + 1
    assert _stored(c, ws.id) == _held(c, ws.id) <= LIMIT and _held(c, ws.id) < before + 3_700
    assert not {orjson.loads(m)[2] for m in _retired(c, ws.id)} & gone


def test_a_deleted_rule_recreated_under_its_id_numbers_after_what_is_kept(small: TestClient,
                                                                          settings: Settings) -> None:
    """The numbering of a new object under an id with history reads the highest number kept:
    with the oldest revisions dropped, HLEN + 1 would have written over a kept revision."""
    c = small
    ws = Workspace(c)
    store = c.app_state["store"]
    rule = {**RULE, "id": "fixed", "description": "d" * 3_000}
    for i in range(6):
        c.portal.call(catalog.put_rule, store, ws.id, {**rule, "name": f"v{i}"})
    assert c.delete("/v1/rules/fixed", headers=ws.h("manager")).status_code == 204   # revision 7
    _age(c, ws.id, _retired(c, ws.id)[:3], settings.run_ttl_s + RETIRED_GRACE_S + 3600)
    c.portal.call(store.redis.set, K.revision_bytes(ws.id), LIMIT)   # full: the next write makes room
    c.portal.call(catalog.put_rule, store, ws.id, {**rule, "name": "again"})
    items = c.get("/v1/rules/fixed/revisions", headers=ws.h("manager")).json()["items"]
    assert items[0]["n"] == 8 and items[0]["rule"]["name"] == "again"
    assert len({i["n"] for i in items}) == len(items)


def test_concurrent_writes_do_not_share_the_last_room(small: TestClient,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that read the counter with room for one more must not commit after another write
    took that room: the counter is watched. Rule writes already conflict on the rules hash; a rule
    write and an SLA policy write watch nothing else in common, so one is held between its check
    and its commit (a hook on the check) while the other commits."""
    c = small
    ws = Workspace(c)
    store = c.app_state["store"]
    c.portal.call(store.redis.set, K.revision_bytes(ws.id), LIMIT - 5_000)   # room for one
    by = {"key_id": None, "key_name": "test"}
    checked, go = asyncio.Event(), asyncio.Event()
    real = R._make_room

    async def held_after_check(pipe: Any, store_: Any, workspace: str, changes: Any) -> Any:
        out = await real(pipe, store_, workspace, changes)
        if changes[0].ident == "p" and not go.is_set():
            checked.set()
            await go.wait()
        return out

    monkeypatch.setattr(R, "_make_room", held_after_check)
    policy = {"name": "p", "description": "d" * 3_000, "position": 1}

    async def race() -> tuple[Any, Any]:
        slow = asyncio.ensure_future(R.write(store, ws.id, R.SLA, by,
                                             lambda current: [R.Change("p", dict(policy), None, "create")]))
        await checked.wait()
        try:
            await catalog.put_rule(store, ws.id, {**RULE, "id": "c", "description": "d" * 3_000})
            first: Any = "ok"
        except Exception as exc:
            first = exc
        go.set()
        try:
            await slow
            second: Any = "ok"
        except Exception as exc:
            second = exc
        return first, second

    first, second = c.portal.call(race)
    assert first == "ok", first
    assert getattr(second, "code", None) == "too_many_revision_bytes", second
    assert _held(c, ws.id) <= LIMIT
