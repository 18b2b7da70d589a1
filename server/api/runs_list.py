"""GET /v1/runs: the workspace's recent runs for the managers' page (newest first, paged,
filtered by rule, ticket and outcome).

Why a module of its own: tickets.py serves one ticket's runs; this list crosses tickets and its
filters are validated here (an unknown outcome is a 422 naming the allowed ones, an unknown
parameter is a 422 like everywhere else)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from server.api.common import Ctx, page, requires
from server.api.query import PAGE, Query, choice, text
from server.store import runs

__all__ = ["routes"]

_RUNS = Query(PAGE, text("rule", "Only runs in which this rule fired."),
              text("ticket", "Only runs of this ticket."),
              choice("outcome", runs.OUTCOMES,
                     "Only runs where a rule fired, something erred (the run, a rule or a "
                     "script), or an effect was suppressed."))


@requires("viewer", _RUNS)
async def list_runs(ctx: Ctx) -> Response:
    """Recent runs, newest first; ?rule= ?ticket= ?outcome=fired|errored|suppressed."""
    q = ctx.query
    items, nxt = await runs.list_recent_runs(
        ctx.store, ctx.workspace, rule_id=q["rule"], ticket_id=q["ticket"], outcome=q["outcome"],
        offset=q["cursor"] or 0, limit=q["limit"])
    return page(items, nxt)


routes = [Route("/v1/runs", list_runs, methods=["GET"])]
