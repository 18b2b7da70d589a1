"""The timer check of each partition round (server/partition_timers.py): the first due time comes
with the partition's read, and is read on its own only when a pass of this worker set timers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from server.partition_timers import PartitionTimers
from server.settings import Settings
from server.store import events, timers
from server.store import keys as K
from server.store.connect import close_store, open_store

DUE = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.anyio
async def test_the_read_brings_the_first_due_time(settings: Settings,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = await open_store(settings)
    try:
        await events.ensure_groups(store)
        await store.redis.zadd(K.timers(1), {"w\x1fsnooze\x1fT-1": int(DUE.timestamp() * 1000),
                                             "w\x1fsnooze\x1fT-2": int(DUE.timestamp() * 1000) + 5})
        # the per-workspace layout: the index holds each workspace's next due (store/timers.py);
        # the read takes the earlier of the index's first and the older set's first
        ms = int(DUE.timestamp() * 1000)
        await store.redis.zadd(K.timer_index(1), {"w": ms + 3})          # the older set's is earlier
        await store.redis.zadd(K.timers(3), {"w\x1fsnooze\x1fT-9": ms + 20})
        await store.redis.zadd(K.timer_index(3), {"w": ms + 11, "v": ms + 12})  # the index's is
        dues: dict[int, int | None] = {}
        await events.read_entries(store, "c", [0, 1, 3], count=10, block_ms=None, dues=dues)
        assert dues == {0: None, 1: ms, 3: ms + 11}
        await store.redis.delete(K.timer_index(1), K.timer_index(3), K.timers(3))

        asked: list[int] = []
        real = timers.next_due

        async def counted(store: Any, partitions: list[int]) -> datetime | None:
            asked.extend(partitions)
            return await real(store, partitions)
        monkeypatch.setattr(timers, "next_due", counted)
        set_by_a_pass = {1}
        pt = PartitionTimers(store, lambda: datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
                             lambda n: n in set_by_a_pass and not set_by_a_pass.discard(n))
        pt.dues.update(dues)
        assert await pt.fire(0, 100) is None and asked == []          # from the read: no ZRANGE
        # a pass of ours set partition 1's timers: read again (an earlier one now)
        await store.redis.zadd(K.timers(1), {"w\x1fsnooze\x1fT-3": int(DUE.timestamp() * 1000) - 60_000})
        assert await pt.fire(1, 100) == datetime(2026, 11, 23, 8, 59, tzinfo=UTC) and asked == [1]
        assert await pt.fire(1, 100) == datetime(2026, 11, 23, 8, 59, tzinfo=UTC) and asked == [1]
        # another holder's lease: no due time is taken from its partition
        await store.redis.set(K.lease(2), "someone else")
        await events.read_entries(store, "c", [2], count=10, block_ms=None, dues=dues)
        assert 2 not in dues
    finally:
        await close_store(store)
