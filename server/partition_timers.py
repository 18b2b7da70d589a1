"""A worker's timer check of each partition round (server/worker.py): fire what is due, and how
long the round may wait for new entries before the next timer comes due.

The first due time of partition n comes with n's last read (store/events.read_entries puts it in
`dues`: the ZRANGE runs in the read's own script call, the partition's timers sharing its stream's
slot), so a round costs no ZRANGE of its own. It is read again on its own only when this worker
has no read of n yet, or a pass of this worker set or restored timers of n since (the applier's
`timers_set(n)`: only a partition's owner applies its tickets' events and so sets its timers).
After firing, the firing round's own answer (store/timer_firing.fire_round) says it. That round runs
only when a timer is due.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from server.store import timer_firing, timers
from server.store.connect import Store

__all__ = ["PartitionTimers"]


class PartitionTimers:
    def __init__(self, store: Store, clock: Callable[[], datetime],
                 timers_set: Callable[[int], bool]) -> None:
        self.store = store
        self.clock = clock
        self.timers_set = timers_set
        self.dues: dict[int, int | None] = {}   # first timer due (ms) per partition, as last read

    async def next_due(self, n: int) -> datetime | None:
        if self.timers_set(n) or n not in self.dues:
            due = await timers.next_due(self.store, [n])
            self.dues[n] = None if due is None else int(due.timestamp() * 1000)
        ms = self.dues[n]
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)

    def block_for(self, due: datetime | None) -> int:
        """How long to wait for new entries: block_ms, or less if a timer comes due sooner."""
        block_ms = self.store.settings.block_ms
        if due is None:
            return block_ms
        wait = (due - self.clock()).total_seconds() * 1000
        return max(1, min(block_ms, math.ceil(wait)))

    async def block_ms(self, n: int) -> int:
        return self.block_for(await self.next_due(n))

    async def fire(self, n: int, room: int) -> datetime | None:
        """Fire partition n's due timers into its stream, at most one read's worth and no more
        than `room` (what the lanes can still hold); returns its next due time after that."""
        due = await self.next_due(n)
        now = self.clock()
        if due is None or due > now:
            return due
        limit = max(1, min(self.store.settings.batch_size, room))
        _, self.dues[n] = await timer_firing.fire_round(self.store, n, now, limit=limit)   # (its next due too)
        ms = self.dues[n]
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)
