"""Outbound HTTP through the service (issue 13 A4, B9, B11): deadlines on http_request actions and
webhook deliveries, one workspace's slow receiver not delaying another's, rule webhooks never
signed with the feed's secret, secrets bound to hosts, and no way into deskflow's own API.

Real servers on 127.0.0.1: the webhook receiver, the hostile servers of tests/sandbox, and for
the self-call test the service itself under uvicorn."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from server_helpers import ROOT_TOKEN, Workspace, event
from starlette.testclient import TestClient
from webhook_receiver import Receiver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sandbox"))
from hostile_servers import Slowloris  # noqa: E402

from sandbox import Broker, BrokerConfig, parse_allowlist  # noqa: E402
from server.app import create_app  # noqa: E402
from server.scripting import new_broker  # noqa: E402
from server.settings import Settings  # noqa: E402
from testkit import free_port

SECRET = "whsec-feed-77aa"


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return dataclasses.replace(settings, webhook_retry_base_s=0.2, webhook_retry_cap_s=1.0,
                               webhook_retry_for_s=60.0, webhook_poll_s=0.02, webhook_timeout_s=2.0)


@pytest.fixture
def app_client(fast: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(fast, worker=True)) as c:
        yield c


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _allow(ws: Workspace, *hosts: str) -> None:
    r = ws.client.put("/v1/allowlist", json={"hosts": list(hosts)}, headers=ws.h())
    assert r.status_code == 200, r.text


def _until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _deliveries(ws: Workspace, state: str | None = None) -> list[dict[str, Any]]:
    r = ws.client.get("/v1/webhook/deliveries" + (f"?state={state}" if state else ""), headers=ws.h())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


# -- A4: deadlines, and one workspace's slow receiver does not hold another's deliveries ----------

def test_an_http_request_to_a_slowloris_server_fails_at_the_deadline(app_client: TestClient) -> None:
    ws = Workspace(app_client)
    with Slowloris(interval=0.5) as slow:
        _allow(ws, slow.url)
        ws.rule(name="ask", triggers=["ticket.created"],
                actions=[{"type": "http_request", "url": slow.url + "/contacts", "map": {"x": "$.x"}}])
        started = time.monotonic()
        out = ws.send(event("slow-1"))
        took = time.monotonic() - started
        run = ws.client.get(f"/v1/runs/{out['run_id']}", headers=ws.h("viewer")).json()
    assert took < 20, took                           # the run's 5 s budget, not one read's timeout
    [call] = run["http_calls"]
    assert "timed out after" in call["error"] and "whole body" in call["error"], call


def test_a_slow_receiver_does_not_delay_another_workspaces_deliveries(app_client: TestClient, rx: Receiver) -> None:
    slow_ws, fast_ws = Workspace(app_client, "slowco"), Workspace(app_client, "fastco")
    with Slowloris(interval=0.5) as slow:
        _allow(slow_ws, slow.url)
        slow_ws.rule(name="hang", triggers=["ticket.created"],
                     actions=[{"type": "webhook", "url": slow.url + f"/hook{i}"} for i in range(5)])
        _allow(fast_ws, rx.url)
        fast_ws.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["x"]}])
        assert fast_ws.client.put("/v1/webhook", json={"url": rx.url, "secret": SECRET},
                                  headers=fast_ws.h()).status_code == 200
        slow_ws.send(event("s-1", tid="T-s"))
        _until(lambda: slow.accepted >= 1)           # the slow workspace's deliveries are hanging
        started = time.monotonic()
        fast_ws.send(event("f-1", tid="T-f"))
        [got] = rx.wait_for(1, timeout=10)
        assert time.monotonic() - started < 3, time.monotonic() - started   # never, before: the
        # outbox awaited the slow workspace's batch, whose per-read timeout never fired
        assert got.verify(SECRET)
        # the slow ones fail at the 2 s deadline and are retried, their connections closed
        failed = _until(lambda: [d for d in _deliveries(slow_ws) if d["attempts"] >= 1], timeout=20)
        assert "timed out after 2.0s" in failed[0]["last_error"], failed[0]
    assert _until(lambda: slow.open == 0, timeout=10)


# -- B9: the webhook secret signs the feed's own deliveries only ------------------------------------

def _feed_hook(ws: Workspace, rx: Receiver) -> None:
    _allow(ws, rx.url)
    assert ws.client.put("/v1/webhook", json={"url": rx.url, "secret": SECRET}, headers=ws.h()).status_code == 200


def test_a_managers_webhook_rule_cannot_forge_a_signed_feed_entry(app_client: TestClient, rx: Receiver) -> None:
    ws = Workspace(app_client)
    _feed_hook(ws, rx)
    forged = {"cursor": "9999999999999-0", "ticket_id": "T-1", "changes": {"status": ["open", "closed"]},
              "effects": [], "at": "2026-11-23T08:00:00Z"}
    ws.rule(name="forge", triggers=["ticket.created"],
            actions=[{"type": "webhook", "url": rx.url, "body": forged}])
    ws.send(event("b9-1"))
    got = rx.wait_for(2)
    feed = [r for r in got if r.headers["x-deskflow-delivery"].startswith("upd-")]
    effect = [r for r in got if r.headers["x-deskflow-delivery"].startswith("fx-")]
    assert len(feed) == 1 and len(effect) == 1
    assert feed[0].verify(SECRET)                               # the service's own entry: signed
    assert orjson.loads(effect[0].body) == forged
    assert not effect[0].verify(SECRET) and "x-deskflow-signature" not in effect[0].headers


@pytest.mark.parametrize("name", ["X-Deskflow-Signature", "x-deskflow-delivery", "X-DESKFLOW-Attempt",
                                  "X-Deskflow-Anything"])
def test_a_webhook_action_may_not_set_x_deskflow_headers(app_client: TestClient, name: str) -> None:
    ws = Workspace(app_client)
    for role in ("manager", "admin"):
        r = app_client.post("/v1/rules", headers=ws.h(role), json={
            "name": "forge", "triggers": ["ticket.created"],
            "actions": [{"type": "webhook", "url": "https://h.example.com/", "headers": {name: "sha256=00"}}]})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["path"] == f"actions[0].headers.{name}"


def test_a_scripts_webhook_with_x_deskflow_headers_is_dead_lettered_unsent(app_client: TestClient,
                                                                          rx: Receiver) -> None:
    """A script's returned actions are not a saved rule: the outbox refuses them at delivery."""
    ws = Workspace(app_client)
    _feed_hook(ws, rx)
    source = ("def run(event, ticket, ctx):\n    return {'actions': [{'type': 'webhook', 'url': %r, "
              "'headers': {'X-Deskflow-Signature': 'sha256=00'}, 'body': {'forged': True}}]}\n" % (rx.url + "/x"))
    assert app_client.post("/v1/scripts", json={"name": "forge", "source": source},
                           headers=ws.h("developer")).status_code == 201
    ws.rule(name="run", triggers=["ticket.created"], actions=[{"type": "run_script", "script": "forge"}])
    ws.send(event("b9-3"))
    [d] = _until(lambda: _deliveries(ws, "failed"))
    assert d["kind"] == "effect" and "X-Deskflow-* headers are the service's own" in d["last_error"]
    assert all(not r.path.startswith("/x") for r in rx.requests)


def test_only_an_admin_may_make_a_rule_send_a_secret(app_client: TestClient) -> None:
    ws = Workspace(app_client)
    sends = {"name": "ask", "triggers": ["ticket.created"],
             "actions": [{"type": "http_request", "url": "https://crm.example.com/x", "secret": "CRM"}]}
    r = app_client.post("/v1/rules", json=sends, headers=ws.h("manager"))
    assert r.status_code == 403 and r.json()["error"]["details"][0]["path"] == "actions[0]"
    templated = {**sends, "actions": [{"type": "webhook", "url": "https://h.example.com/",
                                       "headers": {"X-Key": "{{secret:CRM}}"}}]}
    assert app_client.post("/v1/rules", json=templated, headers=ws.h("manager")).status_code == 403
    made = app_client.post("/v1/rules", json=sends, headers=ws.h("admin"))
    assert made.status_code == 201
    rid = made.json()["id"]
    # a manager may still rename it, not point its secret elsewhere
    assert app_client.patch(f"/v1/rules/{rid}", json={"name": "renamed"}, headers=ws.h("manager")).status_code == 200
    moved = {**sends, "actions": [{**sends["actions"][0], "url": "https://evil.example/"}]}
    assert app_client.put(f"/v1/rules/{rid}", json=moved, headers=ws.h("manager")).status_code == 403
    doc = app_client.get("/v1/export", headers=ws.h("manager"))
    assert doc.status_code == 200, doc.text      # the import: the same change, the same answer
    body = doc.json()
    assert len(body["rules"]) == 1
    body["rules"] = [{**r, "actions": moved["actions"]} for r in body["rules"]]
    r = app_client.post("/v1/import", json=body, headers=ws.h("manager"))
    assert r.status_code == 403 and "rules." in r.json()["error"]["details"][0]["path"], r.text
    assert app_client.post("/v1/import", json=body, headers=ws.h("admin")).status_code == 200


def test_rule_checks_refuse_secrets_for_managers_and_x_deskflow_headers() -> None:
    from server.scripting import secret_use_problems, webhook_header_problems

    rule = {"actions": [
        {"type": "http_request", "url": "https://crm.example.com/x", "secret": "CRM"},
        {"type": "webhook", "url": "https://h.example.com/", "headers": {"X-Key": "{{ secret:CRM }}"}},
        {"type": "webhook", "url": "https://h.example.com/", "headers": {"x-deskflow-signature": "s"}},
        {"type": "add_tags", "tags": ["x"]}]}
    assert [p["path"] for p in secret_use_problems("manager", rule)] == ["actions[0]", "actions[1]"]
    assert secret_use_problems("admin", rule) == []
    assert [p["path"] for p in webhook_header_problems(rule)] == ["actions[2].headers.x-deskflow-signature"]
    # an admin's action kept as it was passes (rename, reorder); pointing it elsewhere does not
    assert secret_use_problems("manager", {"name": "renamed", **rule}, before=rule) == []
    moved = {"actions": [{**rule["actions"][0], "url": "https://evil.example/"}]}
    assert [p["path"] for p in secret_use_problems("manager", moved, before=rule)] == ["actions[0]"]
    assert secret_use_problems("manager", {"actions": [{"type": "webhook", "url": "https://h/"}]}) == []


# -- B11: secrets bound to hosts -------------------------------------------------------------------

def test_secrets_take_hosts_and_the_broker_keeps_them_there(app_client: TestClient, rx: Receiver) -> None:
    ws = Workspace(app_client)
    other = Receiver().__enter__()
    try:
        _allow(ws, rx.url, other.url)
        bad = ws.client.put("/v1/secrets/TOK", json={"value": "tok-1234", "hosts": ["127.1"]}, headers=ws.h())
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["path"] == "hosts[0]"
        bad = ws.client.put("/v1/secrets/TOK", json={"value": "tok-1234", "hosts": "x"}, headers=ws.h())
        assert bad.status_code == 422
        r = ws.client.put("/v1/secrets/TOK", json={"value": "tok-1234", "hosts": [rx.url]}, headers=ws.h())
        assert r.status_code == 201 and r.json() == {"name": "TOK", "hosts": [rx.url]}
        assert ws.client.put("/v1/secrets/OLD", json={"value": "old-5678"}, headers=ws.h()).status_code == 201
        listed = ws.client.get("/v1/secrets", headers=ws.h()).json()["items"]
        assert listed == [{"name": "OLD"}, {"name": "TOK", "hosts": [rx.url]}]
        for i, url in enumerate((rx.url, other.url)):
            r = ws.client.post("/v1/rules", headers=ws.h("admin"), json={
                "name": f"call {i}", "triggers": ["ticket.created"], "enabled": True,
                "actions": [{"type": "http_request", "url": url + f"/r{i}", "secret": "TOK"}]})
            assert r.status_code == 201, r.text
        out = ws.send(event("b11-1"))
        run = ws.client.get(f"/v1/runs/{out['run_id']}", headers=ws.h()).json()
        by_url = {c["url"].rsplit("/", 1)[1]: c for c in run["http_calls"]}
        assert by_url["r0"]["status"] == 200
        assert "may not be sent to" in by_url["r1"]["refused"]
        assert other.requests == [] and rx.requests[0].headers["authorization"] == "Bearer tok-1234"
    finally:
        other.__exit__(None, None, None)


def test_a_request_marked_by_the_broker_is_refused_by_the_api(app_client: TestClient) -> None:
    ws = Workspace(app_client)
    r = app_client.get("/v1/rules", headers={**ws.h(), "X-Deskflow-Outbound": "1"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "self_call_refused"
    assert app_client.get("/v1/rules", headers=ws.h()).status_code == 200


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    """The service under uvicorn on a real port (API and worker in one process)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, worker=True), host="127.0.0.1",
                                           port=port, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    _until(lambda: server.started, timeout=20)
    yield url
    server.should_exit = True
    thread.join(30)


def test_a_rule_cannot_mint_an_admin_key_through_the_services_own_api(live: str) -> None:
    """The issue's attack: deskflow's own API on the allow-list, an admin key stored as a secret,
    a rule POSTing /v1/keys with it. The broker refuses the service's own listener."""
    with httpx.Client(base_url=live, timeout=30) as c:
        made = c.post("/v1/workspaces", json={"name": "victim"},
                      headers={"Authorization": f"Bearer {ROOT_TOKEN}"}).json()
        admin = {"Authorization": f"Bearer {made['admin_key']}"}
        assert c.put("/v1/allowlist", json={"hosts": [live]}, headers=admin).status_code == 200
        assert c.put("/v1/secrets/ADMIN", json={"value": made["admin_key"]}, headers=admin).status_code == 201
        keys_before = c.get("/v1/keys", headers=admin).json()["items"]
        r = c.post("/v1/rules", headers=admin, json={
            "name": "mint", "triggers": ["ticket.created"], "enabled": True,
            "actions": [{"type": "http_request", "method": "POST", "url": live + "/v1/keys",
                         "secret": "ADMIN", "body": {"role": "admin", "name": "minted"},
                         "map": {"k": "$.key"}}]})
        assert r.status_code == 201, r.text
        ingest = c.post("/v1/keys", json={"role": "ingest", "name": "in"}, headers=admin).json()["key"]
        out = c.post("/v1/events?wait=true", json=event("own-1"), headers={"Authorization": f"Bearer {ingest}"})
        run = c.get(f"/v1/runs/{out.json()['run_id']}", headers=admin).json()
        assert "own API" in run["http_calls"][0]["refused"], run["http_calls"]
        assert run.get("vars", {}).get("k") is None
        names = [k["name"] for k in c.get("/v1/keys", headers=admin).json()["items"]]
        assert "minted" not in names and len(names) == len(keys_before) + 1   # only the ingest key


def test_the_marker_stops_a_broker_that_does_not_know_the_listener(live: str) -> None:
    """Behind a proxy or another name the address check cannot see it is the service: the marker
    header still gets the request refused by the API itself."""
    async def call() -> dict[str, Any]:
        broker = Broker.create()                     # no own_endpoints: like a remote worker
        try:
            reply, _ = await broker.call(BrokerConfig(parse_allowlist([live])),
                                         {"method": "GET", "url": live + "/v1/rules"})
            return reply
        finally:
            await broker.aclose()

    reply = asyncio.run(call())
    assert reply["ok"] and reply["status_code"] == 403
    assert "self_call_refused" in reply["text"]


def test_a_stopped_servers_port_is_no_longer_the_services_own(settings: Settings) -> None:
    """A listener counts as the service's own while its app runs, not for the rest of the process:
    once it has shut down, a receiver that gets the same port (an ephemeral port comes round again)
    is a workspace's to allow-list (CI on 77a97a9: PUT /v1/webhook answered 422 to a receiver on a
    port an earlier test's in-process server had listened on)."""
    import uvicorn

    from server import selfguard

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, worker=False), host="127.0.0.1",
                                           port=port, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _until(lambda: server.started, timeout=20)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        assert ("127.0.0.1", port) in selfguard.listeners()
        assert new_broker().is_own(ipaddress.ip_address("127.0.0.1"), port)
    finally:
        server.should_exit = True
        thread.join(30)
    assert ("127.0.0.1", port) not in selfguard.listeners()
    assert not new_broker().is_own(ipaddress.ip_address("127.0.0.1"), port)
    with TestClient(create_app(settings, worker=False)) as c:   # a receiver's URL on that port now
        ws = Workspace(c)
        url = f"http://127.0.0.1:{port}"
        assert c.put("/v1/allowlist", json={"hosts": [url]}, headers=ws.h()).status_code == 200
        r = c.put("/v1/webhook", json={"url": url, "secret": "s" * 32}, headers=ws.h())
        assert r.status_code == 200, r.text
