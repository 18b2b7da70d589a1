"""The one-time build of the contact indexes for contacts stored before they existed (issue 19):
bounded steps in the background, never one request's unbounded scan, and never felt by another
workspace. On both stores; the contacts are written the way an older version wrote them (the
record and keys.contacts, no index)."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
from server_helpers import Workspace, event
from starlette.testclient import TestClient

from server.store import directory
from server.store import keys as K

P99_MS = 100.0   # as tests/server/test_tenant_isolation.py


def _store(client: TestClient) -> Any:
    return client.app_state["store"]


def _seed_old_contacts(client: TestClient, workspace: str, n: int, vip_every: int = 3) -> int:
    """n contacts as an older version stored them; returns how many are in `vip`."""
    store = _store(client)

    async def seed() -> None:
        await store.redis.delete(K.index_build(workspace))   # a workspace of an older version
        for start in range(0, n, 5000):
            async with store.redis.pipeline(transaction=False) as p:
                for i in range(start, min(n, start + 5000)):
                    cid = f"C-{i:06d}"
                    groups = ["VIP"] if i % vip_every == 0 else ["trial"]
                    p.set(K.contact(workspace, cid), orjson.dumps(
                        {"id": cid, "email": f"{cid}@example.com", "name": cid, "groups": groups,
                         "custom": {}}))
                    p.sadd(K.contacts(workspace), cid)
                await p.execute()

    client.portal.call(seed)  # type: ignore[union-attr]
    return len(range(0, n, vip_every))


def _all_ids(ws: Workspace, query: str) -> list[str]:
    ids: list[str] = []
    cursor = ""
    while True:
        extra = f"&{query}" if query else ""
        r = ws.client.get(f"/v1/contacts?limit=500{extra}{cursor}", headers=ws.h("viewer"))
        assert r.status_code == 200, r.text
        ids += [c["id"] for c in r.json()["items"]]
        if not r.json()["next"]:
            return ids
        cursor = f"&cursor={r.json()['next']}"


def _victim_ms(client: TestClient, b: Workspace, n: int = 120) -> list[float]:
    took: list[float] = []
    for i in range(n):
        path = "/v1/contacts?group=vip" if i % 2 else "/v1/tickets?limit=5"
        t = time.perf_counter()
        r = client.get(path, headers=b.h("viewer"))
        took.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
    return sorted(took)


def _p99(sorted_ms: list[float]) -> float:
    return sorted_ms[int(len(sorted_ms) * 0.99) - 1]


def test_a_small_old_workspace_is_indexed_by_its_first_listing(ws: Workspace) -> None:
    vip = _seed_old_contacts(ws.client, ws.id, 300)
    r = ws.client.get("/v1/contacts?group=vip&limit=500", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == vip
    assert len(_all_ids(ws, "group=trial")) == 300 - vip
    assert len(_all_ids(ws, "")) == 300


def test_writes_between_steps_leave_the_index_right(ws: Workspace) -> None:
    """A contact changed by PUT or by an event mid-build, whether its step ran already or not,
    ends in the groups it has now."""
    _seed_old_contacts(ws.client, ws.id, 1500, vip_every=1)
    store = _store(ws.client)
    portal = ws.client.portal
    assert portal is not None

    async def take_lease() -> bool:
        return bool(await store.redis.set(K.index_build_lease(ws.id), "me", nx=True, px=60_000))

    assert portal.call(take_lease)
    assert portal.call(directory.build_step, store, ws.id, "someone else", 500) is False
    assert portal.call(directory.build_progress, store, ws.id) == {"done": False, "indexed": 0}
    assert portal.call(directory.build_step, store, ws.id, "me", 500) is False
    assert 0 < portal.call(directory.build_progress, store, ws.id)["indexed"] < 1500
    changed = [f"C-{i:06d}" for i in range(0, 1500, 100)]
    for n, cid in enumerate(changed):
        if n % 2:
            r = ws.client.put(f"/v1/contacts/{cid}/groups", json={"groups": ["gold"]},
                              headers=ws.h("manager"))
            assert r.status_code == 200
        else:
            ws.send(event(f"e{n}", tid=f"T-{n}", ticket={"contact": {"id": cid, "groups": ["gold"]}}))
    # the listing answers 503 while the lease is held elsewhere, naming the progress
    r = ws.client.get("/v1/contacts?group=vip", headers=ws.h("viewer"))
    assert r.status_code == 503 and r.json()["error"]["code"] == "index_building"
    assert r.headers["Retry-After"] == "1" and r.json()["error"]["details"]["indexed"] > 0
    while not portal.call(directory.build_step, store, ws.id, "me", 500):
        pass
    vip = set(_all_ids(ws, "group=vip"))
    assert vip == {f"C-{i:06d}" for i in range(1500)} - set(changed)
    assert sorted(_all_ids(ws, "group=gold")) == changed
    assert len(_all_ids(ws, "")) == 1500


def test_a_huge_first_listing_does_not_slow_another_workspace(client: TestClient) -> None:
    """Workspace A has 20,000 contacts from an older version and lists them for the first time;
    meanwhile workspace B's listings keep their latency."""
    a, b = Workspace(client, "big-old"), Workspace(client, "victim")
    vip = _seed_old_contacts(client, a.id, 20_000)
    for n in range(20):
        b.send(event(f"b{n}", tid=f"T-{n}", ticket={"contact": {"id": f"B-{n}", "groups": ["vip"]}}))
    a.h("viewer"), b.h("viewer")
    base = _victim_ms(client, b)
    t0 = time.perf_counter()
    first = client.get("/v1/contacts?group=vip", headers=a.h("viewer"))
    first_s = time.perf_counter() - t0
    assert first.status_code == 503 and first.json()["error"]["code"] == "index_building", first.text
    assert first_s < 1.0, f"the first listing took {first_s:.2f} s: its work is not bounded"

    answers: list[int] = []
    done = threading.Event()

    def attacker() -> None:   # A polls its listing until the build is done
        while not done.is_set():
            status = client.get("/v1/contacts?group=vip&limit=1", headers=a.h("viewer")).status_code
            answers.append(status)
            if status == 200:
                done.set()
            time.sleep(0.1)

    thread = threading.Thread(target=attacker)
    thread.start()
    try:
        took = _victim_ms(client, b)
        building_during_victim = not done.is_set()
    finally:
        done.wait(120)
        done.set()
        thread.join()
    base = sorted(base + _victim_ms(client, b))   # alone, before and after the build
    p99, base_p99 = _p99(took), _p99(base)
    print(f"victim p50/p99 ms: alone {base[len(base) // 2]:.1f}/{base_p99:.1f}, "
          f"during the build {took[len(took) // 2]:.1f}/{p99:.1f}")
    assert building_during_victim, "the build finished before the victim measured"
    # The house bound (100 ms), or twice what the victim sees alone when the shared machine is
    # slower than that by itself (measured in the same run).
    assert p99 < max(P99_MS, 2 * base_p99), (
        f"victim p99 {p99:.0f} ms while A's index was built (alone: {base_p99:.0f} ms)")
    assert answers[-1] == 200 and 503 in answers
    assert len(_all_ids(a, "group=vip")) == vip


def test_a_groups_count_reads_its_index_once_built(ws: Workspace) -> None:
    """GET /v1/groups/{name}'s `contacts` is one ZCARD once the indexes are complete (a new
    workspace's are from the start), not a pass over every contact."""
    assert ws.client.post("/v1/groups", json={"name": "vip"}, headers=ws.h("manager")).status_code == 201
    for n in range(3):
        ws.send(event(f"e{n}", tid=f"T-{n}", ticket={"contact": {"id": f"C-{n}", "groups": ["VIP"]}}))
    ws.client.put("/v1/contacts/C-0/groups", json={"groups": []}, headers=ws.h("manager"))
    store = _store(ws.client)
    real = store.redis.sscan_iter
    store.redis.sscan_iter = None   # a pass over keys.contacts would fail here
    try:
        r = ws.client.get("/v1/groups/vip", headers=ws.h("viewer"))
    finally:
        store.redis.sscan_iter = real
    assert r.status_code == 200 and r.json()["contacts"] == 2
