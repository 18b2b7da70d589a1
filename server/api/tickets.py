"""Tickets, run records and the updates feed (reads)."""

from __future__ import annotations

import re

from starlette.responses import Response
from starlette.routing import Route

from server.api.common import Ctx, decode_cursor, encode_cursor, json_response, page_params, requires
from server.errors import BadRequest, NotFound
from server.store import runs, tickets

__all__ = ["routes"]

_STREAM_ID = re.compile(r"^\d+-\d+$")


@requires("viewer")
async def get_ticket(ctx: Ctx) -> Response:
    """The ticket as automation left it, with `sla`, `snoozed_until` and `version`."""
    ticket_id = ctx.request.path_params["ticket_id"]
    ticket = await tickets.get_ticket(ctx.store, ctx.workspace, ticket_id)
    if ticket is None:
        raise NotFound(f"No ticket {ticket_id!r} in this workspace.")
    return json_response(ticket)


@requires("viewer")
async def list_tickets(ctx: Ctx) -> Response:
    """Tickets in creation order; filters ?group= ?status= ?tag= (case-insensitive for group/tag)."""
    q = ctx.request.query_params
    limit = page_params_limit(ctx)
    after = 0
    if q.get("cursor"):
        raw = decode_cursor(q["cursor"])
        if not raw.isdigit():
            raise BadRequest("The cursor is not one this service gave out.", code="invalid_cursor")
        after = int(raw)
    items, nxt = await tickets.list_tickets(
        ctx.store, ctx.workspace, status=q.get("status"), tag=q.get("tag"), group=q.get("group"),
        limit=limit, after_seq=after)
    return json_response({"items": items, "next": encode_cursor(nxt) if nxt else None})


def page_params_limit(ctx: Ctx) -> int:
    raw = ctx.request.query_params.get("limit")
    if raw is None:
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise BadRequest("`limit` must be an integer from 1 to 500.", code="invalid_limit")
    return int(raw)


@requires("viewer")
async def ticket_runs(ctx: Ctx) -> Response:
    """The ticket's run records, newest first."""
    ticket_id = ctx.request.path_params["ticket_id"]
    if await tickets.get_ticket(ctx.store, ctx.workspace, ticket_id) is None:
        raise NotFound(f"No ticket {ticket_id!r} in this workspace.")
    limit, offset = page_params(ctx.request)
    items, nxt = await runs.list_ticket_runs(ctx.store, ctx.workspace, ticket_id, offset=offset,
                                             limit=limit)
    return json_response({"items": items, "next": encode_cursor(nxt) if nxt else None})


@requires("viewer")
async def get_run(ctx: Ctx) -> Response:
    """One run record: per-rule explain, changes, effects, timings."""
    run_id = ctx.request.path_params["run_id"]
    run = await runs.get_run(ctx.store, ctx.workspace, run_id)
    if run is None:
        raise NotFound(f"No run {run_id!r} in this workspace.")
    return json_response(run)


@requires("viewer")
async def updates(ctx: Ctx) -> Response:
    """The updates feed, oldest first, after the cursor."""
    q = ctx.request.query_params
    after = q.get("after") or None
    if after is not None and not _STREAM_ID.match(after):
        raise BadRequest("`after` must be a cursor from this feed (like 1795430353069-0).",
                         code="invalid_cursor")
    raw = q.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise BadRequest("`limit` must be an integer from 1 to 1000.", code="invalid_limit")
    items = await runs.read_feed(ctx.store, ctx.workspace, after=after, limit=int(raw))
    return json_response({"updates": items, "next": items[-1]["cursor"] if items else after})


routes = [
    Route("/v1/tickets", list_tickets, methods=["GET"]),
    Route("/v1/tickets/{ticket_id}", get_ticket, methods=["GET"]),
    Route("/v1/tickets/{ticket_id}/runs", ticket_runs, methods=["GET"]),
    Route("/v1/runs/{run_id}", get_run, methods=["GET"]),
    Route("/v1/updates", updates, methods=["GET"]),
]
