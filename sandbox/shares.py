"""Fair shares of the worker pool: no workspace may hold more than `share` workers at once.

Finding A5 of issue 13: four 30 s runs of one workspace that called a hanging URL held every
worker, and another workspace's trivial script waited 35 s, then failed. Here a workspace's runs
beyond its share wait in that workspace's own queue while other workspaces' runs go first, and
every wait is bounded: `take` gives up with None (the run fails `busy`, "try again"), never with a
crash. Waiting workspaces are served round-robin, each queue first in, first out.

A pool that can grow passes `grow`: called when a workspace under its share would wait and no
worker is idle, it returns a new worker (or None at the pool's cap), so one workspace's runs never
wait on another's while the pool is under its cap (server/checkpool.py's elastic check processes).

Single-threaded (the pool's event loop); `W` is any worker object.
"""
from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

W = TypeVar("W")


class Shares(Generic[W]):
    def __init__(self, share: int, *, max_waiting: int = 100,
                 alive: Callable[[W], bool] = lambda w: True,
                 on_dead: Callable[[W], None] = lambda w: None,
                 grow: Callable[[], W | None] = lambda: None) -> None:
        self.share = max(1, share)
        self.max_waiting = max_waiting      # per workspace; more are refused at once (busy)
        self.idle: collections.deque[W] = collections.deque()
        self.holding: dict[str, int] = {}
        self.waiting: collections.OrderedDict[str, collections.deque[asyncio.Future[W | None]]] = (
            collections.OrderedDict())
        self._alive = alive
        self._on_dead = on_dead
        self._grow = grow

    @property
    def waiters(self) -> int:
        return sum(len(q) for q in self.waiting.values())

    def try_take(self, workspace: str) -> W | None:
        """The fast path, no future or timer: an idle worker when the workspace is under its
        share and has no earlier run waiting (its own queue stays first in, first out)."""
        if workspace in self.waiting or self.holding.get(workspace, 0) >= self.share:
            return None
        worker = self._pop_live()
        if worker is None:
            worker = self._grow()
        if worker is not None:
            self.holding[workspace] = self.holding.get(workspace, 0) + 1
        return worker

    async def take(self, workspace: str, timeout: float) -> W | None:
        """A worker within the workspace's share, or None after `timeout` seconds (busy)."""
        worker = self.try_take(workspace)
        if worker is not None:
            return worker
        queue = self.waiting.get(workspace)
        if queue is not None and len(queue) >= self.max_waiting:
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[W | None] = loop.create_future()
        self.waiting.setdefault(workspace, collections.deque()).append(future)
        timer = loop.call_later(timeout, self._expire, workspace, future)
        try:
            self._dispatch()
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result() is not None:
                self.finish(workspace, future.result())    # handed over as the caller left
            else:
                self._forget(workspace, future)
            raise
        finally:
            timer.cancel()

    def give(self, worker: W) -> None:
        """A worker is available (fresh, or back from a run)."""
        self.idle.append(worker)
        self._dispatch()

    def finish(self, workspace: str, worker: W | None) -> None:
        """The workspace's run is over; `worker` goes back to the idle set unless it is None
        (retired by the caller)."""
        held = self.holding.get(workspace, 0) - 1
        if held > 0:
            self.holding[workspace] = held
        else:
            self.holding.pop(workspace, None)
        if worker is not None:
            self.idle.append(worker)
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting:
            workspace = next((ws for ws in self.waiting if self.holding.get(ws, 0) < self.share), None)
            if workspace is None:
                return                      # every waiting workspace holds its whole share
            queue = self.waiting[workspace]
            future = queue[0]
            if future.done():               # its caller was cancelled and has not cleaned up yet
                queue.popleft()
                if not queue:
                    del self.waiting[workspace]
                continue
            worker = self._pop_live()
            if worker is None:
                worker = self._grow()
            if worker is None:
                return
            queue.popleft()
            if queue:
                self.waiting.move_to_end(workspace)     # round-robin between workspaces
            else:
                del self.waiting[workspace]
            self.holding[workspace] = self.holding.get(workspace, 0) + 1
            future.set_result(worker)

    def take_idle(self, extra: int, idle_for: float, since: Callable[[W], float],
                  first: Callable[[W], Any] | None = None) -> list[W]:
        """Up to `extra` idle workers idle for `idle_for` seconds or more (`since`: when each
        went idle), in the order of `first` (else the idle order), taken out of the pool: what an
        elastic pool stops when it holds `extra` workers past what it keeps."""
        now, taken = time.monotonic(), list[W]()
        for worker in sorted(self.idle, key=first) if first else list(self.idle):
            if len(taken) >= extra:
                break
            if now - since(worker) >= idle_for:
                self.idle.remove(worker)
                taken.append(worker)
        return taken

    def _pop_live(self) -> W | None:
        while self.idle:
            worker = self.idle.popleft()
            if self._alive(worker):
                return worker
            self._on_dead(worker)           # killed while idle: replaced, not used
        return None

    def _expire(self, workspace: str, future: asyncio.Future[W | None]) -> None:
        if not future.done():
            self._forget(workspace, future)
            future.set_result(None)

    def _forget(self, workspace: str, future: asyncio.Future[W | None]) -> None:
        queue = self.waiting.get(workspace)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self.waiting[workspace]
