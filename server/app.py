"""create_app(settings) -> Starlette, built from explicit lists; resources opened in the lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from server.api import ROUTES
from server.api import admin as admin_page
from server.api.health import check_sandbox_jail
from server.auth import AuthMiddleware
from server.checkpool import CheckPool
from server.scripting import Scripting
from server.selfguard import SelfCallGuard
from server.errors import EXCEPTION_HANDLERS
from server.metrics import MetricsMiddleware
from server.runtime import Runtime
from server.settings import Settings
from server.store import events
from server.store.connect import Store, close_store, open_store
from server.store.directory import IndexBuilds
from server.store.errors import StoreUnavailable

__all__ = ["create_app"]

log = logging.getLogger("deskflow.app")


def create_app(settings: Settings | None = None, *, worker: bool = False,
               store: Store | None = None, handlers: dict[str, Any] | None = None,
               clock: Callable[[], float] | None = None,
               worker_clock: Callable[[], datetime] | None = None) -> Starlette:
    """The ASGI app. `worker=True` also runs a worker in the same event loop (`deskflow serve`).
    `store` lets a caller share an already-open store (it then stays open after shutdown).
    `handlers` ({"run_script": f, "http_request": g}) go to that worker's rules engine; without
    them those actions come back as effects. `clock` (wall seconds) is the rate limit's, for tests;
    `worker_clock` (an aware datetime) is the worker's: when timers fire, what time rules and SLA
    clocks read, the time a run records (tests move it instead of sleeping until a timer is due)."""
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
        checks = CheckPool(settings.check_processes, timeout_s=settings.check_timeout_s)
        runtime = Runtime(st, settings, scripting, handlers=handlers,
                          clock=worker_clock) if worker else None
        if runtime is not None:
            runtime.start()
        try:
            yield {"store": st, "settings": settings, "scripting": scripting,
                   "worker": runtime.worker if runtime else None,
                   "outbox": runtime.outbox if runtime else None, "index_builds": index_builds,
                   "checks": checks}
        finally:
            if runtime is not None:
                await runtime.stop()
            await index_builds.aclose()
            await checks.aclose()
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
