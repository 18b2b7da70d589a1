"""Contact groups and contact membership."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from server import audit
from server.api.common import Ctx, json_response, listing, page_params, read_object, requires
from server.api.query import FORCE, PAGE, Query
from server.api.references import Catalog, delete_in_use, force_param, read_catalog
from server.api.rules import audit_rules, by_of
from server.api.validate import GROUP_NAME, group_names_problems
from server.automation import unique_ci
from server.errors import Conflict, NotFound, Unprocessable
from server.store import catalog
from server.store import keys as K
from server.store.catalog import now_iso

__all__ = ["routes", "MAX_GROUP_DESCRIPTION", "description_problem"]

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# A group's description (a label's note): without a bound each of a workspace's groups could be a
# 1 MiB body, and GET /v1/groups, the export and every rule write's catalog read them whole.
MAX_GROUP_DESCRIPTION = 1000


def description_problem(value: Any) -> str | None:
    """Why a group's `description` is refused (a string over MAX_GROUP_DESCRIPTION characters)."""
    if isinstance(value, str) and len(value) > MAX_GROUP_DESCRIPTION:
        return (f"is {len(value):,} characters; the group description limit is "
                f"{MAX_GROUP_DESCRIPTION:,} characters (limit MAX_GROUP_DESCRIPTION)")
    return None


def _color(body: dict[str, Any], problems: list[dict[str, str]]) -> None:
    """`color` (the label's background) and `text_color` (its text), validated alike."""
    for key in ("color", "text_color"):
        color = body.get(key)
        if color is not None and (not isinstance(color, str) or not _COLOR.fullmatch(color)):
            problems.append({"path": key, "reason": "must be a colour like #ff8800, or null"})


@requires("manager")
async def create_group(ctx: Ctx) -> Response:
    """Create a contact group {"name", "color"?, "text_color"?, "description"?}."""
    body = await read_object(ctx.request)
    name = body.get("name")
    problems: list[dict[str, str]] = []
    if not isinstance(name, str) or not GROUP_NAME.fullmatch(name):
        problems.append({"path": "name", "reason": "must be 1-64 letters, digits, _ . : - "
                                                   "(starting with a letter or digit)"})
    _color(body, problems)
    if (reason := description_problem(body.get("description"))) is not None:
        problems.append({"path": "description", "reason": reason})
    if problems:
        raise Unprocessable("The group is not valid.", details=problems)
    assert isinstance(name, str)
    group = {"name": name, "color": body.get("color"), "text_color": body.get("text_color"),
             "created_at": now_iso()}
    if isinstance(body.get("description"), str):
        group["description"] = body["description"]
    await catalog.create_group(ctx.store, ctx.workspace, group,   # (or 422 too_many_groups)
                               Conflict(f"A group named {name!r} exists already.", code="already_exists"))
    await audit.record(ctx, "group.create", f"group:{name}",
                       {"color": group["color"], "text_color": group["text_color"]})
    return json_response(group, 201)


@requires("viewer", Query(PAGE))
async def list_groups(ctx: Ctx) -> Response:
    """Contact groups by name."""
    limit, offset = page_params(ctx.request)
    return listing(await catalog.list_groups(ctx.store, ctx.workspace), limit, offset)


async def _load(ctx: Ctx) -> dict[str, Any]:
    name = ctx.request.path_params["name"]
    group = await catalog.get_group(ctx.store, ctx.workspace, name)
    if group is None:
        raise NotFound(f"No group {name!r} in this workspace.")
    return group


@requires("viewer")
async def get_group(ctx: Ctx) -> Response:
    """One group, with how many contacts are in it."""
    group = await _load(ctx)
    count = await catalog.group_contacts(ctx.store, ctx.workspace, group["name"])
    return json_response({**group, "contacts": count})


@requires("manager")
async def patch_group(ctx: Ctx) -> Response:
    """Change a group's color, text_color or description (renaming is not supported: delete and create)."""
    group = await _load(ctx)
    body = await read_object(ctx.request)
    problems: list[dict[str, str]] = []
    if "name" in body and body["name"] != group["name"]:
        problems.append({"path": "name", "reason": "a group cannot be renamed"})
    _color(body, problems)
    if "description" in body and body["description"] is not None and not isinstance(
            body["description"], str):
        problems.append({"path": "description", "reason": "must be a string or null"})
    if (reason := description_problem(body.get("description"))) is not None:
        problems.append({"path": "description", "reason": reason})
    if problems:
        raise Unprocessable("The group change is not valid.", details=problems)
    for key in ("color", "text_color", "description"):
        if key in body:
            group[key] = body[key]
    if not await catalog.update_group(ctx.store, ctx.workspace, group):   # (deleted meanwhile)
        raise NotFound(f"No group {group['name']!r} in this workspace.")
    await audit.record(ctx, "group.update", f"group:{group['name']}",
                       {k: body[k] for k in ("color", "text_color", "description") if k in body})
    return json_response(group)


@requires("manager", Query(FORCE))
async def delete_group(ctx: Ctx) -> Response:
    """Delete a group definition (contacts keep the name in their groups). Enabled rules that add
    or remove it make this a 409 listing them; ?force=true deletes anyway and disables them."""
    name, ws = ctx.request.path_params["name"], ctx.workspace

    async def load(p: Any) -> tuple[Catalog, Catalog, str]:
        if not await p.hexists(K.groups(ws), name):
            raise NotFound(f"No group {name!r} in this workspace.")
        before = await read_catalog(p, ws)
        rest = [(k.decode() if isinstance(k, bytes) else k) for k in await p.hkeys(K.groups(ws))]
        after = replace(before, groups=frozenset(k.casefold() for k in rest if k != name))
        return before, after, name

    def queue_delete(pipe: Any, target: str) -> None:
        pipe.hdel(K.groups(ws), target)
        audit.record_in(pipe, ctx, "group.delete", f"group:{target}")

    disabled = await delete_in_use(ctx, by_of(ctx), f"Group {name!r}", [K.groups(ws)], load,
                                   queue_delete, audit_rules(ctx))
    if force_param(ctx):
        return json_response({"deleted": {"group": name}, "disabled_rules": disabled}, 200)
    return Response(status_code=204)


async def set_groups(ctx: Ctx, ident: str, write: Any) -> Response:
    """PUT .../groups of a contact or a company: {"groups": [...]} checked as every list of group
    names is (validate.group_names_problems), de-duplicated case-insensitively, then
    `write(store, workspace, ident, groups)` -> the record; answers {"id", "groups"}."""
    body = await read_object(ctx.request)
    groups = body.get("groups")
    problems = group_names_problems(groups)
    if problems:
        raise Unprocessable("`groups` must be a list of group names.", details=problems)
    assert isinstance(groups, list)
    record = await write(ctx.store, ctx.workspace, ident, unique_ci(groups))
    return json_response({"id": ident, "groups": record["groups"]})


@requires("manager")
async def put_contact_groups(ctx: Ctx) -> Response:
    """Set a contact's groups {"groups": [...]}; every ticket of the contact shows them at once."""
    return await set_groups(ctx, ctx.request.path_params["contact_id"], catalog.set_contact_groups)


routes = [
    Route("/v1/groups", create_group, methods=["POST"]),
    Route("/v1/groups", list_groups, methods=["GET"]),
    Route("/v1/groups/{name}", get_group, methods=["GET"]),
    Route("/v1/groups/{name}", patch_group, methods=["PATCH"]),
    Route("/v1/groups/{name}", delete_group, methods=["DELETE"]),
    Route("/v1/contacts/{contact_id}/groups", put_contact_groups, methods=["PUT"]),
]
