"""Workspaces (root token) and API keys (admin)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from server import audit
from server.api.common import Ctx, json_response, listing, page_params, read_object, requires
from server.api.query import PAGE, Query
from server.errors import NotFound, Unprocessable
from server.store import catalog

__all__ = ["routes"]


@requires("root")
async def create_workspace(ctx: Ctx) -> Response:
    """Create a workspace and its first admin key (root token only)."""
    body = await read_object(ctx.request)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise Unprocessable("`name` must be a non-empty string of at most 100 characters.",
                            details=[{"path": "name", "reason": "must be a non-empty string"}])
    ws, secret = await catalog.create_workspace(ctx.store, name.strip())
    return json_response({"id": ws["id"], "name": ws["name"], "admin_key": secret}, 201)


@requires("viewer")
async def get_workspace(ctx: Ctx) -> Response:
    """The caller's workspace and role."""
    ws = await catalog.get_workspace(ctx.store, ctx.workspace)
    if ws is None:
        raise NotFound("This key's workspace no longer exists.")
    return json_response({**ws, "role": ctx.principal.role})


@requires("admin")
async def create_key(ctx: Ctx) -> Response:
    """Create an API key; the secret is shown only in this answer."""
    body = await read_object(ctx.request)
    role, name = body.get("role"), body.get("name", "")
    problems = []
    if role not in catalog.ROLES:
        problems.append({"path": "role", "reason": f"must be one of {', '.join(catalog.ROLES)}"})
    if not isinstance(name, str) or len(name) > 200:
        problems.append({"path": "name", "reason": "must be a string of at most 200 characters"})
    if problems:
        raise Unprocessable("The key request is not valid.", details=problems)
    assert isinstance(role, str) and isinstance(name, str)  # checked above
    record, secret = await catalog.create_key(ctx.store, ctx.workspace, role, name)
    await audit.record(ctx, "key.create", f"key:{record['id']}", {"name": name, "role": role})
    return json_response({**record, "key": secret}, 201)


@requires("admin", Query(PAGE))
async def list_keys(ctx: Ctx) -> Response:
    """The workspace's keys, without secrets."""
    limit, offset = page_params(ctx.request)
    return listing(await catalog.list_keys(ctx.store, ctx.workspace), limit, offset)


@requires("admin")
async def delete_key(ctx: Ctx) -> Response:
    """Revoke a key at once."""
    key_id = ctx.request.path_params["key_id"]
    if not await catalog.revoke_key(ctx.store, ctx.workspace, key_id):
        raise NotFound(f"No key {key_id!r} in this workspace.")
    await audit.record(ctx, "key.revoke", f"key:{key_id}")
    return Response(status_code=204)


routes = [
    Route("/v1/workspaces", create_workspace, methods=["POST"]),
    Route("/v1/workspace", get_workspace, methods=["GET"]),
    Route("/v1/keys", create_key, methods=["POST"]),
    Route("/v1/keys", list_keys, methods=["GET"]),
    Route("/v1/keys/{key_id}", delete_key, methods=["DELETE"]),
]
