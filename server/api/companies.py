"""Companies: a contact's company as events and PUT /v1/companies/{id}/groups left it, paged
by id or by group (an index per group: a page costs its size, never a scan)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from server.api.common import Ctx, json_response, page, requires
from server.api.contacts import group_param
from server.api.groups import set_groups
from server.api.query import PAGE, Query
from server.api.validate import MAX_ID
from server.errors import NotFound
from server.store import companies

__all__ = ["routes"]

_COMPANIES = Query(PAGE, group_param("Only the companies in this group (any case)."))


def _company_id(ctx: Ctx) -> str:
    company_id: str = ctx.request.path_params["company_id"]
    if len(company_id) > MAX_ID or any(ord(ch) < 32 or ord(ch) == 127 for ch in company_id):
        raise NotFound(f"No company {company_id[:MAX_ID]!r} in this workspace.")
    return company_id


@requires("viewer", _COMPANIES)
async def list_companies(ctx: Ctx) -> Response:
    """Companies by id, paged; ?group= lists a group's."""
    items, nxt = await companies.list_companies(ctx.store, ctx.workspace, ctx.query["group"],
                                                ctx.query["limit"], ctx.query["cursor"] or 0)
    return page(items, nxt)


@requires("viewer")
async def get_company(ctx: Ctx) -> Response:
    """A company as deskflow knows it: {"id", "name", "domain", "groups", "custom"}."""
    company_id = _company_id(ctx)
    company = await companies.get_company(ctx.store, ctx.workspace, company_id)
    if company is None:
        raise NotFound(f"No company {company_id!r} in this workspace.")
    return json_response(company)


@requires("manager")
async def put_company_groups(ctx: Ctx) -> Response:
    """Set a company's groups {"groups": [...]}: every ticket of its contacts shows them at once,
    and rules on contact.company.groups see them from the next event on."""
    return await set_groups(ctx, _company_id(ctx), companies.set_company_groups)


routes = [
    Route("/v1/companies", list_companies, methods=["GET"]),
    Route("/v1/companies/{company_id}", get_company, methods=["GET"]),
    Route("/v1/companies/{company_id}/groups", put_company_groups, methods=["PUT"]),
]
