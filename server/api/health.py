"""Health, readiness and metrics."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import JailUnavailable, missing_jail_layers, probe_jail
from server.api.common import json_response, takes
from server.errors import store_unavailable_response
from server import metrics_scrape as M
from server.settings import Settings
from server.store.errors import StoreUnavailable

__all__ = ["check_sandbox_jail", "routes"]

log = logging.getLogger("deskflow.sandbox")


async def check_sandbox_jail(settings: Settings) -> dict[str, Any]:
    """At start-up: which layers of the sandbox jail this machine gives the script workers
    (sandbox/jail.py), in the log; with DESKFLOW_SANDBOX_REQUIRE_JAIL=1, JailUnavailable (the
    service does not start) naming each missing layer. Probed once per process (one worker start)."""
    jail = await probe_jail()
    gaps = missing_jail_layers(jail)
    log.log(logging.WARNING if gaps else logging.INFO, "sandbox jail: %s%s", orjson.dumps(jail).decode(),
            f"; missing: {', '.join(gaps)}" if gaps else "")
    if gaps and settings.sandbox_require_jail:
        raise JailUnavailable(gaps)
    return jail


@takes()
async def healthz(request: Request) -> Response:
    """The process is up."""
    return json_response({"status": "ok"})


@takes()
async def readyz(request: Request) -> Response:
    """The store answers; `jail` says which layers of the sandbox jail the script workers run
    under (README "Sandbox jail")."""
    store = request.state.store
    try:
        await store.ping()
    except StoreUnavailable as exc:
        return store_unavailable_response(exc)
    return json_response({"status": "ready", "store": "embedded" if store.embedded else "redis",
                          "jail": await probe_jail()})


@takes()
async def metrics(request: Request) -> Response:
    """Prometheus text format: this process's counters and the store's queue gauges. Reading the
    store is bounded by a short timeout: with Redis down the answer is still 200, with
    deskflow_store_up 0."""
    body = await M.render(request.state.store)
    return Response(body, media_type=M.CONTENT_TYPE)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
