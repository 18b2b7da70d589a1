"""Hostile tenant vs the shared store: a workspace admin may allow-list an address literally
(`http://127.0.0.1:6379`), and the broker then connected a tenant's script or `http_request`
rule to the Redis every workspace lives in (Redis drops HTTP-looking clients, but the request
line reached it as a command: a defence of Redis's, not ours). The broker now refuses the
store's own endpoints like the API's. The embedded store listens on a unix socket only, and no
URL form the broker takes names one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from server_helpers import Workspace
from testkit import SERVE_POLL_S


class _ToStore(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(302)
        self.send_header("Location", "http://127.0.0.1:6379/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[str]:
    """An allow-listed origin that redirects every request to the store's port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ToStore)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SERVE_POLL_S},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()

PROBE = '''
def run(event, ticket, ctx):
    seen = []
    for url in ctx.vars.get("urls") or URLS:
        try:
            seen.append([url, ctx.http.get(url, timeout=2).status_code])
        except Exception as exc:
            seen.append([url, str(exc)[:200]])
    return {"custom": {"seen": seen}}
'''

STORE_URLS = ["http://127.0.0.1:6379/", "http://localhost:6379/", "http://[::1]:6379/"]
OTHER_FORMS = ["unix:///tmp/redis.sock", "http+unix://%2Ftmp%2Fredis.sock/", "redis://127.0.0.1:6379",
               "http://2130706433:6379/", "http://0x7f.1:6379/", "http://0177.0.0.1:6379/",
               "http://127.1:6379/", "http://[::ffff:127.0.0.1]:6379/", "http://0.0.0.0:6379/"]


def _try(ws: Workspace, urls: list[str]) -> list[dict[str, Any]]:
    source = f"URLS = {urls!r}\n" + PROBE
    r = ws.client.post("/v1/scripts", json={"name": "probe", "source": source}, headers=ws.h("admin"))
    assert r.status_code == 201, r.text
    r = ws.client.post("/v1/scripts/probe/test", headers=ws.h("developer"), json={
        "event": {"id": "e-1", "type": "ticket.created", "ticket": {"id": "T-1"}}})
    assert r.status_code == 200, r.text
    calls = r.json()["http_calls"]
    assert [c["url"] for c in calls if "status" not in c] == urls, calls   # one ending per URL
    return [c for c in calls if "status" not in c]


@pytest.mark.redis
@pytest.mark.parametrize("store_kind", ["redis"], indirect=False)
def test_an_allow_listed_store_address_is_refused(ws: Workspace, store_kind: str) -> None:
    hosts = ["http://127.0.0.1:6379", "http://localhost:6379", "http://[::1]:6379"]
    r = ws.client.put("/v1/allowlist", json={"hosts": hosts}, headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    for call in _try(ws, STORE_URLS):
        assert "own API or store" in (call.get("refused") or ""), call


@pytest.mark.parametrize("store_kind", ["embedded"], indirect=False)
def test_no_url_form_reaches_the_store(ws: Workspace, store_kind: str) -> None:
    """Schemes the broker has no use for, and the address spellings a parser might read as
    loopback: each refused before any connection (none is on the allow-list)."""
    r = ws.client.put("/v1/allowlist", json={"hosts": ["http://127.0.0.1:6379"]}, headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    for call in _try(ws, OTHER_FORMS):
        assert call.get("refused"), call
        assert "error" not in call, call   # refused before connecting, not failed after


@pytest.mark.redis
@pytest.mark.parametrize("store_kind", ["redis"], indirect=False)
def test_a_redirect_to_the_store_is_refused(ws: Workspace, store_kind: str, redirector: str) -> None:
    r = ws.client.put("/v1/allowlist", json={"hosts": [redirector, "http://127.0.0.1:6379"]},
                      headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    (call,) = _try(ws, [redirector + "/go"])   # the 302 hop is recorded, then the refusal
    assert "own API or store" in (call.get("refused") or ""), call
