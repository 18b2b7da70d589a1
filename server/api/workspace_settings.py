"""`/v1/workspace/settings`: a workspace's own switches, one JSON object (server/store/
workspace_settings.py keeps it).

`strict_events` (default false): an event with keys that are not part of the event format (a
misspelt `subjet`, a ticket's `requester`) is a 422 for this workspace, as with `?strict=true` on
POST /v1/events; without it those keys are listed in the answer's `ignored` and not applied.
`?strict=false` on a request overrides the setting for that request.

GET (viewer+) answers the settings in force with `default` (none were set); PUT (admin) sets the
keys it names (the others keep their value); an unknown key or a non-boolean value is a 422.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from server import audit
from server.api.common import Ctx, json_response, problem, read_object, requires
from server.api.query import did_you_mean
from server.errors import Unprocessable
from server.store import workspace_settings as S
from server.store.connect import Store

__all__ = ["routes", "get_settings", "DEFAULTS"]

DEFAULTS: dict[str, Any] = {"strict_events": False}


async def get_settings(store: Store, workspace: str) -> dict[str, Any]:
    """The settings in force: the stored ones over the defaults (a key no longer known is
    dropped, so an older document never breaks a request)."""
    stored = await S.get_stored(store, workspace) or {}
    return {k: stored.get(k, v) if type(stored.get(k, v)) is type(v) else v
            for k, v in DEFAULTS.items()}


@requires("viewer")
async def get_workspace_settings(ctx: Ctx) -> Response:
    """The workspace's settings in force (`default`: none were set)."""
    stored = await S.get_stored(ctx.store, ctx.workspace)
    return json_response({**await get_settings(ctx.store, ctx.workspace),
                          "default": stored is None})


@requires("admin")
async def put_workspace_settings(ctx: Ctx) -> Response:
    """Set some of the workspace's settings, e.g. {"strict_events": true}."""
    body = await read_object(ctx.request)
    problems = []
    for key, value in body.items():
        if key not in DEFAULTS:
            hint = did_you_mean(key, DEFAULTS)
            problems.append(problem(key, "is not a setting" + (
                f"; did you mean `{hint}`?" if hint else f" (settings: {', '.join(DEFAULTS)})")))
        elif type(value) is not type(DEFAULTS[key]):
            problems.append(problem(key, "must be true or false"))
    if problems:
        raise Unprocessable("The settings are not valid: " + "; ".join(
            f"{p['path']}: {p['reason']}" for p in problems), details=problems)
    settings = {**await get_settings(ctx.store, ctx.workspace), **body}
    await S.put(ctx.store, ctx.workspace, settings)
    await audit.record(ctx, "settings.set", "settings", body)
    return json_response({**settings, "default": False})


routes = [
    Route("/v1/workspace/settings", get_workspace_settings, methods=["GET"]),
    Route("/v1/workspace/settings", put_workspace_settings, methods=["PUT"]),
]
