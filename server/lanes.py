"""Per-ticket lanes within one partition: different tickets at once, each ticket in order.

Why: a partition holds many workspaces' tickets. Applied one entry after another, one event whose
rule calls a slow server (an `http_request` answered after seconds) held every other workspace's
events on that partition as long. So a partition loop hands its entries to lanes: a lane per
ticket with entries waiting, running that ticket's entries one after another in stream order (a
ticket's later entry waits for its earlier ones); lanes of different tickets run concurrently.

Bounds: at most `lanes` passes in flight per partition, and at most `share` of them for one
workspace, so one workspace with many slow tickets cannot take every lane; its further tickets
wait for one of its own lanes while other workspaces' tickets go ahead. Two such workspaces
(2 x share = lanes) could still hold them all: a third workspace's event waited 10.1 s behind their
5 s calls (tests/server/test_tenant_isolation_pools.py). So when every lane is busy, a workspace
that holds none starts one anyway, up to `hard` lanes in all: filling those takes 8 workspaces
at their share. For the same reason the
partition keeps reading while only saturated workspaces (every lane of their share busy) have
entries waiting: `ready` leaves their waiting entries out, so they cannot stop another
workspace's entries from being read. What one partition holds in memory is bounded by `MAX_HELD`
entries; past it the loop stops reading until lanes finish. One workspace's slow events could fill
that alone (ten batch requests), so one workspace holds at most a fifth of it, its further entries
left in the stream until it drains (server/parking.py).

Acks are per entry, as each completes (with `ack`, whatever completed while the last ack was in
flight goes in the next; `take_done` hands the rest to the caller). After a failure (the store went away, a
crash) no new entry starts; the caller drains the lanes in flight and claims the pending entries
again, in stream order -- the processed markers make a redelivery of an applied entry a no-op.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

__all__ = ["Lanes", "MAX_LANES", "WORKSPACE_SHARE", "HARD_LANES", "MAX_HELD", "SETTLE_S", "low_water"]

MAX_LANES = 8          # passes in flight per partition
WORKSPACE_SHARE = 4    # of which at most this many for one workspace
HARD_LANES = 32        # ... and past MAX_LANES, one more each for workspaces holding none, up to this
MAX_HELD = 5_000       # entries one partition holds taken but not applied (~1 KiB each)
# How long a partition round waits for its lanes before it reads again (a slow lane's neighbours
# wait no longer than this for their entries to be read).
SETTLE_S = 0.1

Entry = tuple[str, dict[str, str]]


def low_water(batch: int) -> int:
    """A partition reads more once fewer than this many entries are taken but not applied."""
    return max(1, batch // 2)


def _lane_of(entry_id: str, fields: dict[str, str]) -> tuple[str, str]:
    """(workspace, ticket id) of an entry; a malformed entry gets a lane of its own (the apply
    step logs and drops it)."""
    try:
        ticket = orjson.loads(fields["e"])["ticket"]["id"]
        return str(fields["w"]), str(ticket)
    except (KeyError, TypeError, ValueError):
        return "", "\0" + entry_id


class Lanes:
    def __init__(self, apply: Callable[[str, dict[str, str]], Awaitable[Any]], *,
                 lanes: int = MAX_LANES, share: int = WORKSPACE_SHARE, hard: int = HARD_LANES,
                 ack: Callable[[list[str]], Awaitable[Any]] | None = None) -> None:
        self._apply = apply
        self._ack = ack
        self._acking: asyncio.Task[None] | None = None
        self._lanes = max(1, lanes)
        self._share = max(1, min(share, self._lanes))
        self._hard = max(self._lanes, hard)
        self._queues: dict[tuple[str, str], collections.deque[Entry]] = {}
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._per_ws: collections.Counter[str] = collections.Counter()
        # Kept as they change, so that what each round and each finished entry asks costs the
        # number of workspaces, not the number of tickets waiting (a flood of 5,000 tickets made
        # every start scan them all): the lanes waiting to start, by workspace in arrival order;
        # the entries of those lanes, by workspace; the entries queued in all.
        self._idle: dict[str, dict[tuple[str, str], None]] = {}
        self._startable: collections.Counter[str] = collections.Counter()
        self._entries = 0
        self._held: collections.Counter[str] = collections.Counter()   # entries taken, by workspace
        self._done: list[str] = []
        self._changed = asyncio.Event()
        self._none_running = asyncio.Event()   # set when the last running lane ends
        self.failed: BaseException | None = None

    @property
    def backlog(self) -> int:
        """Entries taken but not yet applied (waiting or in flight)."""
        return self._entries + len(self._running)

    def held(self, workspace: str) -> int:
        """Entries of `workspace` taken and not yet applied (waiting or in flight)."""
        return self._held[workspace]

    def _release(self, workspace: str, n: int) -> None:
        left = self._held[workspace] - n
        if left > 0:
            self._held[workspace] = left
        else:
            del self._held[workspace]

    @property
    def ready(self) -> int:
        """Entries that could start now: those of lanes not running, leaving out workspaces whose
        share of lanes is all busy; what the partition loop weighs before it reads more. An entry
        queued behind its ticket's running lane is not one: a ticket whose events each took a
        second (a slow server, a long pass) and had a hundred queued kept the partition from
        reading another workspace's events until they were all applied."""
        return sum(n for ws, n in self._startable.items() if self._per_ws[ws] < self._share)

    @property
    def busy(self) -> bool:
        return bool(self._queues or self._running)

    def add(self, entries: list[Entry]) -> None:
        for entry_id, fields in entries:
            key = _lane_of(entry_id, fields)
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = collections.deque()
                if key not in self._running:
                    self._idle.setdefault(key[0], {})[key] = None
            queue.append((entry_id, fields))
            self._entries += 1
            self._held[key[0]] += 1
            if key not in self._running:
                self._startable[key[0]] += 1
        self._start_ready()

    def _unstartable(self, ws: str, n: int) -> None:
        """n entries of workspace ws are no longer waiting for a lane to start (theirs did)."""
        left = self._startable[ws] - n
        if left > 0:
            self._startable[ws] = left
        else:
            del self._startable[ws]

    def take_done(self) -> list[str]:
        done, self._done = self._done, []
        return done

    def drop_waiting(self) -> None:
        """Forget entries not started (they stay pending in the stream, to be claimed again)."""
        for key in [k for k in self._queues if k not in self._running]:
            dropped = len(self._queues.pop(key))
            self._entries -= dropped
            self._release(key[0], dropped)
        self._idle.clear()
        self._startable.clear()
        for key in self._running:   # keep each running lane's head: it is being applied
            queue = self._queues[key]
            while len(queue) > 1:
                queue.pop()
                self._entries -= 1
                self._release(key[0], 1)

    async def next(self, timeout: float | None) -> None:
        """Until a lane finishes an entry (or `timeout` seconds)."""
        if not self._running:
            return
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def quiet(self, wake: asyncio.Event, timeout: float) -> None:
        """Until no lane runs, `wake` is set, or `timeout` seconds."""
        if not self._running or wake.is_set():
            return
        self._none_running.clear()
        waits = [asyncio.ensure_future(self._none_running.wait()),
                 asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def settle(self, below: int, timeout: float) -> None:
        """Until fewer than `below` entries are ready (or `timeout` seconds)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.ready >= below and self._running:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await self.next(left)

    async def finish(self) -> None:
        """Apply every entry taken (a clean hand-back leaves nothing pending)."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    async def drain(self) -> None:
        """Start nothing new and wait for the lanes in flight."""
        self.drop_waiting()
        while self._running:
            await asyncio.wait(list(self._running.values()))

    def _ack_soon(self) -> None:
        """Ack applied entries now, in one call for whatever completed meanwhile (an applied
        entry left unacked would still count as queued)."""
        if self._ack is not None and self._acking is None:
            self._acking = asyncio.create_task(self._ack_all())

    async def _ack_all(self) -> None:
        try:
            while self._done:
                ids = self.take_done()
                try:
                    await self._ack(ids)  # type: ignore[misc]
                except Exception:  # noqa: BLE001 -- kept for the partition loop's own ack
                    self._done[:0] = ids
                    return
        finally:
            self._acking = None

    async def acked(self) -> None:
        """Until the ack in flight (if any) is done."""
        if self._acking is not None:
            await asyncio.wait([self._acking])

    def _start_ready(self) -> None:
        if self.failed is not None:
            return
        for ws in list(self._idle):
            idle = self._idle[ws]
            while idle and self._per_ws[ws] < self._share:
                # past `lanes`, only a workspace holding none starts one (up to `hard`)
                if len(self._running) >= self._lanes and (
                        self._per_ws[ws] or len(self._running) >= self._hard):
                    break
                key = next(iter(idle))
                del idle[key]
                self._unstartable(ws, len(self._queues[key]))
                self._per_ws[ws] += 1
                self._running[key] = asyncio.create_task(self._lane(key))
            if not idle:
                del self._idle[ws]

    async def _lane(self, key: tuple[str, str]) -> None:
        try:
            queue = self._queues[key]
            while queue and self.failed is None:
                entry_id, fields = queue[0]
                await self._apply(entry_id, fields)
                queue.popleft()
                self._entries -= 1
                self._release(key[0], 1)
                self._done.append(entry_id)
                self._changed.set()
                self._ack_soon()
        except BaseException as exc:  # noqa: BLE001 -- handed to the partition loop, which raises it
            if self.failed is None:
                self.failed = exc
        finally:
            del self._running[key]
            self._per_ws[key[0]] -= 1
            if not self._queues.get(key):
                self._queues.pop(key, None)
            else:   # entries left after a failure: a lane to start again once it is cleared
                self._idle.setdefault(key[0], {})[key] = None
                self._startable[key[0]] += len(self._queues[key])
            self._changed.set()
            self._start_ready()
            if not self._running:
                self._none_running.set()
