"""What every endpoint shares: the role table, JSON bodies, paging."""

from __future__ import annotations

import base64
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.auth import Principal
from server.errors import BadRequest, Forbidden, PayloadTooLarge, UnsupportedMedia, Unprocessable
from server.store.connect import Store

__all__ = ["requires", "json_response", "read_json", "page_params", "listing", "Ctx",
           "encode_cursor", "decode_cursor", "problem", "json_depth"]

# The role table of API.md. "ingest" is its own branch: it may only post events.
RANK = {"viewer": 1, "manager": 2, "developer": 3, "admin": 4}
EVENT_ROLES = frozenset({"ingest", "manager", "developer", "admin"})

Endpoint = Callable[[Request], Awaitable[Response]]


class Ctx:
    """The authenticated caller of one request."""

    def __init__(self, request: Request, principal: Principal) -> None:
        self.request = request
        self.principal = principal
        self.store: Store = request.state.store
        self.workspace: str = principal.workspace or ""


def requires(role: str) -> Callable[[Callable[[Ctx], Awaitable[Response]]], Endpoint]:
    """Guard an endpoint with the role table; `role` is viewer|manager|developer|admin|events|root.
    The role is also recorded on the endpoint for the OpenAPI document."""

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
                raise Forbidden(f"This needs a {role} key or higher; this key's role is {p.role}.")
            return await fn(Ctx(request, p))

        endpoint.deskflow_role = role  # type: ignore[attr-defined]
        return endpoint

    return wrap


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
    if declared and declared.isdigit() and int(declared) > limit:
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


def encode_cursor(value: int | str) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        pad = "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(cursor + pad).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The cursor is not one this service gave out.",
                         code="invalid_cursor") from exc


def page_params(request: Request) -> tuple[int, int]:
    """(limit, offset) from ?limit= (default 50, max 500) and ?cursor= (an opaque offset)."""
    raw = request.query_params.get("limit")
    limit = 50
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= 500:
            raise BadRequest("`limit` must be an integer from 1 to 500.", code="invalid_limit")
        limit = int(raw)
    offset = 0
    cursor = request.query_params.get("cursor")
    if cursor:
        value = decode_cursor(cursor)
        if not value.isdigit():
            raise BadRequest("The cursor is not one this service gave out.", code="invalid_cursor")
        offset = int(value)
    return limit, offset


def listing(items: list[Any], limit: int, offset: int) -> Response:
    """Page an in-memory list: {"items", "next"}."""
    page = items[offset:offset + limit]
    more = offset + limit < len(items)
    return json_response({"items": page, "next": encode_cursor(offset + limit) if more else None})
