"""The revision routes' plumbing that rules and SLA policies share (server/store/revisions.py).

    GET  /v1/<resource>/{id}/revisions                newest first, paged
    GET  /v1/<resource>/{id}/revisions/{n}            one revision (404: no such n)
    POST /v1/<resource>/{id}/revisions/{n}/restore    a new revision saying what n said

`Revisions.routes` builds the three endpoints of a resource, with the docstrings its module
gives (they are the OpenAPI document's summaries); what they do with a revision is here, once.
Restoring differs per resource (a rule keeps its place, a policy takes its place in the order), so
the restore endpoint hands the revision it may restore to the resource's own write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from server.api.common import (
    Ctx,
    page,
    json_response,
    page_params,
    path_number,
    problem,
    requires,
)
from server.api.query import PAGE, Query
from server.errors import NotFound, Unprocessable
from server.store import revisions as R

__all__ = ["Revisions", "Restore", "by_of"]

# restore(ctx, revision) -> the answer: write what the revision says as a new revision.
Restore = Callable[[Ctx, dict[str, Any]], Awaitable[Response]]


def by_of(ctx: Ctx) -> dict[str, Any]:
    """Who made a revision: the key's id and name."""
    return {"key_id": ctx.principal.key_id, "key_name": ctx.principal.key_name}


@dataclass(frozen=True)
class Revisions:
    """The revisions of one resource as the API answers them.

    `param` is the path parameter naming the object; `label` names one in a 404 ("Rule 'r1'",
    "SLA policy 'vip'" read `{label} {ident!r}`) and `noun` in the restore refusal ("the rule's
    deletion"); `exists(ctx)` answers 404 itself for an object that does not exist (asked only
    when it has no revisions: one saved before revisions were kept)."""

    res: R.Resource
    param: str
    label: str
    noun: str
    exists: Callable[[Ctx], Awaitable[Any]]

    async def one(self, ctx: Ctx) -> dict[str, Any]:
        """Revision {n} of the object; 404 when there is none (or n is not a number)."""
        ident, raw = ctx.request.path_params[self.param], ctx.request.path_params["n"]
        n = path_number(ctx.request, "n", "a revision number")
        rev = await R.get(ctx.store, ctx.workspace, self.res, ident, n) if n is not None else None
        if rev is None:
            raise NotFound(f"{self.label} {ident!r} has no revision {raw!r}.")
        return rev

    async def listing(self, ctx: Ctx) -> Response:
        """A page of the object's revisions, newest first: {items, next}."""
        ident = ctx.request.path_params[self.param]
        limit, offset = page_params(ctx.request)
        items, more = await R.page(ctx.store, ctx.workspace, self.res, ident, offset, limit)
        if not items and await R.count(ctx.store, ctx.workspace, self.res, ident) == 0:
            await self.exists(ctx)
        return page(items, offset + limit if more else None)

    async def restorable(self, ctx: Ctx) -> dict[str, Any]:
        """Revision {n}, refused (422) when it records the object's deletion."""
        rev = await self.one(ctx)
        if rev["action"] == "delete":
            raise Unprocessable(f"That revision records the {self.noun}'s deletion; restore an "
                                "earlier one.", details=[problem("n", "is a delete revision")])
        return rev

    def routes(self, base: str, docs: tuple[str, str, str], restore: Restore) -> list[Route]:
        """The list, get and restore routes under `base` ("/v1/rules/{rule_id}"), their endpoints
        documented by `docs` (list, get, restore)."""

        async def list_revisions(ctx: Ctx) -> Response:
            return await self.listing(ctx)

        async def get_revision(ctx: Ctx) -> Response:
            return json_response(await self.one(ctx))

        async def restore_revision(ctx: Ctx) -> Response:
            return await restore(ctx, await self.restorable(ctx))

        for fn, doc in zip((list_revisions, get_revision, restore_revision), docs, strict=True):
            fn.__doc__ = doc
        return [
            Route(f"{base}/revisions", requires("viewer", Query(PAGE))(list_revisions), methods=["GET"]),
            Route(f"{base}/revisions/{{n}}", requires("viewer")(get_revision), methods=["GET"]),
            Route(f"{base}/revisions/{{n}}/restore", requires("manager")(restore_revision),
                  methods=["POST"]),
        ]
