"""Slot discipline against a real cluster-mode Redis.

A single redis-server with cluster-enabled yes that owns all 16384 slots answers a plain client
(no MOVED), but still refuses any multi-key command or MULTI/EXEC whose keys span two hash slots
(CROSSSLOT). Running the whole service on it proves every atomic operation stays in one slot."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from server_helpers import Workspace, event
from testkit import free_cluster_port
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings

pytestmark = [pytest.mark.redis,
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="needs the redis-server binary to start a private Redis")]



@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[str]:
    port = free_cluster_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", str(tmp_path / "nodes.conf"), "--save", "", "--appendonly",
         "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        r.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        while r.cluster("info")["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "cluster did not become ok"
            time.sleep(0.05)
        with pytest.raises(redis.ResponseError, match="same slot"):
            r.mget("a", "b")  # the node does enforce slots
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        r.close()
        proc.terminate()
        proc.wait(10)


def test_service_on_a_cluster_mode_node(cluster_node: str) -> None:
    settings = Settings(redis_url=cluster_node, data_file=None, root_token="test-root-token",
                        partitions=4, block_ms=100)
    with TestClient(create_app(settings, worker=True)) as c:
        ws = Workspace(c)
        c.post("/v1/groups", json={"name": "seen"}, headers=ws.h())  # rules may add defined groups only
        rule = ws.rule(name="vip", triggers=["ticket.created", "ticket.updated"],
                       conditions={"all": [{"field": "contact.groups", "op": "includes",
                                            "value": "vip"}]},
                       actions=[{"type": "add_tags", "tags": ["vip"]},
                                {"type": "add_to_group", "group": "seen"}])
        c.put("/v1/rules/order", json={"ids": [rule["id"]]}, headers=ws.h())
        c.post(f"/v1/rules/{rule['id']}/disable", headers=ws.h())
        c.post(f"/v1/rules/{rule['id']}/enable", headers=ws.h())
        c.post("/v1/groups", json={"name": "vip"}, headers=ws.h())
        c.put("/v1/contacts/C-1/groups", json={"groups": ["vip"]}, headers=ws.h())
        batch = {"events": [event(f"e{i}", tid=f"T-{i % 5}",
                                  ticket={"contact": {"id": f"C-{i % 3}"}}) for i in range(30)]}
        assert c.post("/v1/events", json=batch, headers=ws.h("ingest")).status_code == 202
        out = ws.send(event("last", "ticket.updated", tid="T-1"))
        assert out["status"] == "processed"
        assert "vip" in out["ticket"]["tags"]
        for url in ("/v1/tickets?group=vip", "/v1/tickets/T-1/runs", "/v1/updates",
                    "/v1/rules", "/v1/groups/vip", "/v1/keys", f"/v1/runs/{out['run_id']}"):
            r = c.get(url, headers=ws.h())
            assert r.status_code == 200, (url, r.text)
        assert c.post(f"/v1/rules/{rule['id']}/test", json={"event": event("t")},
                      headers=ws.h()).status_code == 200
        assert "deskflow_store_up 1" in c.get("/metrics").text
        assert c.post("/v1/events?wait=true", json=event("e0", tid="T-0"),
                      headers=ws.h("ingest")).json()["status"] == "duplicate"
