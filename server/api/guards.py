"""`/v1/workspace/guards`: the workspace's loop and flood guard limits (server/guards.py).

GET (viewer+) answers the limits in force, `{"send_caps": [{"count", "per"}], "generated_per_minute",
"default": bool}`; PUT (admin) replaces them (omitted keys take the defaults; 422 names the path of
each problem); DELETE (admin) goes back to the defaults (204).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from server import audit
from server.api.common import Ctx, json_response, read_object, requires
from server.errors import Unprocessable
from server.guards import DEFAULT_LIMITS, GuardLimits
from server.store import guards as G

__all__ = ["routes"]


def _answer(limits: GuardLimits, default: bool) -> dict[str, Any]:
    return {**limits.to_spec(), "default": default}


@requires("viewer")
async def get_guards(ctx: Ctx) -> Response:
    """The loop and flood guard limits in force for this workspace (`default`: none were set)."""
    spec = await G.get_spec(ctx.store, ctx.workspace)
    limits = await G.get_limits(ctx.store, ctx.workspace) if spec is not None else DEFAULT_LIMITS
    return json_response(_answer(limits, spec is None))


@requires("admin")
async def put_guards(ctx: Ctx) -> Response:
    """Set the guard limits: per-ticket send caps and generated events per minute."""
    body = await read_object(ctx.request)
    limits, problems = GuardLimits.from_spec(body)
    if limits is None:
        first = problems[0]
        raise Unprocessable(f"The guard limits are not valid: {first['path']}: {first['reason']}",
                            details=problems)
    await G.put_spec(ctx.store, ctx.workspace, limits.to_spec())
    await audit.record(ctx, "guards.set", "guards", limits.to_spec())
    return json_response(_answer(limits, False))


@requires("admin")
async def delete_guards(ctx: Ctx) -> Response:
    """Go back to the default guard limits."""
    await G.delete_spec(ctx.store, ctx.workspace)
    await audit.record(ctx, "guards.reset", "guards")
    return Response(status_code=204)


routes = [
    Route("/v1/workspace/guards", get_guards, methods=["GET"]),
    Route("/v1/workspace/guards", put_guards, methods=["PUT"]),
    Route("/v1/workspace/guards", delete_guards, methods=["DELETE"]),
]
