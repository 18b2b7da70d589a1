"""Red team, session 13: attacks on the sandbox's way out that the earlier suites did not try.

A script's `ctx.http` call carried its headers, query values and form fields to the trusted side
with no bound but the pipe's 16 MiB frame: a call with 100,000 headers cost the shared event loop
1.3 s to check and send (10 such calls a run: 13 s of every workspace's loop), and a victim
workspace's slowest answer went from 70 ms to 680 ms beside one test run. Now the worker refuses
such a call before it crosses the pipe, and the broker refuses it again (for every caller) before
it reads the entries one by one.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandbox import Broker, BrokerConfig, Limits, parse_allowlist
from sandbox.convert import (
    MAX_FORM_FIELDS, MAX_HEADER_CHARS, MAX_HEADERS, MAX_PARAMS, MAX_PARAMS_CHARS, fields_problem,
)

# (keyword of ctx.http, how many entries, the limit the error names)
OVER = [
    ("headers", 100_000, f"limit of {MAX_HEADERS}"),
    ("params", 100_000, f"limit of {MAX_PARAMS}"),
    ("data", 100_000, f"limit of {MAX_FORM_FIELDS}"),
]


def _script(keyword: str, entries: int, method: str = "post") -> str:
    return (
        "def run(event, ticket, ctx):\n"
        f"    fields = {{('h' + str(i)): 'v' for i in range({entries})}}\n"
        "    try:\n"
        f"        ctx.http.{method}(ctx.vars['url'] + '/contacts', {keyword}=fields)\n"
        "    except Exception as exc:\n"
        "        return {'custom': {'error': str(exc)}}\n"
        "    return {'custom': {'error': None}}\n")


@pytest.mark.parametrize(("keyword", "entries", "named"), OVER)
def test_a_call_with_too_many_fields_never_leaves_the_worker(sandbox, crm, keyword: str, entries: int,
                                                             named: str) -> None:
    """Before: the 100,000 entries crossed the pipe and the broker read, checked and sent every
    one (the call is in `http_calls`, the error a connection or server error); now the worker
    refuses the call, naming the limit, and the broker never sees it."""
    result = sandbox.run(_script(keyword, entries), vars={"url": crm.url}, limits=Limits(wall_s=20, cpu_s=10))
    assert result.error is None, result.error
    error = (result.updates or {}).get("custom", {}).get("error")
    assert error is not None and keyword in error and named in error, error
    assert result.http_calls == [], result.http_calls


@pytest.mark.parametrize("keyword", ["headers", "params", "data"])
def test_a_call_at_the_limits_is_still_made(sandbox, crm, keyword: str) -> None:
    """The bounds leave room for real calls: 50 headers, or as many query values or form fields
    as the limit, go through to the server."""
    entries = {"headers": 50, "params": 500, "data": MAX_FORM_FIELDS}[keyword]
    result = sandbox.run(_script(keyword, entries), vars={"url": crm.url}, limits=Limits(wall_s=20))
    assert result.error is None, result.error
    assert [c.get("refused") for c in result.http_calls] == [None], result.http_calls


def _request(**fields: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        broker = Broker.create()
        try:
            session = broker.session(BrokerConfig(parse_allowlist(["http://127.0.0.1:9"])), Limits(),
                                     asyncio.get_running_loop().time() + 10)
            reply = await session.request({"method": "POST", "url": "http://127.0.0.1:9/x", **fields})
            return {**reply, "calls": session.calls, "sent": session.sent}
        finally:
            await broker.aclose()
    return asyncio.run(go())


@pytest.mark.parametrize(("keyword", "value", "named"), [
    ("headers", {f"h{i}": "v" for i in range(MAX_HEADERS + 1)}, f"limit of {MAX_HEADERS}"),
    ("headers", {"h": "v" * MAX_HEADER_CHARS}, f"{MAX_HEADER_CHARS} characters"),
    ("params", {"p": [str(i) for i in range(MAX_PARAMS + 1)]}, f"{MAX_PARAMS} values"),
    ("params", {"p": "v" * MAX_PARAMS_CHARS}, f"{MAX_PARAMS_CHARS} characters"),
    ("data", {f"f{i}": "v" for i in range(MAX_FORM_FIELDS + 1)}, f"limit of {MAX_FORM_FIELDS}"),
])
def test_the_broker_refuses_too_many_fields_from_any_caller(keyword: str, value: Any, named: str) -> None:
    """The broker's own check (a caller that is not the worker: http_request actions, webhook
    deliveries): refused before anything is resolved or sent, counted and recorded like any
    refusal. Before, the call went on to connect (and failed: nothing listens on port 9)."""
    reply = _request(**{keyword: value})
    assert reply["ok"] is False and reply["kind"] == "refused", reply
    assert keyword in reply["message"] and named in reply["message"], reply["message"]
    assert reply["sent"] == 0 and reply["calls"][0]["refused"] == reply["message"]


def test_fields_problem_answers_on_lengths_before_reading_entries() -> None:
    """A dict over the count is refused on its length, a list value over it on its length."""
    assert fields_problem({f"k{i}": "v" for i in range(10**6)}, "headers", MAX_HEADERS, 10**9) is not None
    assert fields_problem({"k": ["v"] * (MAX_PARAMS + 1)}, "params", MAX_PARAMS, 10**9) is not None
    assert fields_problem({"k": "v" * 11}, "params", MAX_PARAMS, 12) is None   # a number counts 24
    assert fields_problem({"k": "v" * 12}, "params", MAX_PARAMS, 12) is not None


# -- the unspecified address is this machine -------------------------------------------------------

@pytest.mark.parametrize(("listener", "entry", "url"), [
    ("127.0.0.1", "http://0.0.0.0:{port}", "http://0.0.0.0:{port}/v1/workspace"),
    ("::1", "http://[::]:{port}", "http://[::]:{port}/v1/workspace"),
    ("127.0.0.1", "http://[::ffff:0.0.0.0]:{port}", "http://[::ffff:0.0.0.0]:{port}/"),
])
def test_an_allow_listed_unspecified_address_does_not_reach_the_services_own_listener(
        crm, listener: str, entry: str, url: str) -> None:
    """An admin may allow-list `http://0.0.0.0:<port>` literally; a connection to 0.0.0.0 reaches
    this machine's loopback, so a listener (or store) bound to 127.0.0.1 answered it: the broker
    compared 0.0.0.0 with 127.0.0.1, found them different, and sent the request (measured on a
    real `deskflow serve`: the API answered, only the marker's 403 stopped it; a Redis store
    on 127.0.0.1:6379 was reached, its own cross-protocol guard closing the connection). Here
    the 'own' listener is the CRM server, which would answer 200."""
    port = crm.port
    reply = ask_own(listener, port, entry.format(port=port), url.format(port=port))
    assert reply["ok"] is False and reply["kind"] == "refused", reply
    assert "own API or store" in reply["message"] and reply["sent"] == 0, reply


def ask_own(listener: str, port: int, entry: str, url: str) -> dict[str, Any]:
    """GET `url` through a broker whose own listener is (listener, port), `entry` allow-listed."""
    async def go() -> dict[str, Any]:
        broker = Broker.create(own_endpoints=lambda: [(listener, port)])
        try:
            config = BrokerConfig(parse_allowlist([entry]))
            session = broker.session(config, Limits(), asyncio.get_running_loop().time() + 10)
            reply = await session.request({"method": "GET", "url": url})
            return {**reply, "sent": session.sent}
        finally:
            await broker.aclose()

    return asyncio.run(go())
