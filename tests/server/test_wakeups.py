"""An event queued in this process wakes the loop of its own partition, not all of them.

With the embedded store the worker cannot block on XREADGROUP, so its partition loops wait on
the store's in-process Wakeup. It was a broadcast: each ingest woke all 16 loops, and 15 of them
read their stream (a script call each) to find nothing -- most of an event's CPU at moderate
rates (serve: 3.6 ms an event at 100/s against 1.0 ms sustained, bench/RESULTS.md).
"""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from server_helpers import Workspace
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from server.store import events
from server.store import keys as K
from server.store.connect import Wakeup
from testkit import service_settings


def test_a_wakeup_sets_the_waiters_of_its_partitions_and_the_unbound_ones() -> None:
    w = Wakeup()
    two, five, anyone = w.waiter(2), w.waiter(5), w.waiter()
    w.set([5, 7])
    assert (two.is_set(), five.is_set(), anyone.is_set()) == (False, True, True)
    anyone.clear()
    w.set()                                   # no partitions named: everyone (a stop)
    assert two.is_set() and anyone.is_set()
    w.forget(two)
    two.clear()
    w.set([2])
    assert not two.is_set()


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Counter[int]]]:
    reads: Counter[int] = Counter()
    real = events.read_entries

    async def counted(store: Any, consumer: str, partitions: list[int], **kw: Any) -> Any:
        reads.update(partitions)
        return await real(store, consumer, partitions, **kw)

    monkeypatch.setattr(events, "read_entries", counted)
    # 16 partitions, and loops that wait on their wake-up alone (no timed re-read meanwhile)
    settings: Settings = dataclasses.replace(service_settings(None), partitions=16, block_ms=60_000)
    with TestClient(create_app(settings, worker=True)) as c:
        yield c, reads


def test_an_event_wakes_only_its_own_partitions_loop(embedded: tuple[TestClient, Counter[int]]) -> None:
    client, reads = embedded
    ws = Workspace(client)
    ws.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["seen"]}])
    parts = client.app_state["store"].settings.partitions
    assert parts == 16
    for i in range(12):
        time.sleep(0.3)                       # the loops idle, waiting on their wake-ups
        reads.clear()
        tid = f"T-{i}"
        out = ws.send({"id": f"e{i}", "type": "ticket.created", "occurred_at": "2026-11-23T09:00:00Z",
                       "ticket": {"id": tid}})
        assert out["status"] == "processed", out
        own = K.partition_of(ws.id, tid, parts)
        others = {n: c for n, c in reads.items() if n != own}
        assert reads[own] >= 1 and not others, (own, dict(reads))
