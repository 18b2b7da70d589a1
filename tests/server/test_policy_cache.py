"""The policy revision and the cached policy compiler (server/policy_cache.py), on both stores:
every writer of SLA policies and guard limits bumps the revision, the cache reads only when it
moves, never files specs under a revision that is not theirs, and keeps workspaces apart."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest
from server_helpers import Workspace

from server.guards import DEFAULT_LIMITS
from server.policy_cache import MAX_WORKSPACES, PolicyCache, read_policies
from server.settings import Settings
from server.store import guards as G
from server.store import keys as K
from server.store import revisions as R
from server.store import sla as S
from server.store.connect import Store, close_store, open_store

POLICY = {"name": "vip", "targets": {"first_response": "15m", "resolution": "8h"}}
HOURS = {"timezone": "UTC", "week": {"mon": ["09:00", "17:00"]}}
GUARDS = {"send_caps": [{"count": 3, "per": "5m"}], "generated_per_minute": 7}


def policy(name: str, minutes: int, position: int = 1) -> dict[str, Any]:
    return {"name": name, "targets": {"first_response": f"{minutes}m"}, "position": position}


def first_response(policies: list[Any]) -> dict[str, timedelta]:
    return {p.name: p.targets["first_response"] for p in policies if "first_response" in p.targets}


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    s = await open_store(settings)
    yield s
    await close_store(s)


def test_the_counter_lives_in_the_workspaces_slot() -> None:
    """So it rides in the load's MGET and in every writer's MULTI, on Redis Cluster too."""
    tags = {re.search(r"{([^}]*)}", key).group(1)  # type: ignore[union-attr]
            for key in (K.policy_rev("ws_1"), K.sla_policies("ws_1"), K.guards("ws_1"),
                        K.rules_rev("ws_1"))}
    assert tags == {"ws:ws_1"}


# -- the cache against the store ------------------------------------------------------------------


@pytest.mark.anyio
async def test_reads_once_per_revision_and_again_when_a_write_bumps_it(store: Store) -> None:
    cache = PolicyCache()
    assert await R.revision(store, "w1", R.SLA) == 0
    policies, limits = await cache.get(store, "w1", 0)
    assert policies == [] and limits == DEFAULT_LIMITS and cache.reads == 1
    await S.put_policy(store, "w1", policy("vip", 15))
    await S.put_policy(store, "w1", policy("basic", 60, position=2))
    rev = await R.revision(store, "w1", R.SLA)
    assert rev == 2
    for _ in range(3):
        policies, _ = await cache.get(store, "w1", rev)
    assert first_response(policies) == {"vip": timedelta(minutes=15), "basic": timedelta(hours=1)}
    assert [p.name for p in policies] == ["vip", "basic"]  # the order they are tried
    assert cache.reads == 2
    await G.put_spec(store, "w1", GUARDS)
    rev = await R.revision(store, "w1", R.SLA)
    assert rev == 3
    _, limits = await cache.get(store, "w1", rev)
    assert limits.generated_per_minute == 7 and limits.send_caps == ((3, timedelta(minutes=5)),)
    assert cache.reads == 3
    assert await G.delete_spec(store, "w1") and await S.delete_policy(store, "w1", "basic")
    rev = await R.revision(store, "w1", R.SLA)
    assert rev == 5
    policies, limits = await cache.get(store, "w1", rev)
    assert [p.name for p in policies] == ["vip"] and limits == DEFAULT_LIMITS and cache.reads == 4


@pytest.mark.anyio
async def test_a_stale_revision_never_files_new_specs_under_it(store: Store) -> None:
    cache = PolicyCache()
    await S.put_policy(store, "w1", policy("vip", 15))
    old = await R.revision(store, "w1", R.SLA)
    # a load read `old`; before its pass asks the cache, a manager saves the policy
    await S.put_policy(store, "w1", policy("vip", 5))
    new = await R.revision(store, "w1", R.SLA)
    policies, _ = await cache.get(store, "w1", old)
    assert first_response(policies) == {"vip": timedelta(minutes=5)}  # what a fresh read gives
    # ... and the entry is filed under the revision those specs have, not under `old`
    reads = cache.reads
    policies, _ = await cache.get(store, "w1", new)
    assert first_response(policies) == {"vip": timedelta(minutes=5)} and cache.reads == reads
    # the other way round: an entry at `new`, then a write the cache has not seen: the next load
    # reads the newer counter, and the cache does not answer it with what it holds
    await S.put_policy(store, "w1", policy("vip", 1))
    newer = await R.revision(store, "w1", R.SLA)
    policies, _ = await cache.get(store, "w1", newer)
    assert first_response(policies) == {"vip": timedelta(minutes=1)} and cache.reads == reads + 1


@pytest.mark.anyio
async def test_concurrent_writes_and_reads_never_serve_specs_older_than_the_revision(store: Store) -> None:
    """Writer: 60 saves of one policy, save k sets k minutes (revision = base + k). Readers: read
    the counter as a load does, then ask the cache: the specs served are never older than the
    revision read; at the end the cache serves the last save."""
    cache = PolicyCache()
    base = await R.revision(store, "w1", R.SLA)
    saves = 60
    done = asyncio.Event()
    served: list[tuple[int, int]] = []

    async def writer() -> None:
        for k in range(1, saves + 1):
            await S.put_policy(store, "w1", policy("vip", k))
            await asyncio.sleep(0)
        done.set()

    async def reader() -> None:
        while not done.is_set():
            rev = await R.revision(store, "w1", R.SLA)
            policies, _ = await cache.get(store, "w1", rev)
            minutes = int(policies[0].targets["first_response"].total_seconds() // 60) if policies else 0
            served.append((rev - base, minutes))

    await asyncio.gather(writer(), *(reader() for _ in range(4)))
    assert served and all(minutes >= saved for saved, minutes in served)
    final = await R.revision(store, "w1", R.SLA)
    assert final == base + saves
    policies, _ = await cache.get(store, "w1", final)
    assert first_response(policies) == {"vip": timedelta(minutes=saves)}


@pytest.mark.anyio
async def test_two_workspaces_at_the_same_revision_do_not_share_an_entry(store: Store) -> None:
    cache = PolicyCache()
    await S.put_policy(store, "wa", policy("vip", 15))
    await S.put_policy(store, "wb", policy("vip", 45))
    await G.put_spec(store, "wb", GUARDS)
    await S.delete_policy(store, "wa", "nothing")  # both at revision 2
    assert await R.revision(store, "wa", R.SLA) == await R.revision(store, "wb", R.SLA) == 2
    a, a_limits = await cache.get(store, "wa", 2)
    b, b_limits = await cache.get(store, "wb", 2)
    assert first_response(a) == {"vip": timedelta(minutes=15)} and a_limits == DEFAULT_LIMITS
    assert first_response(b) == {"vip": timedelta(minutes=45)} and b_limits.generated_per_minute == 7
    assert cache.reads == 2 and len(cache) == 2


@pytest.mark.anyio
async def test_concurrent_callers_share_one_read(store: Store) -> None:
    cache = PolicyCache()
    await S.put_policy(store, "w1", policy("vip", 15))
    results = await asyncio.gather(*(cache.get(store, "w1", 1) for _ in range(20)))
    assert cache.reads == 1 and all(r[0] is results[0][0] for r in results)


@pytest.mark.anyio
async def test_the_cache_keeps_at_most_its_bound_least_recently_used_first(store: Store) -> None:
    assert MAX_WORKSPACES == 1024
    cache = PolicyCache(max_workspaces=2)
    for w in ("wa", "wb", "wc"):
        await S.put_policy(store, w, policy("vip", 15))
    await cache.get(store, "wa", 1)
    await cache.get(store, "wb", 1)
    await cache.get(store, "wa", 1)   # wa used last: wb goes when wc comes
    await cache.get(store, "wc", 1)
    assert len(cache) == 2 and cache.reads == 3
    await cache.get(store, "wa", 1)
    assert cache.reads == 3
    await cache.get(store, "wb", 1)
    assert cache.reads == 4 and len(cache) == 2
    with pytest.raises(ValueError):
        PolicyCache(max_workspaces=0)


@pytest.mark.anyio
async def test_a_new_revision_compiles_only_the_policies_whose_definition_changed(store: Store) -> None:
    cache = PolicyCache()
    await S.put_policy(store, "w1", policy("a", 15, position=1))
    await S.put_policy(store, "w1", policy("b", 30, position=2))
    a, b = (await cache.get(store, "w1", 2))[0]
    await G.put_spec(store, "w1", GUARDS)                         # limits only
    await S.put_policy(store, "w1", policy("b", 30, position=1))  # a move only
    await S.put_policy(store, "w1", policy("a", 15, position=2))
    moved, limits = await cache.get(store, "w1", 5)
    assert moved == [b, a] and moved[0] is b and moved[1] is a and limits.generated_per_minute == 7
    await S.put_policy(store, "w1", policy("a", 20, position=2))
    changed, _ = await cache.get(store, "w1", 6)
    assert changed[0] is b and changed[1] is not a
    assert changed[1].targets["first_response"] == timedelta(minutes=20)


@pytest.mark.anyio
async def test_a_stored_spec_the_engine_refuses_is_left_out_and_logged(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    cache = PolicyCache()
    await S.put_policy(store, "w1", policy("vip", 15))
    await S.put_policy(store, "w1", {"name": "broken", "targets": {"first_response": "soon"},
                                     "position": 2})
    await store.redis.set(K.guards("w1"), orjson.dumps({"generated_per_minute": -1}))
    with caplog.at_level(logging.WARNING, logger="deskflow.worker"):
        policies, limits = await cache.get(store, "w1", 2)
    assert [p.name for p in policies] == ["vip"] and limits == DEFAULT_LIMITS
    assert "skipping invalid stored SLA policy broken" in caplog.text


@pytest.mark.anyio
async def test_the_read_is_one_snapshot_with_its_revision(store: Store) -> None:
    await S.put_policy(store, "w1", policy("b", 15, position=2))
    await S.put_policy(store, "w1", policy("a", 30, position=1))
    await G.put_spec(store, "w1", GUARDS)
    stored = await read_policies(store, "w1")
    assert stored.revision == 3 and [s["name"] for s in stored.specs] == ["a", "b"]
    assert stored.guard_spec is not None and orjson.loads(stored.guard_spec) == GUARDS


# -- every writer through the API bumps the revision ----------------------------------------------


def _writers(ws: Workspace) -> list[tuple[str, Callable[[], Any], Callable[[list[Any], Any], bool]]]:
    """(what, the write, what the cache must then serve) for every API path that writes SLA
    policies or guard limits, in an order where each one applies."""
    c, m, a = ws.client, ws.h("manager"), ws.h("admin")

    def names(*want: str) -> Callable[[list[Any], Any], bool]:
        return lambda policies, _: [p.name for p in policies] == list(want)

    def ok(r: Any) -> Any:
        assert r.status_code in (200, 201, 204), r.text
        return r

    return [
        ("create", lambda: ok(c.post("/v1/sla-policies", json=POLICY, headers=m)), names("vip")),
        ("create with hours", lambda: ok(c.post("/v1/sla-policies", json={
            "name": "office", "targets": {"resolution": "2h"}, "business_hours": HOURS},
            headers=m)), names("vip", "office")),
        ("update", lambda: ok(c.put("/v1/sla-policies/vip", json={
            **POLICY, "targets": {"first_response": "5m"}}, headers=m)),
         lambda ps, _: first_response(ps).get("vip") == timedelta(minutes=5)),
        ("order", lambda: ok(c.put("/v1/sla-policies/order", json={"names": ["office", "vip"]},
                                   headers=m)), names("office", "vip")),
        ("delete", lambda: ok(c.delete("/v1/sla-policies/vip", headers=m)), names("office")),
        ("restore", lambda: ok(c.post("/v1/sla-policies/vip/revisions/1/restore", headers=m)),
         lambda ps, _: first_response(ps).get("vip") == timedelta(minutes=15)),
        ("forced delete", lambda: (ws.rule(name="uses office", triggers=["ticket.created"],
                                           actions=[{"type": "apply_sla", "policy": "office"}]),
                                   ok(c.delete("/v1/sla-policies/office?force=true", headers=m))),
         names("vip")),
        ("import", lambda: ok(c.post("/v1/import", json={"deskflow": 1, "sla_policies": [
            {"name": "vip", "targets": {"first_response": "2m"}},
            {"name": "imported", "targets": {"resolution": "1d"}}]}, headers=a)),
         lambda ps, _: first_response(ps).get("vip") == timedelta(minutes=2)
         and "imported" in [p.name for p in ps]),
        ("guards set", lambda: ok(c.put("/v1/workspace/guards", json=GUARDS, headers=a)),
         lambda _, limits: limits.generated_per_minute == 7),
        ("guards reset", lambda: ok(c.delete("/v1/workspace/guards", headers=a)),
         lambda _, limits: limits == DEFAULT_LIMITS),
    ]


def _call(ws: Workspace) -> Any:
    """Run an async function on the app's event loop (where its store lives)."""
    assert ws.client.portal is not None
    return ws.client.portal.call


def test_every_api_writer_of_policies_or_limits_bumps_the_revision(ws: Workspace) -> None:
    store = ws.client.app_state["store"]
    cache = PolicyCache()
    call = _call(ws)
    assert call(cache.get, store, ws.id, 0) == ([], DEFAULT_LIMITS)
    for what, write, serves in _writers(ws):
        before = call(R.revision, store, ws.id, R.SLA)
        cached = call(cache.get, store, ws.id, before)  # warm at `before`
        reads = cache.reads
        write()
        after = call(R.revision, store, ws.id, R.SLA)
        assert after > before, f"{what} did not bump the policy revision"
        policies, limits = call(cache.get, store, ws.id, after)
        assert cache.reads == reads + 1, what
        assert serves(policies, limits), what
        assert (policies, limits) != cached, what


def test_a_write_that_changes_nothing_does_not_bump(ws: Workspace) -> None:
    c, m = ws.client, ws.h("manager")
    assert c.post("/v1/sla-policies", json=POLICY, headers=m).status_code == 201
    store = ws.client.app_state["store"]
    rev = _call(ws)(R.revision, store, ws.id, R.SLA)
    assert c.put("/v1/sla-policies/vip", json=POLICY, headers=m).status_code == 200
    assert c.put("/v1/sla-policies/order", json={"names": ["vip"]}, headers=m).status_code == 200
    bad = c.put("/v1/sla-policies/vip", json={**POLICY, "targets": {"first_response": "x"}}, headers=m)
    assert bad.status_code == 422
    assert _call(ws)(R.revision, store, ws.id, R.SLA) == rev
