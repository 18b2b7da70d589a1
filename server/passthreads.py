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

Shared fairly: the threads are every partition's, and a pass waiting on a slow server holds its
thread for as long as the server takes. Two workspaces whose rules POST to one, with tickets on
all 16 partitions, had 2 x 4 lanes x 16 = 128 passes asking for the 64 threads: a third
workspace's pass waited behind them for a whole slow answer (5.4 s,
tests/server/test_tenant_isolation_pools.py). So a workspace holds at most WORKSPACE_THREADS
threads at once (a batch of its computing passes is one); its further passes wait on the loop,
in order, holding no thread. And when every pool thread is held, a workspace that holds none
gets a thread of its own started for its pass, up to EXTRA_THREADS such threads at once (a
waiting thread costs its stack's touched pages, ~100 KB): a third workspace is not held until
EXTRA_THREADS workspaces wait at once.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["PassThreads", "BATCH", "WORKSPACE_THREADS", "EXTRA_THREADS"]

BATCH = 8                # computing passes of one workspace run together in one thread at most
WORKSPACE_THREADS = 16   # threads one workspace's passes hold at once
EXTRA_THREADS = 64       # past the pool, a thread each for workspaces holding none, at most

_Pass = tuple[Callable[[], Any], "asyncio.Future[Any]"]


class PassThreads:
    def __init__(self, threads: int, *, share: int = WORKSPACE_THREADS,
                 extra: int = EXTRA_THREADS) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="deskflow-pass")
        self._size = threads
        self._share = max(1, share)
        self._extra_max = extra
        self._lock = threading.Lock()
        # what the threads hand back to the loop: results, and the threads they free
        self._ready: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        self._freed: list[tuple[str, bool]] = []
        self._waking = False
        self._asked: dict[str, list[_Pass]] = {}
        # the loop's own (touched on the loop only)
        self.busy = 0      # pool threads given a job
        self.extra = 0     # extra threads running
        self._held: dict[str, int] = {}
        self._queued: dict[str, collections.deque[list[_Pass]]] = {}

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def held(self, workspace: str) -> int:
        """Threads the workspace's passes hold now."""
        return self._held.get(workspace, 0)

    async def run(self, fn: Callable[[], Any], workspace: str, *, computes: bool = False) -> Any:
        """fn() in a thread, within the workspace's share. `computes`: fn only computes (no
        handlers to wait on), and may share a thread with that workspace's other computing passes
        asked for in this turn of the loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not computes:
            self._start(loop, workspace, [(fn, fut)])
        else:
            if not self._asked:
                loop.call_soon(self._submit, loop)
            self._asked.setdefault(workspace, []).append((fn, fut))
        return await fut

    def _submit(self, loop: asyncio.AbstractEventLoop) -> None:
        asked, self._asked = self._asked, {}
        for workspace, passes in asked.items():
            for i in range(0, len(passes), BATCH):
                self._start(loop, workspace, passes[i:i + BATCH])

    def _start(self, loop: asyncio.AbstractEventLoop, workspace: str, passes: list[_Pass]) -> None:
        """Run `passes` on a thread now, or queue them behind the workspace's share."""
        held = self._held.get(workspace, 0)
        if held >= self._share:
            self._queued.setdefault(workspace, collections.deque()).append(passes)
            return
        self._held[workspace] = held + 1
        if self.busy >= self._size and held == 0 and self.extra < self._extra_max:
            self.extra += 1
            threading.Thread(target=self._call, args=(loop, workspace, True, passes),
                             name="deskflow-pass-extra", daemon=True).start()
        else:
            self.busy += 1
            self._pool.submit(self._call, loop, workspace, False, passes)

    def _call(self, loop: asyncio.AbstractEventLoop, workspace: str, extra: bool,
              passes: list[_Pass]) -> None:
        last = len(passes) - 1
        for i, (fn, fut) in enumerate(passes):
            try:
                done: tuple[asyncio.Future[Any], Any, BaseException | None] = (fut, fn(), None)
            except BaseException as exc:  # noqa: BLE001 -- handed to the awaiting pass
                done = (fut, None, exc)
            # the thread is free with the last result: its pass wakes to a thread already counted free
            self._hand(loop, done, (workspace, extra) if i == last else None)

    def _hand(self, loop: asyncio.AbstractEventLoop,
              done: tuple[asyncio.Future[Any], Any, BaseException | None],
              freed: tuple[str, bool] | None) -> None:
        """(In a thread) a result or a freed thread for the loop; the loop is woken once for
        everything handed while it had not yet looked."""
        with self._lock:
            self._ready.append(done)
            if freed is not None:
                self._freed.append(freed)
            wake, self._waking = not self._waking, True
        if wake:
            try:
                loop.call_soon_threadsafe(self._hand_back, loop)
            except RuntimeError:   # the loop is closed: nobody waits for it any more
                pass

    def _hand_back(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
            freed, self._freed = self._freed, []
            self._waking = False
        for fut, result, exc in ready:
            if fut.cancelled():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)
        for workspace, extra in freed:
            if extra:
                self.extra -= 1
            else:
                self.busy -= 1
            left = self._held.get(workspace, 1) - 1
            if left > 0:
                self._held[workspace] = left
            else:
                self._held.pop(workspace, None)
            queue = self._queued.get(workspace)
            while queue:
                # (a pass given up while it waited, e.g. at shutdown, is not run)
                passes = [p for p in queue.popleft() if not p[1].cancelled()]
                if not queue:
                    del self._queued[workspace]
                if passes:
                    self._start(loop, workspace, passes)
                    break
