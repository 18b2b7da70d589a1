"""Store layout and the embedded store's snapshot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from server_helpers import ROOT_TOKEN, Workspace, event
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from server.store import keys as K
from server.store.connect import close_store, open_store

pytestmark = pytest.mark.anyio


def _slot_tag(key: str) -> str | None:
    m = re.search(r"{([^}]*)}", key)
    return m.group(1) if m else None


def test_workspace_keys_share_one_hash_slot() -> None:
    w = "ws_1"
    per_ws = [K.ws_meta(w), K.ws_keys(w), K.rules(w), K.rules_rev(w), K.groups(w),
              K.contact(w, "C"), K.contact_tickets(w, "C"), K.ticket(w, "T"), K.tickets(w),
              K.tickets_seq(w), K.ticket_runs(w, "T"), K.run(w, "R"), K.rule_runs(w, "r"), K.event_marker(w, "E"),
              K.feed(w)]
    assert {_slot_tag(k) for k in per_ws} == {"ws:ws_1"}
    assert _slot_tag(K.stream(3)) == _slot_tag(K.lease(3)) == "q:3"
    assert K.partition_of(w, "T-1", 16) == K.partition_of(w, "T-1", 16)
    assert {K.partition_of(w, f"T-{i}", 16) for i in range(200)} == set(range(16))


@pytest.mark.parametrize("engine", ["auto", "none"])  # managed redis-server; fakeredis snapshot
def test_snapshot_keeps_everything_across_restart(tmp_path: Path, engine: str) -> None:
    settings = Settings(data_file=str(tmp_path / "data.json"), root_token=ROOT_TOKEN,
                        partitions=2, block_ms=50, embedded_server=engine)
    with TestClient(create_app(settings, worker=True)) as c:
        ws = Workspace(c)
        rule = ws.rule(name="t", triggers=["ticket.created"],
                       actions=[{"type": "add_tags", "tags": ["x"]}])
        ws.send(event("e1"))
        ws.client.put("/v1/contacts/C-1/groups", json={"groups": ["vip"]}, headers=ws.h())
        keys = dict(ws.keys)
    if engine == "none":
        assert (tmp_path / "data.json").exists()
    else:  # the managed server's append-only file, no snapshot
        assert (tmp_path / "data").is_dir() and not (tmp_path / "data.json").exists()
    # restart: API only (no worker), so a queued event stays queued through the next snapshot
    with TestClient(create_app(settings)) as c:
        h = {"Authorization": f"Bearer {keys['admin']}"}
        assert c.get(f"/v1/rules/{rule['id']}", headers=h).json()["name"] == "t"
        assert c.get("/v1/tickets/T-1", headers=h).json()["tags"] == ["x"]
        assert c.post("/v1/events", json=event("e1"), headers=h).json()["status"] == "duplicate"
        assert c.post("/v1/events", json=event("e2", tid="T-2"), headers=h).json()["status"] == "queued"
    with TestClient(create_app(settings, worker=True)) as c:
        h = {"Authorization": f"Bearer {keys['ingest']}"}
        out = c.post("/v1/events?wait=true", json=event("e2", tid="T-2"), headers=h).json()
        assert out["status"] == "duplicate" and out["ticket"]["tags"] == ["x"]
        assert c.get("/v1/contacts/C-1", headers={"Authorization": f"Bearer {keys['admin']}"}
                     ).json()["groups"] == ["vip"]


async def test_snapshot_restores_pending_entries(tmp_path: Path) -> None:
    """An entry delivered to a worker but not acknowledged at shutdown is delivered again."""
    settings = Settings(data_file=str(tmp_path / "d.json"), partitions=1, embedded_server="none")
    store = await open_store(settings)
    await store.redis.xgroup_create(K.stream(0), K.GROUP, id="0", mkstream=True)
    for i in range(3):
        await store.redis.xadd(K.stream(0), {"n": str(i)})
    got = await store.redis.xreadgroup(K.GROUP, "a", {K.stream(0): ">"}, count=2)
    await store.redis.xack(K.stream(0), K.GROUP, got[0][1][0][0])
    await store.redis.set("df:x", "1", ex=100)
    await close_store(store)
    store = await open_store(settings)
    try:
        again = await store.redis.xreadgroup(K.GROUP, "b", {K.stream(0): ">"}, count=10)
        assert [f["n"] for _, f in again[0][1]] == ["1", "2"]
        assert 0 < await store.redis.ttl("df:x") <= 100
    finally:
        await close_store(store)
