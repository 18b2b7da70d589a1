"""The broker under hostile servers (issue 13): one total deadline per call, no leaked connections,
per-workspace bounds, its own DNS threads, refused calls under the call cap, secrets scrubbed in
every JSON dialect, secrets bound to hosts, and no calls into the service's own API.

Real servers on 127.0.0.1 (hostile_servers.py, crm_app.py): the deadline and the connection
count live in the real socket path."""
from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import re
import threading
import time
import urllib.parse

import httpx
import pytest

from crm_app import CRM_TOKEN
from hostile_servers import DIALECTS, Reflector, Slowloris
from sandbox import Broker, BrokerConfig, Limits, parse_allowlist
from sandbox.scrub import Scrubber


def _config(*urls: str, workspace: str = "w1", **kw: object) -> BrokerConfig:
    return BrokerConfig(parse_allowlist(list(urls)), workspace=workspace, **kw)  # type: ignore[arg-type]


def _until(check, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())


# -- A4: one deadline for the whole exchange -------------------------------------------------------

@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_slowloris_server_fails_at_the_deadline_and_the_connection_is_closed(sandbox, mode: str) -> None:
    with Slowloris(interval=0.5, mode=mode) as slow:
        started = time.monotonic()
        reply, calls = sandbox.call(sandbox.broker.call(
            _config(slow.url), {"method": "GET", "url": slow.url + "/", "timeout": 2},
            limits=Limits(wall_s=10)), timeout=30)
        took = time.monotonic() - started
        assert reply["ok"] is False and reply["kind"] == "failed", reply
        assert "timed out after 2.0s" in reply["message"] and "whole body" in reply["message"]
        assert 1.5 < took < 6, took                       # the deadline, not one read's timeout
        assert "timed out" in calls[0]["error"]
        assert _until(lambda: sandbox.broker.open_connections() == 0 and slow.open == 0), \
            (sandbox.broker.open_connections(), slow.open)


def test_the_deadline_is_capped_by_the_runs_remaining_time(sandbox) -> None:
    with Slowloris(interval=0.5) as slow:
        started = time.monotonic()
        reply, _ = sandbox.call(sandbox.broker.call(
            _config(slow.url), {"method": "GET", "url": slow.url + "/", "timeout": 30},
            limits=Limits(wall_s=1.5)), timeout=30)
        assert reply["kind"] == "failed" and time.monotonic() - started < 5


def test_a_script_calling_a_slowloris_server_fails_its_call_not_the_pool(sandbox) -> None:
    with Slowloris(interval=0.5) as slow:
        source = (f"def run(event, ticket, ctx):\n    try:\n"
                  f"        ctx.http.get({slow.url + '/'!r}, timeout=1)\n"
                  f"    except Exception as exc:\n        return {{'custom': {{'e': str(exc)}}}}\n")
        result = sandbox.run(source, allow=[slow.url], limits=Limits(wall_s=8))
        assert "timed out after 1.0s" in result.updates["custom"]["e"], result
        sandbox.still_serving()


def test_one_workspace_cannot_take_the_connection_pool_of_another(sandbox, crm) -> None:
    """A client pool of 10 connections: workspace `slow` holds at most 8 of them, so `fast` keeps
    getting through while 12 of `slow`'s calls hang."""
    async def scenario(slow_url: str) -> tuple[list[dict], float, int]:
        client = httpx.AsyncClient(trust_env=False, follow_redirects=False,
                                   limits=httpx.Limits(max_connections=10, max_keepalive_connections=0))
        broker = Broker(client)
        try:
            hang = [asyncio.create_task(broker.call(_config(slow_url, workspace="slow"),
                                                    {"method": "GET", "url": slow_url + "/", "timeout": 6},
                                                    limits=Limits(wall_s=8))) for _ in range(12)]
            await asyncio.sleep(0.5)
            held = broker.in_flight("slow")
            started = time.monotonic()
            fast = await asyncio.gather(*(broker.call(_config(crm.url, workspace="fast"),
                                                      {"method": "GET", "url": crm.url + "/echo", "timeout": 5})
                                          for _ in range(5)))
            took = time.monotonic() - started
            for task in hang:
                task.cancel()
            await asyncio.gather(*hang, return_exceptions=True)
            return [r for r, _ in fast], took, held
        finally:
            await broker.aclose()

    with Slowloris(interval=0.5) as slow:
        replies, took, held = sandbox.call(scenario(slow.url), timeout=40)
    assert held == 8
    assert all(r["ok"] and r["status_code"] == 200 for r in replies), replies
    assert took < 3, took


def test_dns_lookups_do_not_wait_for_the_loops_default_executor() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        stuck = threading.Event()
        default = concurrent.futures.ThreadPoolExecutor(1)
        loop.set_default_executor(default)
        blocker = loop.run_in_executor(None, stuck.wait, 30)     # the shared pool is full
        broker = Broker.create()
        try:
            return await asyncio.wait_for(broker.lookup("w1", "localhost", 80), 5)
        finally:
            stuck.set()
            await blocker
            await broker.aclose()

    assert asyncio.run(scenario())


# -- A7: refused calls count against the cap; the record list is bounded ---------------------------

def test_refused_calls_count_against_the_call_cap(sandbox) -> None:
    source = ("def run(event, ticket, ctx):\n    n = 0\n    for i in range(5000):\n        try:\n"
              "            ctx.http.get('http://169.254.169.254/x' + str(i))\n"
              "        except Exception:\n            n += 1\n    return {'custom': {'n': n}}\n")
    result = sandbox.run(source, limits=Limits(wall_s=10))
    assert result.error is not None and result.error["code"] == "http_calls_limit", result.error
    assert len(result.http_calls) <= Limits().http_calls + 1, len(result.http_calls)


# -- B10: a reflected secret is scrubbed in every spelling -----------------------------------------

ODD_TOKEN = 'crm/tok"en&7f\\3a+9c'


def _decoded_forms(text: str) -> list[str]:
    """Everything a script could turn the reflected field into."""
    value = json.loads(text)["token"]
    out = [value, urllib.parse.unquote(value), urllib.parse.unquote_plus(value)]
    for decode in (base64.b64decode, base64.urlsafe_b64decode, bytes.fromhex):
        try:
            out.append(decode(value + "=" * (-len(value) % 4) if decode is not bytes.fromhex else value)
                       .decode("utf-8", "replace"))
        except ValueError:
            pass
    import html
    out.append(html.unescape(value))
    return out


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("token", [CRM_TOKEN, ODD_TOKEN])
def test_a_reflected_secret_is_scrubbed_in_every_dialect(sandbox, dialect: str, token: str) -> None:
    with Reflector() as echo:
        reply, calls = sandbox.call(sandbox.broker.call(
            _config(echo.url, secrets={"TOKEN": token}),
            {"method": "GET", "url": echo.url + "/?dialect=" + dialect, "auth_secret": "TOKEN"}))
    assert reply["ok"], reply
    for form in _decoded_forms(reply["text"]):
        assert token not in form, (dialect, reply["text"])
    assert token not in urllib.parse.unquote(reply["headers"]["x-echo"])
    assert token not in json.dumps(calls)


@pytest.mark.parametrize("dialect", ["slash", "u-upper", "mixed"])
def test_resp_json_in_a_script_never_sees_the_secret(sandbox, dialect: str) -> None:
    with Reflector() as echo:
        source = (f"def run(event, ticket, ctx):\n"
                  f"    r = ctx.http.get({echo.url + '/?dialect=' + dialect!r}, auth_secret='TOKEN')\n"
                  f"    return {{'custom': {{'seen': r.json()['token']}}}}\n")
        result = sandbox.run(source, allow=[echo.url], secrets={"TOKEN": ODD_TOKEN})
    assert result.error is None, result.error
    assert ODD_TOKEN not in result.updates["custom"]["seen"], result.updates


@pytest.mark.parametrize("secret", ["tok/en😀-9f3a", "ключ-секрет-42", "a\tb\\c\"d/e"])
def test_the_scrubber_finds_surrogate_pairs_and_mixed_case_escapes(secret: str) -> None:
    scrub = Scrubber([secret])
    doc = json.dumps({"v": secret})                       # \ud83d\ude00, \u043a ...
    upper = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), doc)
    for text in (doc, upper, doc.replace("/", "\\/")):
        clean = scrub.body(text)
        assert secret not in json.dumps(json.loads(clean), ensure_ascii=False), clean
        assert secret not in json.loads(clean)["v"]


# -- B11: secrets go only to the hosts they are bound to; never to the service itself --------------

def test_a_bound_secret_goes_only_to_its_hosts(sandbox, crm, crm2) -> None:
    base = dict(secrets={"CRM_TOKEN": CRM_TOKEN})
    bound = {"CRM_TOKEN": parse_allowlist([crm2.url])}
    call = {"method": "GET", "url": crm.url + "/echo", "auth_secret": "CRM_TOKEN"}
    reply, calls = sandbox.call(sandbox.broker.call(_config(crm.url, crm2.url, **base, secret_hosts=bound), call))
    assert reply["kind"] == "refused" and "may not be sent to" in reply["message"], reply
    assert "status" not in calls[0]
    reply, _ = sandbox.call(sandbox.broker.call(
        _config(crm.url, crm2.url, **base, secret_hosts=bound), {**call, "url": crm2.url + "/echo"}))
    assert reply["ok"], reply
    nowhere = {"CRM_TOKEN": parse_allowlist([])}
    reply, _ = sandbox.call(sandbox.broker.call(_config(crm.url, **base, secret_hosts=nowhere), call))
    assert reply["kind"] == "refused" and "no host" in reply["message"]
    templated = {**call, "auth_secret": None, "headers": {"X-Key": "{{secret:CRM_TOKEN}}"}}
    reply, _ = sandbox.call(sandbox.broker.call(_config(crm.url, **base, secret_hosts=bound), templated))
    assert reply["kind"] == "refused"
    reply, _ = sandbox.call(sandbox.broker.call(_config(crm.url, **base), call))   # unbound: allow-list
    assert reply["ok"], reply


@pytest.mark.parametrize("listen", ["127.0.0.1", "0.0.0.0"])
def test_the_services_own_listener_is_refused(sandbox, crm, listen: str) -> None:
    broker = Broker(sandbox.broker.client, own_endpoints=lambda: [(listen, crm.port)])
    reply, _ = sandbox.call(broker.call(_config(crm.url), {"method": "GET", "url": crm.url + "/v1/keys"}))
    assert reply["kind"] == "refused" and "own API" in reply["message"], reply
    other = Broker(sandbox.broker.client, own_endpoints=lambda: [(listen, crm.port + 1)])
    reply, _ = sandbox.call(other.call(_config(crm.url), {"method": "GET", "url": crm.url + "/echo"}))
    assert reply["ok"]


def test_every_outbound_request_carries_the_marker_and_a_script_cannot_set_it(sandbox, crm) -> None:
    reply, _ = sandbox.call(sandbox.broker.call(_config(crm.url), {"method": "GET", "url": crm.url + "/echo"}))
    assert json.loads(reply["text"])["headers"].get("X-Deskflow-Outbound") == "1"
    reply, _ = sandbox.call(sandbox.broker.call(_config(crm.url), {
        "method": "GET", "url": crm.url + "/echo", "headers": {"x-deskflow-outbound": "0"}}))
    assert reply["kind"] == "refused"


def test_dns_lookups_in_flight_are_bounded_per_workspace(monkeypatch) -> None:
    """A resolver that hangs for one tenant's names (its thread cannot be cancelled) holds at most
    DNS_PER_WORKSPACE of the broker's DNS threads; another tenant still resolves."""
    import socket as real_socket

    from sandbox import sharing

    release = threading.Event()
    real = real_socket.getaddrinfo

    def resolver(host, *args, **kw):
        if host.endswith(".hang.test"):
            release.wait(30)
            raise OSError("no answer")
        return real(host, *args, **kw)

    monkeypatch.setattr(sharing.socket, "getaddrinfo", resolver)

    async def scenario() -> tuple[list[object], list[str]]:
        broker = Broker.create()
        try:
            hung = [asyncio.create_task(broker.lookup("slow", f"h{i}.hang.test", 80)) for i in range(2)]
            await asyncio.sleep(0.2)
            with pytest.raises(OSError, match="DNS lookups in flight"):
                await broker.lookup("slow", "h9.hang.test", 80)
            other = await asyncio.wait_for(broker.lookup("fast", "localhost", 80), 5)
            release.set()
            return await asyncio.gather(*hung, return_exceptions=True), other
        finally:
            release.set()
            await broker.aclose()

    hung, other = asyncio.run(scenario())
    assert all(isinstance(h, OSError) for h in hung) and other


def test_a_large_reflecting_body_is_scrubbed_off_the_loop(sandbox, crm) -> None:
    """Scrubbing a body of ~1 MiB full of escapes runs on the broker's scrub threads: the loop
    keeps ticking meanwhile."""
    token = CRM_TOKEN
    big = json.dumps({"pad": "\\u0041" * 150_000, "t": token}).replace(token[:3], "\\u0063rm", 1)

    async def scenario() -> tuple[str, float]:
        from sandbox.scrub import Scrubber
        broker = sandbox.broker
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        text = await broker.off_loop(Scrubber([token]).body, big)
        tick.cancel()
        return text, max(gaps or [0.0])

    text, gap = sandbox.call(scenario())
    assert token not in json.loads(text)["t"]
    assert gap < 0.2, gap
