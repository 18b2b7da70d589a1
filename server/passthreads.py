"""The threads a worker's passes run in, when a pass must not run on the event loop.

Why threads: a pass whose rules match regexes or count business time is bounded (rules/regexes.py:
250 ms of regex time a pass) but long enough to be felt by every workspace whose events share the
loop; and a pass whose rules call scripts or make HTTP requests waits for them (the handlers
hand each call to the loop). In a thread the first releases the GIL while it matches and the
second waits without holding the loop.

What it costs, and what is done about it: handing a pass to a thread and its result back is a
queue put, a thread woken, the GIL passed over and back, and a write to the loop's self-pipe:
~15-35 us a pass with 16 in flight against ~5-15 us for passes run together in one thread
(bench/RESULTS.md, "Session 9"), on a pass of ~400 us. So:

- results go back together: a pass that ends while earlier ones wait to be handed back joins
  them, so a burst of passes wakes the loop once (call_soon_threadsafe), not once each;
- passes that only compute (no handlers to wait on) and are asked for in the same turn of the
  loop -- the passes whose loads came back in one shared round trip -- go to a thread together,
  up to BATCH of them, one after another, and only a workspace's own: a slow workspace's pass
  holds at most BATCH - 1 passes of that same workspace, never another workspace's. Each pass's
  result is handed back as it ends, not when its batch does.
- a pass that waits on scripts or HTTP gets a thread of its own, as before (one waiting seconds
  on a slow server must hold nothing else).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["PassThreads", "BATCH"]

BATCH = 8   # computing passes of one workspace run together in one thread at most


class PassThreads:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="deskflow-pass")
        self._lock = threading.Lock()
        self._ready: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        self._asked: dict[str, list[tuple[Callable[[], Any], asyncio.Future[Any]]]] = {}

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[[], Any], *, batch: str | None = None) -> Any:
        """fn() in a thread. `batch` (a workspace id): fn only computes, and may share a thread
        with that workspace's other passes asked for in this turn of the loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if batch is None:
            self._pool.submit(self._call, loop, [(fn, fut)])
        else:
            if not self._asked:
                loop.call_soon(self._submit, loop)
            self._asked.setdefault(batch, []).append((fn, fut))
        return await fut

    def _submit(self, loop: asyncio.AbstractEventLoop) -> None:
        asked, self._asked = self._asked, {}
        for passes in asked.values():
            for i in range(0, len(passes), BATCH):
                self._pool.submit(self._call, loop, passes[i:i + BATCH])

    def _call(self, loop: asyncio.AbstractEventLoop,
              passes: list[tuple[Callable[[], Any], asyncio.Future[Any]]]) -> None:
        for fn, fut in passes:
            try:
                done: tuple[asyncio.Future[Any], Any, BaseException | None] = (fut, fn(), None)
            except BaseException as exc:  # noqa: BLE001 -- handed to the awaiting pass
                done = (fut, None, exc)
            with self._lock:
                self._ready.append(done)
                first = len(self._ready) == 1
            if first:
                loop.call_soon_threadsafe(self._hand_back)

    def _hand_back(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for fut, result, exc in ready:
            if fut.cancelled():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)
