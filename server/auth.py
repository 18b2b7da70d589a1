"""Pure ASGI authentication: `Authorization: Bearer <key>` -> (workspace, role) on scope state.

Everything under /v1/ needs a key (or the root token, which only POST /v1/workspaces accepts);
what a role may do is enforced per endpoint by `requires` (server/api/common.py), the one place
the role table lives. Health, metrics, OpenAPI, docs and the admin page are public unless
DESKFLOW_METRICS_TOKEN is set, which then guards /metrics, /healthz and /readyz.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import error_response, store_unavailable_response
from server.settings import Settings
from server.store import catalog, ratelimit
from server.store.errors import StoreUnavailable

__all__ = ["Principal", "AuthMiddleware", "bearer_token"]

_GUARDED_PUBLIC = frozenset({"/metrics", "/healthz", "/readyz"})


@dataclass(frozen=True)
class Principal:
    workspace: str | None
    role: str
    key_id: str | None = None
    root: bool = False
    key_name: str | None = None  # the key's label: revisions and the audit log name who acted


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings,
                 clock: Callable[[], float] | None = None) -> None:
        """`clock` (wall seconds, default time.time) is what the rate limit's windows are read
        from; tests pass a fake one to cross a window without waiting for it."""
        self.app = app
        self.settings = settings
        self.clock = clock or time.time

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        token = bearer_token(scope)
        if not path.startswith("/v1/"):
            wanted = self.settings.metrics_token
            if wanted and path in _GUARDED_PUBLIC and not (
                    token and hmac.compare_digest(token, wanted)):
                await self._deny(scope, receive, send, 401, "unauthorized",
                                 "This endpoint needs the metrics token (DESKFLOW_METRICS_TOKEN).")
                return
            await self.app(scope, receive, send)
            return
        if token is None:
            await self._deny(scope, receive, send, 401, "unauthorized",
                             "Send an API key as `Authorization: Bearer <key>`.")
            return
        root = self.settings.root_token
        if root and hmac.compare_digest(token.encode(), root.encode()):
            principal = Principal(workspace=None, role="root", root=True)
        else:
            limit = self.settings.rate_limit_per_s
            try:
                if limit > 0:
                    record, rate = await ratelimit.lookup_and_count(scope["state"]["store"], token,
                                                                    self.clock())
                else:
                    record, rate = await catalog.lookup_key(scope["state"]["store"], token), 0.0
            except StoreUnavailable as exc:
                resp = store_unavailable_response(exc)
                await resp(scope, receive, send)
                return
            if record is None:
                await self._deny(scope, receive, send, 401, "unauthorized",
                                 "Unknown or revoked API key.")
                return
            if limit > 0 and rate > limit:
                resp = error_response(
                    429, "rate_limited",
                    f"This key made more than {limit:g} requests in the last second (the limit "
                    f"per key, DESKFLOW_RATE_LIMIT); retry after the Retry-After seconds.",
                    {"limit_per_second": limit}, {"Retry-After": "1"})
                await resp(scope, receive, send)
                return
            principal = Principal(workspace=record["workspace"], role=record["role"],
                                  key_id=record["id"], key_name=record.get("name"))
        scope["state"]["principal"] = principal
        await self.app(scope, receive, send)

    @staticmethod
    async def _deny(scope: Scope, receive: Receive, send: Send, status: int, code: str,
                    message: str) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        await error_response(status, code, message, None, headers)(scope, receive, send)
