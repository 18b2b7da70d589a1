"""Red team, session 13, against the service: an admin's allow-list naming the unspecified
address (`http://0.0.0.0:6379`) put a tenant's script on the shared Redis store's port: a
connection to 0.0.0.0 reaches this machine's loopback, where the store listens, and the broker's
own-endpoint check compared 0.0.0.0 with 127.0.0.1 and let it through (Redis's cross-protocol
guard closed the connection: `RemoteProtocolError: Server disconnected`, a defence of Redis's,
not ours). tests/server/test_attack_store_reach.py tried 0.0.0.0 only off the allow-list."""

from __future__ import annotations

from typing import Any

import pytest
from server_helpers import Workspace

PROBE = '''
def run(event, ticket, ctx):
    seen = []
    for url in URLS:
        try:
            seen.append([url, ctx.http.get(url, timeout=2).status_code])
        except Exception as exc:
            seen.append([url, str(exc)[:200]])
    return {"custom": {"seen": seen}}
'''


def _calls(ws: Workspace, urls: list[str]) -> list[dict[str, Any]]:
    r = ws.client.post("/v1/scripts", json={"name": "probe", "source": f"URLS = {urls!r}\n" + PROBE},
                       headers=ws.h("admin"))
    assert r.status_code == 201, r.text
    r = ws.client.post("/v1/scripts/probe/test", headers=ws.h("developer"), json={
        "event": {"id": "e-1", "type": "ticket.created", "ticket": {"id": "T-1"}}})
    assert r.status_code == 200, r.text
    calls: list[dict[str, Any]] = r.json()["http_calls"]
    assert [c["url"] for c in calls] == urls, calls
    return calls


@pytest.mark.redis
@pytest.mark.parametrize("store_kind", ["redis"], indirect=False)
def test_an_allow_listed_unspecified_address_does_not_reach_the_store(ws: Workspace, store_kind: str) -> None:
    hosts = ["http://0.0.0.0:6379", "http://[::ffff:0.0.0.0]:6379"]
    r = ws.client.put("/v1/allowlist", json={"hosts": hosts}, headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    for call in _calls(ws, ["http://0.0.0.0:6379/", "http://[::ffff:0.0.0.0]:6379/"]):
        assert "own API or store" in (call.get("refused") or ""), call
        assert "error" not in call and "status" not in call, call   # never connected
