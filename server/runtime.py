"""The background half of a deskflow process: a worker and the webhook outbox, started and stopped
in one place for both `deskflow serve` (inside the app's lifespan) and `deskflow worker`.

Stopping is ordered: the outbox stops first (it finishes the delivery in hand), then the worker
finishes the batch in hand and releases its partitions' leases. Each gets `timeout` seconds; a
part that does not stop in time is left to the event loop's shutdown, never awaited forever."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from server.outbox import Outbox
from server.scripting import Scripting
from server.settings import Settings
from server.store.connect import Store
from server.worker import Worker

__all__ = ["Runtime"]

log = logging.getLogger("deskflow.runtime")

STOP_TIMEOUT = 30.0  # seconds each part gets to finish what it holds


def _log_exit(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped on an error", task.get_name(), exc_info=task.exception())


class Runtime:
    """A worker (and, unless `outbox=False`, the outbox) over one open store."""

    def __init__(self, store: Store, settings: Settings, scripting: Scripting, *,
                 burst: bool = False, outbox: bool = True,
                 handlers: dict[str, Any] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.worker = Worker(store=store, burst=burst, handlers=handlers, scripting=scripting,
                             clock=clock)
        self.outbox = Outbox(store=store, settings=settings) if outbox else None
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def _spawn(self, name: str, run: Any) -> None:
        task = self._tasks[name] = asyncio.create_task(run, name=f"deskflow-{name}")
        task.add_done_callback(_log_exit)

    def start(self) -> None:
        """Start the parts as tasks of the running loop (the app's lifespan)."""
        if self.outbox is not None:
            self._spawn("outbox", self.outbox.run())
        self._spawn("worker", self.worker.run())

    async def run(self) -> int:
        """Run until the worker stops (a signal, or the end of a burst); the events it applied."""
        if self.outbox is not None:
            self._spawn("outbox", self.outbox.run())
        try:
            return await self.worker.run()
        finally:
            await self._stop_outbox()

    def request_stop(self) -> None:
        """Ask every part to stop (safe from a signal handler); `stop` also waits for them."""
        self.worker.stop()
        if self.outbox is not None:
            self.outbox.stop()

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        await self._stop_outbox(timeout)
        self.worker.stop()
        task = self._tasks.pop("worker", None)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout)

    async def _stop_outbox(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.outbox is None:
            return
        self.outbox.stop()
        task = self._tasks.pop("outbox", None)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout)
