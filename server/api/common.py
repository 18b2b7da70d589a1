"""What every endpoint shares: the role table, JSON bodies, paging."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from server.api.query import NO_QUERY, PAGE, Query, decode_cursor, encode_cursor, whole_number
from server.auth import Principal
from server.errors import BadRequest, Forbidden, PayloadTooLarge, UnsupportedMedia, Unprocessable
from server.store.connect import Store

__all__ = ["requires", "json_response", "read_json", "page_params", "listing", "page", "Ctx",
           "encode_cursor", "decode_cursor", "problem", "json_depth", "Query", "path_number"]

# The role table of API.md. "ingest" is its own branch: it may only post events.
RANK = {"viewer": 1, "manager": 2, "developer": 3, "admin": 4}
EVENT_ROLES = frozenset({"ingest", "manager", "developer", "admin"})

Endpoint = Callable[[Request], Awaitable[Response]]


class Ctx:
    """The authenticated caller of one request; `query` holds its declared query parameters,
    parsed (server/api/query.py), with their defaults."""

    def __init__(self, request: Request, principal: Principal,
                 query: dict[str, Any] | None = None) -> None:
        self.request = request
        self.principal = principal
        self.store: Store = request.state.store
        self.workspace: str = principal.workspace or ""
        self.query: dict[str, Any] = query or {}


def requires(role: str, query: Query = NO_QUERY
             ) -> Callable[[Callable[[Ctx], Awaitable[Response]]], Endpoint]:
    """Guard an endpoint with the role table; `role` is viewer|manager|developer|admin|events|root.
    Then read its query parameters by `query` (any other parameter is a 422). The role and the
    query are also recorded on the endpoint (`deskflow_role`, `deskflow_query`) for the OpenAPI
    document."""

    def wrap(fn: Callable[[Ctx], Awaitable[Response]]) -> Endpoint:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            p: Principal = request.state.principal
            if role == "root":
                if not p.root:
                    raise Forbidden("Creating workspaces needs the operator's root token "
                                    "(DESKFLOW_ROOT_TOKEN).")
            elif p.root:
                raise Forbidden("The root token may only create workspaces; use a workspace key.")
            elif role == "events":
                if p.role not in EVENT_ROLES:
                    raise Forbidden(f"Posting events needs an ingest, manager, developer or admin "
                                    f"key; this key's role is {p.role}.")
            elif p.role == "ingest" or RANK.get(p.role, 0) < RANK[role]:
                raise Forbidden(f"This needs {_a(role)} key or higher; this key's role is "
                                f"{p.role}.")
            return await fn(Ctx(request, p, query.read(request.query_params,
                                                       lambda: _where(request))))

        endpoint.deskflow_role = role  # type: ignore[attr-defined]
        endpoint.deskflow_query = query  # type: ignore[attr-defined]
        return endpoint

    return wrap


def takes(query: Query = NO_QUERY) -> Callable[[Endpoint], Endpoint]:
    """For an endpoint without a role (health, metrics): only the query check of `requires`."""

    def wrap(fn: Endpoint) -> Endpoint:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            query.read(request.query_params, lambda: _where(request))
            return await fn(request)

        endpoint.deskflow_query = query  # type: ignore[attr-defined]
        return endpoint

    return wrap


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _where(request: Request) -> str:
    """`GET /v1/rules/{rule_id}`: the route as declared, not as requested (the message names the
    route, not the caller's ids). Looked up only when there is a problem to report."""
    endpoint = request.scope.get("endpoint")
    for route in getattr(request.app, "routes", None) or ():
        if getattr(route, "endpoint", None) is endpoint and request.method in (
                getattr(route, "methods", None) or ()):
            return f"{request.method} {route.path}"
    return f"{request.method} {request.url.path}"


def path_number(request: Request, name: str, what: str, maximum: int = 2 ** 31 - 1) -> int | None:
    """A whole-number path parameter (a revision or version n) by the one integer parser, or None
    when it is not one (the caller answers 404: no such revision)."""
    try:
        return whole_number(request.path_params[name], 1, maximum, what)
    except ValueError:
        return None


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


def problem(path: str, reason: str) -> dict[str, str]:
    return {"path": path, "reason": reason}


def json_depth(value: Any) -> int:
    """How deeply `value` nests lists and objects (a scalar is 0, `[]` and `{}` are 1), without
    recursion, so no document can exhaust the stack on the way in."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _too_deep(limit: int, depth: str) -> Unprocessable:
    return Unprocessable(f"The body nests {depth} levels deep; the JSON nesting limit is {limit} "
                         f"levels.", code="too_deep",
                         details=[problem("", f"nested more than {limit} levels")])


async def read_json(request: Request, max_bytes: int | None = None) -> Any:
    """The request body as JSON: 415 unless application/json, 413 over the limit (checked on the
    declared length and while reading), 400 when it does not parse, 422 when it nests deeper than
    `max_json_depth` (stored documents must stay well inside what JSON output allows)."""
    settings = request.state.store.settings
    limit = max_bytes or settings.max_body_bytes
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json" and not (ctype.startswith("application/") and
                                            ctype.endswith("+json")):
        raise UnsupportedMedia(f"Send the body as JSON with `Content-Type: application/json` "
                               f"(got {ctype or 'no content type'}).")
    declared = request.headers.get("content-length")
    if declared and _declared_length(declared) > limit:
        raise PayloadTooLarge(f"The body is {declared} bytes; the body size limit is {limit} "
                              f"bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over the body size limit of {limit} bytes.")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise BadRequest("The body is empty; send a JSON document.", code="invalid_json")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own ceiling (1024), far past ours
            raise _too_deep(settings.max_json_depth, "more than 1024") from exc
        raise BadRequest(f"The body is not valid JSON: {exc}.", code="invalid_json") from exc
    depth = json_depth(value)
    if depth > settings.max_json_depth:
        raise _too_deep(settings.max_json_depth, str(depth))
    return value


async def read_object(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise Unprocessable("The body must be a JSON object.",
                            details=[problem("", f"expected an object, got {type(body).__name__}")])
    return body


def _declared_length(declared: str) -> int:
    """Content-Length as a number (ASCII digits: int() would take "５" and fail on "²"); the
    server in front normally refuses a bad one first."""
    try:
        return whole_number(declared, 0, 10 ** 18 - 1)
    except ValueError as exc:
        raise BadRequest("The Content-Length header must be the body's size in bytes (ASCII "
                         "digits).", code="invalid_content_length") from exc


def page_params(request: Request) -> tuple[int, int]:
    """(limit, offset) from ?limit= (default 50, max 500) and ?cursor= (an opaque offset), by the
    paging parameters of server/api/query.py (declare them with `requires(..., Query(PAGE))`)."""
    values = Query(PAGE).read(QueryParams([(k, v) for k, v in request.query_params.multi_items()
                                           if k in ("limit", "cursor")]))
    return values["limit"], values["cursor"] or 0


def page(items: list[Any], following: int | None) -> Response:
    """The one answer of every paged list: {"items": [...], "next": cursor | null}, where `next`
    is the opaque cursor of the following page (`following`: its offset or sequence number, as the
    list's store read returned it), null on the last page."""
    return json_response({"items": items, "next": encode_cursor(following) if following else None})


def listing(items: list[Any], limit: int, offset: int) -> Response:
    """Page an in-memory list."""
    return page(items[offset:offset + limit], offset + limit if offset + limit < len(items) else None)
