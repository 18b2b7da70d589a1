"""Per-ticket lanes (issue 13 A4): a slow tenant does not hold another tenant's partition."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from counting_server import CountingServer
from server_helpers import Workspace
from starlette.testclient import TestClient

from server.app import create_app
from server.lanes import Lanes
from server.settings import Settings


@pytest.fixture
def one_partition(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(replace(settings, partitions=1, wait_timeout_s=30),
                               worker=True)) as c:
        yield c


def _slow_workspace_in_flight(client: TestClient, srv: CountingServer, n: int) -> Workspace:
    """Workspace "slow" posts n tickets whose rule calls `srv`; returns once the first call is in
    flight, with workspace "quick" (a rule that tags) for the test to measure."""
    slow_ws, quick_ws = Workspace(client, "slow"), Workspace(client, "quick")
    assert client.put("/v1/allowlist", json={"hosts": [srv.url]},
                      headers=slow_ws.h("admin")).status_code == 200
    slow_ws.rule(name="slow crm", triggers=["ticket.created"],
                 actions=[{"type": "http_request", "method": "POST", "url": srv.url + "/slow"}])
    quick_ws.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["seen"]}])
    batch = [{"id": f"s{i}", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
              "ticket": {"id": f"S-{i}"}} for i in range(n)]
    assert client.post("/v1/events", json={"events": batch},
                       headers=slow_ws.h("ingest")).status_code == 202
    deadline = time.monotonic() + 30
    while not srv.hits("/slow"):   # the slow passes are in flight
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return quick_ws


def test_a_slow_workspace_does_not_hold_another_on_its_partition(one_partition: TestClient) -> None:
    with CountingServer(delay=5.0) as srv:
        # more slow tickets than one workspace's share of the lanes
        quick_ws = _slow_workspace_in_flight(one_partition, srv, 10)
        for i in range(3):
            t0 = time.monotonic()
            out = quick_ws.send({"id": f"q{i}", "type": "ticket.created",
                                 "occurred_at": "2026-11-23T08:00:00Z", "ticket": {"id": f"Q-{i}"}})
            took = time.monotonic() - t0
            assert out["status"] == "processed" and out["changes"]["tags"]["added"] == ["seen"]
            assert took < 2.0, f"the quick workspace's event waited {took:.1f} s behind the slow one"
        assert len(srv.hits("/slow")) < 10, "the slow passes were not in flight: no test"


# -- the lanes themselves -----------------------------------------------------------------------


def _entry(ws: str, ticket: str, n: int) -> tuple[str, dict[str, str]]:
    return f"{n}-0", {"w": ws, "e": orjson.dumps({"id": f"e{n}", "ticket": {"id": ticket}}).decode()}


@pytest.mark.anyio
async def test_lanes_keep_each_tickets_order_and_bound_a_workspaces_share() -> None:
    order: list[str] = []
    running: dict[str, int] = {"A": 0, "B": 0}
    peak: dict[str, int] = {"A": 0, "B": 0}
    total_peak = [0]

    async def apply(entry_id: str, fields: dict[str, str]) -> None:
        ws = fields["w"]
        running[ws] += 1
        peak[ws] = max(peak[ws], running[ws])
        total_peak[0] = max(total_peak[0], sum(running.values()))
        await asyncio.sleep(0.05 if ws == "A" else 0.001)
        order.append(entry_id)
        running[ws] -= 1

    lanes = Lanes(apply, lanes=4, share=2)
    entries = []
    n = 0
    for rnd in range(3):
        for t in range(5):
            entries.append(_entry("A", f"A-{t}", n))
            n += 1
        entries.append(_entry("B", f"B-{rnd}", n))
        n += 1
    lanes.add(entries)
    await lanes.finish()
    assert sorted(order, key=lambda e: int(e.split("-")[0])) == [e for e, _ in entries]
    assert len(order) == len(entries) and sorted(lanes.take_done()) == sorted(order)
    assert peak["A"] <= 2 and total_peak[0] <= 4
    by_ticket: dict[str, list[int]] = {}
    for e, f in entries:
        by_ticket.setdefault(orjson.loads(f["e"])["ticket"]["id"], []).append(int(e.split("-")[0]))
    for ids in by_ticket.values():   # each ticket in stream order
        done = [int(e.split("-")[0]) for e in order if int(e.split("-")[0]) in ids]
        assert done == ids
    # B never waited for A's slow lanes: all of B done before A's last
    b_last = max(order.index(e) for e, f in entries if f["w"] == "B")
    assert b_last < len(order) - 1


@pytest.mark.anyio
async def test_a_failed_lane_starts_nothing_more() -> None:
    seen: list[str] = []

    async def apply(entry_id: str, fields: dict[str, str]) -> Any:
        seen.append(entry_id)
        if entry_id == "1-0":
            raise RuntimeError("store gone")

    lanes = Lanes(apply, lanes=1, share=1)
    lanes.add([_entry("A", "T", 0), _entry("A", "T", 1), _entry("A", "T", 2), _entry("A", "U", 3)])
    await lanes.finish()
    assert isinstance(lanes.failed, RuntimeError)
    assert seen == ["0-0", "1-0"] and lanes.take_done() == ["0-0"]


def test_a_slow_workspaces_backlog_does_not_stop_the_partition_reading(one_partition: TestClient) -> None:
    """More slow events than the loop reads ahead (half a batch): counted as backlog they stopped
    the partition reading, so another workspace's event queued behind them waited for all of them."""
    with CountingServer(delay=3.0) as srv:
        quick_ws = _slow_workspace_in_flight(one_partition, srv, 150)
        t0 = time.monotonic()
        out = quick_ws.send({"id": "q", "type": "ticket.created",
                             "occurred_at": "2026-11-23T08:00:00Z", "ticket": {"id": "Q"}})
        took = time.monotonic() - t0
        assert out["status"] == "processed" and out["changes"]["tags"]["added"] == ["seen"]
        assert took < 2.0, f"the quick workspace's event waited {took:.1f} s behind 150 slow ones"
        assert len(srv.hits("/slow")) < 150, "the slow passes were not still queued: no test"


@pytest.mark.anyio
async def test_a_saturated_workspace_is_not_counted_as_ready() -> None:
    gate = asyncio.Event()

    async def apply(entry_id: str, fields: dict[str, str]) -> None:
        await gate.wait()

    lanes = Lanes(apply, lanes=3, share=2)
    lanes.add([_entry("slow", "T-1", 1), _entry("slow", "T-2", 2), _entry("slow", "T-9", 3),
               _entry("quick", "Q-1", 4), _entry("quick", "Q-2", 5)])
    await asyncio.sleep(0)
    # slow's two lanes are busy, so its waiting T-9 is not ready; quick's Q-1 took the third
    # lane, and its Q-2 waits for a free one: ready
    assert lanes.ready == 1
    assert lanes.backlog == 5 + 3   # five entries taken, three of them in flight
    gate.set()
    await lanes.finish()
    assert lanes.ready == 0 and lanes.backlog == 0 and not lanes.busy
    assert sorted(lanes.take_done()) == ["1-0", "2-0", "3-0", "4-0", "5-0"]


@pytest.mark.anyio
async def test_entries_behind_their_tickets_running_lane_are_not_ready() -> None:
    """One ticket whose events each take long (a slow server, a pass over a long text), with a
    hundred more queued for it: none of those can start before the one running, so they must
    not count as ready, or the partition stops reading other workspaces' events until the
    ticket's backlog drains (it did: `ready` counted every entry of a workspace with a lane free)."""
    gate = asyncio.Event()

    async def apply(entry_id: str, fields: dict[str, str]) -> None:
        await gate.wait()

    lanes = Lanes(apply, lanes=8, share=4)
    lanes.add([_entry("slow", "T-1", i) for i in range(1, 101)])
    await asyncio.sleep(0)
    assert lanes.ready == 0 and lanes.backlog == 100 + 1   # (+ the lane in flight)
    lanes.add([_entry("other", "O-1", 101), _entry("slow", "T-2", 102)])
    await asyncio.sleep(0)
    assert lanes.ready == 0   # both started at once in lanes of their own
    gate.set()
    await lanes.finish()
    assert lanes.ready == 0 and lanes.backlog == 0 and len(lanes.take_done()) == 102


@pytest.mark.anyio
@pytest.mark.parametrize("hard", [6, 12])
async def test_the_counts_kept_agree_with_the_queues_through_adds_finishes_and_drops(hard: int) -> None:
    """backlog, ready and the lanes started are kept as they change (O(workspaces) per ask, not
    O(tickets waiting)); through random adds, finishes and drops they stay what counting the
    queues gives, and no workspace ever runs past its share or the partition past its lanes --
    past them (`hard` > lanes) only by one lane each for workspaces that held none, never past
    `hard`."""
    rng = random.Random(7)
    gates: dict[str, asyncio.Event] = {}
    released = False

    async def apply(entry_id: str, fields: dict[str, str]) -> None:
        gate = gates.setdefault(entry_id, asyncio.Event())
        if not released:
            await gate.wait()

    lanes = Lanes(apply, lanes=6, share=2, hard=hard)
    n = 0
    for _ in range(300):
        op = rng.random()
        if op < 0.5:
            batch = []
            for _ in range(rng.randint(1, 6)):
                n += 1
                batch.append(_entry(f"w{rng.randint(0, 4)}", f"T-{rng.randint(0, 15)}", n))
            lanes.add(batch)
        elif op < 0.95:
            waiting = [g for g in gates.values() if not g.is_set()]
            for g in rng.sample(waiting, min(len(waiting), rng.randint(1, 3))):
                g.set()
        else:
            lanes.drop_waiting()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        queued = sum(len(q) for q in lanes._queues.values())
        assert lanes.backlog == queued + len(lanes._running)
        assert lanes.ready == sum(len(q) for key, q in lanes._queues.items()
                                  if key not in lanes._running and lanes._per_ws[key[0]] < 2)
        assert len(lanes._running) <= hard
        assert all(v <= 2 for v in lanes._per_ws.values())
        if len(lanes._running) > 6:   # past the lanes: workspaces of one lane each, at most
            assert sum(max(0, v - 1) for v in lanes._per_ws.values()) <= 6
        runnable = [k for k in lanes._queues if k not in lanes._running
                    and lanes._per_ws[k[0]] < 2
                    and (len(lanes._running) < 6
                         or (lanes._per_ws[k[0]] == 0 and len(lanes._running) < hard))]
        assert not runnable, "a lane could start but did not"
    released = True
    for g in gates.values():
        g.set()
    await lanes.finish()
    assert lanes.backlog == 0 and lanes.ready == 0 and not lanes.busy


@pytest.mark.anyio
async def test_dropping_the_waiting_entries_keeps_the_one_being_applied() -> None:
    """drop_waiting() emptied a running lane's queue, head included: the entry being applied then
    failed its popleft, was never acked and the lane reported an IndexError."""
    started = asyncio.Event()

    async def apply(entry_id: str, fields: dict[str, str]) -> None:
        started.set()
        await asyncio.sleep(0.05)

    lanes = Lanes(apply)
    lanes.add([_entry("w", "T-1", n) for n in (1, 2, 3)])
    await started.wait()
    await lanes.drain()
    assert lanes.failed is None
    assert lanes.take_done() == ["1-0"] and not lanes.busy
