"""Contacts: one contact with its ticket counts, and a group's contacts (paged)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from server.api.common import Ctx, json_response, page, requires
from server.api.query import PAGE, Param, Query, ValueProblem
from server.api.validate import GROUP_NAME
from server.errors import ApiError, NotFound
from server.store import catalog, directory

__all__ = ["routes", "group_param"]


def _group(raw: str) -> str:
    if not GROUP_NAME.fullmatch(raw):
        raise ValueProblem("must be a group name: 1-64 letters, digits, _ . : - (starting with a "
                           "letter or digit)")
    return raw


def group_param(description: str) -> Param:
    """?group=: a group name (validated: a 422 `invalid_parameter` otherwise)."""
    return Param("group", "string", description, convert=_group)


_CONTACTS = Query(PAGE, group_param("Only the contacts in this group (any case)."))


class IndexBuilding(ApiError):
    """The workspace's contact indexes are still being built (store/directory.py)."""

    status, code = 503, "index_building"


@requires("viewer", _CONTACTS)
async def list_contacts(ctx: Ctx) -> Response:
    """Contacts by id, paged; ?group= lists a group's (its own index: a page costs its size).
    Contacts stored before the indexes existed are indexed first, once, in the background: until
    that is done the answer is a 503 `index_building` with its progress."""
    builds: directory.IndexBuilds = ctx.request.state.index_builds
    if not await builds.ready(ctx.workspace):
        progress = await directory.build_progress(ctx.store, ctx.workspace)
        raise IndexBuilding(
            "This workspace's contacts stored by an older version are being indexed (once); "
            "retry shortly.", details={"indexed": progress["indexed"]},
            headers={"Retry-After": "1"})
    group = ctx.query["group"]
    items, nxt = await directory.list_group_contacts(ctx.store, ctx.workspace, group,
                                                     ctx.query["limit"], ctx.query["cursor"] or 0)
    return page(items, nxt)


@requires("viewer")
async def get_contact(ctx: Ctx) -> Response:
    """A contact as deskflow knows it (from events and membership changes), with open_tickets
    and tickets_30d (server/customers.py)."""
    contact_id = ctx.request.path_params["contact_id"]
    contact = await catalog.get_contact(ctx.store, ctx.workspace, contact_id)
    if contact is None:
        raise NotFound(f"No contact {contact_id!r} in this workspace.")
    counts = await directory.contact_counts(ctx.store, ctx.workspace, contact_id)
    return json_response({**contact, **counts})


routes = [
    Route("/v1/contacts", list_contacts, methods=["GET"]),
    Route("/v1/contacts/{contact_id}", get_contact, methods=["GET"]),
]
