"""Per-ticket order across a lapsed lease (issue 16, "per-ticket order under load").

The cause of the out-of-order runs seen under CPU load and across a master's failover: a worker
whose partition lease ran out (its renewals stalled past `DESKFLOW_RECLAIM_IDLE_MS`, or a failover
lost the lease key) renewed it with `SET NX` as if it had never lapsed. In between, another worker
may have taken the partition, claimed or read entries into its own pending list, and handed the
partition back (a worker over its share releases partitions) or died. The first worker then went
on reading *new* entries and applying them, while the other's pending entries -- a ticket's
earlier events -- waited for a claim that never came (or came later): a ticket's later event
applied before its earlier one.

The rule now: a lease that lapsed is lost. Renewal only extends a lease still held; a worker whose
lease lapsed stops the partition (applies nothing more of what it holds), and takes the partition
again only as a new owner, which claims every pending entry, in stream order, before reading new
ones. Both ways in are tested: the lease round (`_keep_leases`) and the fence before each apply.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson
import pytest

from server.settings import Settings
from server.store import catalog, events
from server.store import keys as K
from server.store.connect import Store, close_store, open_store
from server.worker import Worker

pytestmark = pytest.mark.anyio

RULE = {"id": "r1", "name": "stamp", "enabled": True,
        "triggers": ["ticket.created", "ticket.updated"],
        "actions": [{"type": "add_tags", "tags": ["seen"]}]}


def ev(eid: str, seq: int) -> dict[str, Any]:
    return {"id": eid, "type": "ticket.updated" if seq else "ticket.created",
            "occurred_at": "2026-11-23T08:00:00Z", "ticket": {"id": "T-1", "custom": {"seq": seq}}}


async def _setup(settings: Settings) -> tuple[Store, str]:
    store = await open_store(replace(settings, partitions=1, reclaim_idle_ms=500))
    ws, _ = await catalog.create_workspace(store, "w")
    await catalog.put_rule(store, ws["id"], {**RULE, "position": 1})
    await events.ensure_groups(store)
    return store, ws["id"]


async def _applied(store: Store, ws: str) -> list[str]:
    run_ids = await store.redis.lrange(K.ticket_runs(ws, "T-1"), 0, -1)
    runs = [orjson.loads(r) for r in await store.redis.mget([K.run(ws, r) for r in run_ids])]
    return [r["event_id"] for r in reversed(runs)]


async def _lapse_while_another_takes_e0(store: Store, ws: str, holder: Worker) -> None:
    """`holder` has the partition and its loop has claimed; then its lease lapses, and worker "b"
    takes the partition, reads E-0 (now pending in b's list, not applied) and releases it."""
    await holder._keep_leases()
    assert holder.owned == {0}
    holder._fresh.discard(0)              # its loop's first round claimed (nothing was pending)
    await events.append_events(store, ws, [ev("E-0", 0)])
    await store.redis.delete(K.lease(0))  # the TTL ran out while the holder stalled
    assert await events.acquire_lease(store, 0, "b")
    got = await events.read_entries(store, "b", [0], count=10, block_ms=None)
    assert [orjson.loads(f["e"])["id"] for _, f in got[0]] == ["E-0"]
    await events.release_lease(store, 0, "b")   # over its share: handed back before applying
    await events.append_events(store, ws, [ev("E-1", 1)])


async def test_a_lapsed_lease_is_taken_again_as_new_and_claimed_first(settings: Settings) -> None:
    """The lease round after the stall must not just renew: E-0 (in b's pending list) is claimed
    and applied before E-1 is read. Before the fix this applied E-1 alone (E-0 left pending)."""
    store, ws = await _setup(settings)
    a = Worker(store=store, name="a", burst=True)
    try:
        await _lapse_while_another_takes_e0(store, ws, a)
        await a.run()       # the lease round, then the partition until drained
        assert await _applied(store, ws) == ["E-0", "E-1"]
    finally:
        await close_store(store)


async def test_the_fence_does_not_renew_a_lapsed_lease(settings: Settings) -> None:
    """The holder's loop read E-1 while the lease was free (b had E-0 pending); its fence finds
    the lease late and must stop the partition, not take the lease again and apply E-1 ahead of
    E-0. Before the fix the fence's SET NX succeeded and E-1 was applied first."""
    store, ws = await _setup(settings)
    a = Worker(store=store, name="a")
    try:
        await _lapse_while_another_takes_e0(store, ws, a)
        got = await events.read_entries(store, "a", [0], count=10, block_ms=None)
        (entry_id, fields), = got[0]
        assert orjson.loads(fields["e"])["id"] == "E-1"
        a.fence.until[0] = time.monotonic() - 1      # its renewal is late
        with pytest.raises(Exception) as lost:
            await a.handle(0, entry_id, fields)
        assert type(lost.value).__name__ == "_LeaseLost" and 0 not in a.owned
        assert await _applied(store, ws) == []
        # taken again, it is a new owner: claims E-0 and E-1 (both pending), in stream order
        a.burst = True
        await a.run()
        assert await _applied(store, ws) == ["E-0", "E-1"]
    finally:
        a.applier.close()
        await close_store(store)
