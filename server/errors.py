"""The service's error tree and the one error envelope every 4xx/5xx uses.

    ApiError                      -> its .status, {"error": {"code", "message", "details"}}
      BadRequest          400     malformed JSON, bad cursor (invalid_cursor), a query number
                                  that is not one (invalid_limit, invalid_number)
      Unauthorized        401     missing or unknown key
      Forbidden           403     role too low, root token on a workspace route
      NotFound            404     also for other workspaces' objects (existence must not leak)
      Conflict            409
      PayloadTooLarge     413     body over 1 MiB, batch over 500 events
      UnsupportedMedia    415     not application/json
      Unprocessable       422     well-formed JSON that breaks the contract; details say where
                                  (a body nested past the JSON depth limit: code too_deep)
                                  (a query parameter the route does not take: unknown_parameter;
                                  a value it does not understand: invalid_parameter)
    Every limit's message names the limit and its maximum (README "Limits").
    StoreUnavailable (server.store.errors) -> 503 + Retry-After
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.store.errors import StoreUnavailable

__all__ = [
    "ApiError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict",
    "PayloadTooLarge", "UnsupportedMedia", "Unprocessable", "error_response", "store_unavailable_response", "EXCEPTION_HANDLERS",
]

log = logging.getLogger("deskflow.errors")


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        if code:
            self.code = code


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMedia(ApiError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(ApiError):
    status, code = 422, "validation_failed"


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": {"code": code, "message": message, "details": details}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


def store_unavailable_response(exc: Exception) -> Response:
    """The one 503 answer for a store outage (handler, auth middleware, readiness probe alike)."""
    return error_response(503, "store_unavailable",
                          "The store (Redis) is unavailable; retry shortly.",
                          str(exc) or None, {"Retry-After": "1"})


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    return store_unavailable_response(exc)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = {404: f"No route {request.url.path}.",
               405: f"Method {request.method} is not allowed on {request.url.path}."}.get(
        exc.status_code, str(exc.detail))
    return error_response(exc.status_code, code, message, None, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "An unexpected error occurred.")


EXCEPTION_HANDLERS = {
    ApiError: _api_error,
    StoreUnavailable: _store_unavailable,
    HTTPException: _http_exception,
    Exception: _unexpected,
}
