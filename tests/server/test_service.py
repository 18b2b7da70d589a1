"""Service edges: metrics token, ?wait=true timing out, a poison stream entry."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from server_helpers import Workspace, event
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from server.store import catalog, events
from server.store import keys as K
from server.store.connect import close_store, open_store
from server.worker import Worker


def test_metrics_token_guards_health_and_metrics(settings: Settings) -> None:
    with TestClient(create_app(replace(settings, metrics_token="m-token"))) as c:
        for path in ("/metrics", "/healthz", "/readyz"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"Authorization": "Bearer m-token"}).status_code == 200
        assert c.get("/openapi.json").status_code == 200


def test_wait_times_out_as_queued(settings: Settings) -> None:
    with TestClient(create_app(replace(settings, wait_timeout_s=0.2))) as c:  # no worker
        ws = Workspace(c)
        r = c.post("/v1/events?wait=true", json=event("e1"), headers=ws.h("ingest"))
        assert r.status_code == 202 and r.json() == {"event_id": "e1", "status": "queued"}


@pytest.mark.anyio
async def test_poison_entry_does_not_stall_its_partition(settings: Settings) -> None:
    store = await open_store(replace(settings, partitions=1))
    try:
        ws, _ = await catalog.create_workspace(store, "w")
        await events.ensure_groups(store)
        await store.redis.xadd(K.stream(0), {"w": ws["id"], "e": "not json"})
        await store.redis.xadd(K.stream(0), {"w": ws["id"], "e": orjson.dumps(
            {"id": "bad", "type": "ticket.created"}).decode()})  # no ticket: cannot apply
        good = {"id": "good", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
                "ticket": {"id": "T-1"}}
        await events.append_events(store, ws["id"], [good])
        assert await Worker(store=store, burst=True).run() == 1
        assert (await events.get_marker(store, ws["id"], "good"))["status"] == "processed"
        assert await store.redis.xlen(K.stream(0)) == 0
    finally:
        await close_store(store)
