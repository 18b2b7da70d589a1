"""GET /v1/stats/events, /v1/stats/sla and /v1/stats/rules: the workspace's events per hour, SLA
targets met / breached per day and every rule's fires per day, for the managers' page charts
(server/store/stats.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.responses import Response
from starlette.routing import Route

from server.api.common import Ctx, json_response, requires
from server.api.query import Query, number
from server.store import stats
from server.store.stats import MAX_DAYS, MAX_HOURS

__all__ = ["routes"]

_HOURS = Query(number("hours", 1, MAX_HOURS, 48,
                      f"Hours to return (1-{MAX_HOURS}, default 48), the current hour last.",
                      "invalid_hours"))
_DAYS = Query(number("days", 1, MAX_DAYS, 30,
                     f"Days to return (1-{MAX_DAYS}, default 30), today last.", "invalid_days"))


@requires("viewer", _HOURS)
async def get_events(ctx: Ctx) -> Response:
    """Events applied per UTC hour (generated ones included), oldest first."""
    hours = await stats.events_per_hour(ctx.store, ctx.workspace, int(time.time() // 3600),
                                        ctx.query["hours"])
    return json_response({"hours": hours, "total": sum(h["events"] for h in hours)})


@requires("viewer", _DAYS)
async def get_sla(ctx: Ctx) -> Response:
    """SLA targets met in time and breached per UTC day, oldest first."""
    days = await stats.sla_per_day(ctx.store, ctx.workspace, int(time.time() // 3600),
                                   ctx.query["days"])
    return json_response({"days": days, "met": sum(d["met"] for d in days),
                          "breached": sum(d["breached"] for d in days)})


@requires("viewer", _DAYS)
async def get_rules(ctx: Ctx) -> Response:
    """Every rule's fires per UTC day (the rule list's sparklines: one request, not one a rule),
    by rule id. Its cost: one read when nothing changed (store/stats.rules_chart), else the rule
    ids and one read a day of the packed day counters -- no rule body, no command a rule."""
    now_hour = int(time.time() // 3600)
    ids, per_day = await stats.rules_chart(ctx.store, ctx.workspace, now_hour, ctx.query["days"])
    today = now_hour // 24
    dates = [datetime.fromtimestamp(d * 86400, UTC).date().isoformat()
             for d in range(today - ctx.query["days"] + 1, today + 1)]
    return json_response({"dates": dates, "rules": dict(zip(ids, per_day, strict=True))})


routes = [Route("/v1/stats/events", get_events, methods=["GET"]),
          Route("/v1/stats/sla", get_sla, methods=["GET"]),
          Route("/v1/stats/rules", get_rules, methods=["GET"])]
