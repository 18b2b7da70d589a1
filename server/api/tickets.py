"""Tickets, run records and the updates feed (reads)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from server.api.common import Ctx, json_response, page, page_params, requires
from server.api.query import PAGE, Param, Query, ValueProblem, choice, number, stream_id, text
from server.api.validate import STATUSES
from server.errors import NotFound
from server.store import runs, tickets

__all__ = ["routes"]


def _feed_cursor(raw: str) -> str:
    try:
        return stream_id(raw)
    except ValueError as exc:
        raise ValueProblem("must be a cursor from this feed (`next` or an entry's `cursor`, like "
                           "1795430353069-0)", 400, "invalid_cursor") from exc


_TICKETS = Query(PAGE, choice("status", STATUSES, "Only tickets with this status."),
                 text("tag", "Only tickets with this tag (any case)."),
                 text("group", "Only tickets whose contact is in this group (any case)."),
                 text("sla_policy", "Only tickets under this SLA policy (its exact name)."))
_FEED = Query(number("limit", 1, 1000, 100, "Entries per page (1-1000, default 100).",
                     "invalid_limit"),
              Param("cursor", "string", "`next` of the previous page (a stream id); without "
                    "it the feed starts at the beginning.", aliases=("after",),
                    convert=_feed_cursor))


@requires("viewer")
async def get_ticket(ctx: Ctx) -> Response:
    """The ticket as automation left it, with `sla`, `snoozed_until` and `version`."""
    ticket_id = ctx.request.path_params["ticket_id"]
    ticket = await tickets.get_ticket(ctx.store, ctx.workspace, ticket_id)
    if ticket is None:
        raise NotFound(f"No ticket {ticket_id!r} in this workspace.")
    return json_response(ticket)


@requires("viewer", _TICKETS)
async def list_tickets(ctx: Ctx) -> Response:
    """Tickets in creation order; filters ?group= ?status= ?tag= (case-insensitive for group/tag)
    and ?sla_policy= (the managers' page lists a policy's tickets and their targets' states)."""
    q = ctx.query
    items, nxt = await tickets.list_tickets(
        ctx.store, ctx.workspace, status=q["status"], tag=q["tag"], group=q["group"],
        sla_policy=q["sla_policy"], limit=q["limit"], after_seq=q["cursor"] or 0)
    return page(items, nxt)


@requires("viewer", Query(PAGE))
async def ticket_runs(ctx: Ctx) -> Response:
    """The ticket's run records, newest first."""
    ticket_id = ctx.request.path_params["ticket_id"]
    if await tickets.get_ticket(ctx.store, ctx.workspace, ticket_id) is None:
        raise NotFound(f"No ticket {ticket_id!r} in this workspace.")
    limit, offset = page_params(ctx.request)
    items, nxt = await runs.list_ticket_runs(ctx.store, ctx.workspace, ticket_id, offset=offset,
                                             limit=limit)
    return page(items, nxt)


@requires("viewer")
async def get_run(ctx: Ctx) -> Response:
    """One run record: per-rule explain, changes, effects, timings."""
    run_id = ctx.request.path_params["run_id"]
    run = await runs.get_run(ctx.store, ctx.workspace, run_id)
    if run is None:
        raise NotFound(f"No run {run_id!r} in this workspace.")
    return json_response(run)


@requires("viewer", _FEED)
async def updates(ctx: Ctx) -> Response:
    """The updates feed, oldest first, after ?cursor= (or its older name ?after=)."""
    after = ctx.query["cursor"]
    items = await runs.read_feed(ctx.store, ctx.workspace, after=after, limit=ctx.query["limit"])
    return json_response({"updates": items, "next": items[-1]["cursor"] if items else after})


routes = [
    Route("/v1/tickets", list_tickets, methods=["GET"]),
    Route("/v1/tickets/{ticket_id}", get_ticket, methods=["GET"]),
    Route("/v1/tickets/{ticket_id}/runs", ticket_runs, methods=["GET"]),
    Route("/v1/runs/{run_id}", get_run, methods=["GET"]),
    Route("/v1/updates", updates, methods=["GET"]),
]
