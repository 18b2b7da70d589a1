"""Shared pools of limited slots that two workspaces can fill, and a third workspace's latency
(the pools of the check processes and the script workers have their own tests:
tests/server/test_checkpool.py, tests/sandbox/test_pool_elastic.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from counting_server import CountingServer
from server_helpers import Workspace
from starlette.testclient import TestClient

from server import apply
from server.app import create_app
from server.lanes import MAX_LANES, WORKSPACE_SHARE
from server.settings import Settings


@pytest.fixture
def one_partition(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(replace(settings, partitions=1, wait_timeout_s=30),
                               worker=True)) as c:
        yield c


def test_two_slow_workspaces_do_not_hold_a_third_on_their_partition(one_partition: TestClient) -> None:
    assert 2 * WORKSPACE_SHARE >= MAX_LANES      # what makes two workspaces enough
    client = one_partition
    with CountingServer(delay=5.0) as srv:
        for name in ("slow1", "slow2"):
            ws = Workspace(client, name)
            assert client.put("/v1/allowlist", json={"hosts": [srv.url]},
                              headers=ws.h("admin")).status_code == 200
            ws.rule(name="slow crm", triggers=["ticket.created"],
                    actions=[{"type": "http_request", "method": "POST", "url": srv.url + "/slow"}])
            batch = [{"id": f"s{i}", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
                      "ticket": {"id": f"S-{i}"}} for i in range(10)]
            assert client.post("/v1/events", json={"events": batch},
                               headers=ws.h("ingest")).status_code == 202
        quick = Workspace(client, "quick")
        quick.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["seen"]}])
        deadline = time.monotonic() + 30
        while len(srv.hits("/slow")) < MAX_LANES:   # every lane waits on the slow server
            assert time.monotonic() < deadline, srv.hits("/slow")
            time.sleep(0.02)
        t0 = time.monotonic()
        out = quick.send({"id": "q", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
                          "ticket": {"id": "Q-1"}})
        took = time.monotonic() - t0
        assert out["status"] == "processed" and out["changes"]["tags"]["added"] == ["seen"]
        assert took < 2.0, f"the third workspace's event waited {took:.1f} s behind the two slow ones"


@pytest.fixture
def all_partitions(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(replace(settings, partitions=Settings.partitions, wait_timeout_s=30),
                               worker=True)) as c:
        yield c


def test_two_slow_workspaces_on_every_partition_do_not_hold_a_third(all_partitions: TestClient) -> None:
    """The worker's pass threads (server/passthreads.py) are shared by every partition: a pass
    that waits on HTTP holds one for as long as the server takes. Two workspaces whose rule
    POSTs to a slow server, with tickets on all 16 partitions, fill WORKSPACE_SHARE lanes a
    partition each (2 x 4 x 16 = 128 passes waiting); a third workspace whose rule calls a quick
    server must still be applied at once."""
    client = all_partitions
    with CountingServer(delay=5.0) as slow, CountingServer() as quick_srv:
        for name in ("slow1", "slow2"):
            ws = Workspace(client, name)
            assert client.put("/v1/allowlist", json={"hosts": [slow.url]},
                              headers=ws.h("admin")).status_code == 200
            ws.rule(name="slow crm", triggers=["ticket.created"],
                    actions=[{"type": "http_request", "method": "POST", "url": slow.url + "/slow"}])
            batch = [{"id": f"s{i}", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
                      "ticket": {"id": f"S-{i}"}} for i in range(240)]
            assert client.post("/v1/events", json={"events": batch},
                               headers=ws.h("ingest")).status_code == 202
        quick = Workspace(client, "quick")
        assert client.put("/v1/allowlist", json={"hosts": [quick_srv.url]},
                          headers=quick.h("admin")).status_code == 200
        quick.rule(name="crm", triggers=["ticket.created"],
                   actions=[{"type": "http_request", "method": "POST", "url": quick_srv.url + "/q"}])
        deadline = time.monotonic() + 30
        while len(slow.hits("/slow")) < apply.PASS_THREADS:   # the slow calls hold what they can
            assert time.monotonic() < deadline, len(slow.hits("/slow"))
            time.sleep(0.02)
        time.sleep(0.3)
        held = len(slow.hits("/slow"))
        t0 = time.monotonic()
        out = quick.send({"id": "q", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
                          "ticket": {"id": "Q-1"}})
        took = time.monotonic() - t0
        assert out["status"] == "processed" and len(quick_srv.hits("/q")) == 1, out
        assert took < 2.0, (f"the third workspace's event waited {took:.1f} s behind the two slow "
                            f"ones ({held} slow calls in flight)")


def test_three_workspaces_backtesting_do_not_refuse_a_fourth(client: TestClient) -> None:
    """At MAX_CONCURRENT 2 backtests a process, two workspaces backtesting back to back kept every
    other workspace's backtest refused (429 backtest_busy). The cap is 4 now (server/api/backtest.py
    says what 4 at once cost another workspace's requests); it takes four workspaces at once to
    refuse a fifth."""
    from server.api import backtest as B

    victim = Workspace(client)
    rule = {"name": "r", "triggers": ["ticket.created"],
            "conditions": {"field": "subject", "op": "contains", "value": "x"},
            "actions": [{"type": "add_tags", "tags": ["x"]}]}
    running = {"attacker-1", "attacker-2", "attacker-3"}
    B._RUNNING.update(running)   # their backtests are under way
    try:
        r = client.post("/v1/rules/backtest", json={"rule": rule}, headers=victim.h("manager"))
    finally:
        B._RUNNING.difference_update(running)
    assert r.status_code == 200, r.text[:300]
