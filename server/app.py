"""create_app(settings) -> Starlette, built from explicit lists; resources opened in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from server.api import ROUTES
from server.api import admin as admin_page
from server.api.health import check_sandbox_jail
from server.auth import AuthMiddleware
from server.scripting import Scripting
from server.selfguard import SelfCallGuard
from server.errors import EXCEPTION_HANDLERS
from server.metrics import MetricsMiddleware
from server.outbox import Outbox
from server.settings import Settings
from server.store import events
from server.store.connect import Store, close_store, open_store
from server.store.directory import IndexBuilds
from server.store.errors import StoreUnavailable
from server.worker import Worker

__all__ = ["create_app"]

log = logging.getLogger("deskflow.app")


def _log_worker_exit(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the in-process worker stopped on an error", exc_info=task.exception())


def create_app(settings: Settings | None = None, *, worker: bool = False,
               store: Store | None = None, handlers: dict[str, Any] | None = None,
               clock: Callable[[], float] | None = None) -> Starlette:
    """The ASGI app. `worker=True` also runs a worker in the same event loop (`deskflow serve`).
    `store` lets a caller share an already-open store (it then stays open after shutdown).
    `handlers` ({"run_script": f, "http_request": g}) go to that worker's rules engine; without
    them those actions come back as effects. `clock` (wall seconds) is the rate limit's, for tests."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await check_sandbox_jail(settings)   # logs the sandbox jail; raises if required and incomplete
        own = store is None
        st = store or await open_store(settings)
        log.info("store: %s", st.description)
        try:
            await events.ensure_groups(st)
        except StoreUnavailable as exc:
            log.warning("store unavailable at start (%s); serving 503 until it is back", exc)
        scripting = Scripting(st, settings)
        index_builds = IndexBuilds(st)   # one-time contact index builds (store/directory.py)
        task = w = outbox = sending = None
        if worker:
            w = Worker(store=st, handlers=handlers, scripting=scripting)
            task = asyncio.create_task(w.run(), name="deskflow-worker")
            task.add_done_callback(_log_worker_exit)
            outbox = Outbox(store=st, settings=settings)
            sending = asyncio.create_task(outbox.run(), name="deskflow-outbox")
            sending.add_done_callback(_log_worker_exit)
        try:
            yield {"store": st, "settings": settings, "worker": w, "scripting": scripting,
                   "outbox": outbox, "index_builds": index_builds}
        finally:
            if outbox is not None and sending is not None:
                outbox.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sending, 30)
            if w is not None and task is not None:
                w.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 30)
            await index_builds.aclose()
            await scripting.aclose()
            if own:
                await close_store(st)

    return Starlette(
        routes=[*admin_page.routes, *ROUTES],
        middleware=[Middleware(MetricsMiddleware),  # outermost: counts every answer, 401s too
                    Middleware(SelfCallGuard),  # before auth: a broker's request gets no further
                    Middleware(AuthMiddleware, settings=settings, clock=clock)],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
