"""The fence on a partition's lease: an entry is applied only while its worker surely holds it.

Why: a worker whose loop stalled (starved of CPU, a long GC) past its lease's TTL may find the
lease taken by another worker, which claimed the partition's pending entries and applies them in
order; were the stalled one to apply an entry it still holds, that ticket's events would be
applied out of order. So before each pass the worker asks `check`: true while the lease lasts at
least half its TTL more (a pass has that half to commit), else it renews the lease first -- one
renewal per partition, shared by its lanes that all found it due -- and a lease that lapsed is
lost, never taken again here (store/events.renew_lease: the next owner claims first, issue 16).
"""

from __future__ import annotations

import asyncio
import time

from server.store import events
from server.store.connect import Store

__all__ = ["Fence"]


class Fence:
    """When each partition's lease surely lasts until (monotonic), and the renewals in flight."""

    def __init__(self, store: Store, name: str, owned: set[int]) -> None:
        self.store, self.name = store, name
        self.owned = owned   # the worker's own set: a lapsed lease leaves it (its loop stops)
        self.ttl_s = store.settings.reclaim_idle_ms / 1000
        self.until: dict[int, float] = {}
        self._renewing: dict[int, asyncio.Future[bool]] = {}

    def held(self, n: int, since: float) -> None:
        """Partition n's lease was taken or renewed by a call started at `since` (monotonic)."""
        self.until[n] = since + self.ttl_s

    async def check(self, n: int) -> bool:
        """True when partition n's lease lasts at least half its TTL more, renewing it here when
        the worker's own renewal is late."""
        if time.monotonic() < self.until.get(n, 0.0) - self.ttl_s / 2:
            return True
        renewal = self._renewing.get(n)
        if renewal is None:   # one renewal for the partition's lanes that all found it due
            renewal = self._renewing[n] = asyncio.ensure_future(self._renew(n))
        return await asyncio.shield(renewal)

    async def _renew(self, n: int) -> bool:
        try:
            started = time.monotonic()
            # renew only: re-taking a lapsed lease here would apply this entry ahead of any
            # earlier one another worker took meanwhile and left pending
            if await events.renew_lease(self.store, n, self.name):
                self.held(n, started)
                return True
            self.owned.discard(n)   # lapsed or taken: this loop stops; the next owner claims first
            return False
        finally:
            self._renewing.pop(n, None)
