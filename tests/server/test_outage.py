"""Redis goes away: 503 + Retry-After (nothing acknowledged that was not stored), then recovery."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import Workspace, event
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from testkit import free_port

pytestmark = [pytest.mark.redis,
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="needs the redis-server binary to start a private Redis")]


class RedisProcess:
    """A private redis-server with an append-only file, so data survives a restart."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    r = RedisProcess(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.stop()


def test_store_down_is_503_then_recovers(private_redis: RedisProcess) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{private_redis.port}/0", data_file=None,
                        root_token="test-root-token", partitions=2, block_ms=100)
    with TestClient(create_app(settings, worker=True)) as client:
        ws = Workspace(client)
        assert ws.send(event("e1"))["status"] == "processed"
        ws.key("viewer")
        private_redis.stop()
        for method, url, body in [("GET", "/v1/tickets/T-1", None), ("GET", "/v1/rules", None),
                                  ("POST", "/v1/events", event("e2", "ticket.updated"))]:
            r = client.request(method, url, json=body, headers=ws.h("ingest" if body else "viewer"))
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "1"
            assert r.json()["error"]["code"] == "store_unavailable"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        assert "deskflow_store_up 0" in client.get("/metrics").text
        private_redis.start()
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # the 503'd event was not acknowledged, so the client sends it again: applied once
        out = ws.send(event("e2", "ticket.updated", ticket={"status": "open"}))
        assert out["status"] in ("processed", "duplicate")
        ticket = client.get("/v1/tickets/T-1", headers=ws.h()).json()
        assert ticket["status"] == "open" and ticket["version"] == 2
