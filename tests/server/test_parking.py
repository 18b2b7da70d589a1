"""One workspace cannot fill a partition's held entries (server/parking.py).

A partition loop stops reading once its lanes hold MAX_HELD entries. Before, one workspace's slow
events (a rule calling a server that answers after seconds) filled that alone -- ten batch
requests at the real bound of 5,000 -- and no other workspace's event on the partition was read
until they were all applied: at 4 lanes a workspace and 10 s a call, hours. Now a workspace holds
at most WORKSPACE_HELD of a partition's entries; the rest stay pending in the stream, parked, and
are taken back in order as it drains. Here with small bounds, so the test is quick: the real ones
are the same code."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from counting_server import CountingServer
from test_lanes import _slow_workspace_in_flight
from test_worker import NOTIFY_RULE, _assert_exactly_once, _runs_in_order, ev
from starlette.testclient import TestClient

import server.parking as parking
import server.worker as worker
from server.app import create_app
from server.lanes import Lanes
from server.parking import Parking
from server.settings import Settings
from server.store import catalog, events
from server.store import guards as guard_store
from server.store import keys as K
from server.store.connect import close_store, open_store
from server.worker import Worker


@pytest.fixture
def small_bounds(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """One partition, held bounds of 60 entries and 12 a workspace, set before its worker starts
    (a partition loop reads the workspace bound when it starts)."""
    monkeypatch.setattr(worker, "MAX_HELD", 60)
    monkeypatch.setattr(parking, "WORKSPACE_HELD", 12)
    with TestClient(create_app(replace(settings, partitions=1, wait_timeout_s=30),
                               worker=True)) as c:
        yield c


def test_a_workspace_over_the_partitions_held_bound_does_not_hold_another(
        small_bounds: TestClient) -> None:
    """150 slow events (3 s a call) against a held bound of 60: alone they filled it, and another
    workspace's event was not applied in the 30 s of its ?wait (measured before the change)."""
    with CountingServer(delay=3.0) as srv:
        quick_ws = _slow_workspace_in_flight(small_bounds, srv, 150)
        t0 = time.monotonic()
        out = quick_ws.send({"id": "q", "type": "ticket.created",
                             "occurred_at": "2026-11-23T08:00:00Z", "ticket": {"id": "Q"}})
        took = time.monotonic() - t0
        assert out["status"] == "processed" and out["changes"]["tags"]["added"] == ["seen"]
        assert took < 2.0, f"the quick workspace's event waited {took:.1f} s behind 150 slow ones"
        assert len(srv.hits("/slow")) <= 12, "the slow workspace held more than its bound"



@pytest.mark.anyio
async def test_parked_entries_are_applied_once_each_in_order(settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A bound of 4 entries a workspace on one partition: 6 tickets x 25 events of one workspace
    and 40 of another, all queued before a burst worker starts. Each event is applied once, each
    ticket's in order, the parked ones taken back from the stream; nothing is left pending."""
    monkeypatch.setattr(parking, "WORKSPACE_HELD", 4)
    settings = replace(settings, partitions=1)
    store = await open_store(settings)
    try:
        spaces = []
        for name in ("flood", "other"):
            ws, _ = await catalog.create_workspace(store, name)
            await catalog.put_rule(store, ws["id"], {**NOTIFY_RULE, "position": 1})
            await guard_store.put_spec(store, ws["id"], {"send_caps": [{"count": 10_000, "per": "1m"}]})
            spaces.append(ws["id"])
        flood, other = spaces
        await events.ensure_groups(store)
        per_ticket: dict[str, list[str]] = {f"F-{t}": [] for t in range(6)}
        for i in range(25):
            batch = []
            for tid in per_ticket:
                per_ticket[tid].append(f"{tid}-{i}")
                batch.append(ev(f"{tid}-{i}", tid, i))
            await events.append_events(store, flood, batch)
        await events.append_events(store, other, [ev(f"o{i}", f"O-{i % 4}", i // 4) for i in range(40)])
        taken: list[int] = []
        real = Parking.take_back

        async def counted(self: Parking, *args: Any) -> bool:
            gave = await real(self, *args)
            taken.append(self.taken_back)
            return gave

        monkeypatch.setattr(Parking, "take_back", counted)
        w = Worker(store=store, name="w", burst=True)
        assert await w.run() == 6 * 25 + 40
        assert taken and max(taken) > 100, "no entries were parked and taken back: no test"
        await _assert_exactly_once(store, flood, per_ticket)
        for tid, ids in per_ticket.items():
            assert await _runs_in_order(store, flood, tid) == ids
        assert (await store.redis.xpending(K.stream(0), K.GROUP))["pending"] == 0
        assert await store.redis.xlen(K.stream(0)) == 0
        ticket = orjson.loads(await store.redis.get(K.ticket(other, "O-3")))
        assert ticket["custom"]["seq"] == 9
    finally:
        await close_store(store)


def test_admit_parks_a_workspace_from_its_first_entry_over_the_bound_on() -> None:
    async def apply(*_: Any) -> None:
        return None

    lanes, p = Lanes(apply), Parking(cap=2)
    entry = lambda i, ws: (f"1-{i}", {"w": ws, "e": orjson.dumps({"ticket": {"id": f"T{i}"}}).decode()})  # noqa: E731
    got = p.admit([entry(1, "a"), entry(2, "b"), entry(3, "a"), entry(4, "a"), entry(5, "b"),
                   entry(6, "a"), entry(7, "b"), entry(8, "c")], lanes)
    assert [e[0] for e in got] == ["1-1", "1-2", "1-3", "1-5", "1-8"]
    assert p.parked == {"a": "1-4", "b": "1-7"}
