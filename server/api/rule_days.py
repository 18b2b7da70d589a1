"""GET /v1/rules/{rule_id}/days: a rule's fires per UTC day for up to 30 days (the managers'
page charts it). A module of its own so rules.py (the rule CRUD) does not grow."""

from __future__ import annotations

import time

from starlette.responses import Response
from starlette.routing import Route

from server.api.common import Ctx, json_response, requires
from server.api.query import Query, number
from server.errors import NotFound
from server.store import catalog
from server.store.rule_days import rule_days

__all__ = ["routes"]

_DAYS = Query(number("days", 1, 30, 30, "Days to return (1-30, default 30), today last.",
                     "invalid_days"))


@requires("viewer", _DAYS)
async def get_rule_days(ctx: Ctx) -> Response:
    """The rule's fires (and checks) per UTC day, oldest first."""
    rule_id = ctx.request.path_params["rule_id"]
    if await catalog.get_rule(ctx.store, ctx.workspace, rule_id) is None:
        raise NotFound(f"No rule {rule_id!r} in this workspace.")
    days = await rule_days(ctx.store, ctx.workspace, rule_id, int(time.time() // 3600),
                           ctx.query["days"])
    return json_response({"rule_id": rule_id, "days": days})


routes = [Route("/v1/rules/{rule_id}/days", get_rule_days, methods=["GET"])]
