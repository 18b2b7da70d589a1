"""The managers' page: GET /admin and its static assets under /admin/...

The page is a small static app (server/admin/: HTML, CSS, plain JS modules, no build step) that
calls only the public /v1 API with the user's key. Assets are served from a fixed allow-list of
the files in that directory, each with an explicit content type and a strict Content-Security-
Policy (self only, no inline script or style), so a rule name that smuggles markup can never run.

`/admin/vocab.json` is generated here from the engine's own tables (fields and their types, the
ops each type takes, action keys, settable enums, triggers) so the editor offers exactly what the
engine accepts and cannot drift from it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rules import TRIGGERS
from rules.actions import ACTION_KEYS, METHODS
from rules.fields import FIXED_FIELDS, SETTABLE
from rules.ops import OPS, OPS_FOR_TYPE

__all__ = ["routes", "CSP", "vocabulary"]

ASSET_DIR = Path(__file__).resolve().parent.parent / "admin"

# Self only: scripts, styles, fetches and images come from this origin; nothing inline, no frames,
# no plugins, no <base> tricks, forms post nowhere else.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'; object-src 'none'")

# Only these extensions are served, each with the content type the browser must get.
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}

_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate every time: the page is small and a stale app.js against a newer API is worse.
    "Cache-Control": "no-cache",
}

# Ticket fields the editor groups under "Ticket"; the rest by prefix.
_TICKET_ORDER = ("subject", "description", "status", "priority", "channel", "department",
                 "assignee", "tags", "created_at", "updated_at", "last_customer_message_at",
                 "last_agent_message_at")


def vocabulary() -> dict[str, Any]:
    """The engine's vocabulary as the editor needs it."""
    fields = [{"name": f.name, "type": f.type, "changeable": f.changeable}
              for f in sorted(FIXED_FIELDS.values(),
                              key=lambda f: (_TICKET_ORDER.index(f.name)
                                             if f.name in _TICKET_ORDER else 99, f.name))]
    return {
        "triggers": sorted(TRIGGERS),
        "fields": fields,
        # Families whose type is known only at run time ("any": every op, scalar values).
        "prefixed": [{"prefix": "custom.", "label": "Ticket custom field", "changeable": True},
                     {"prefix": "contact.custom.", "label": "Contact custom field",
                      "changeable": True},
                     {"prefix": "vars.", "label": "Variable (from http_request)",
                      "changeable": False}],
        "ops": sorted(OPS),
        "ops_for_type": {t: sorted(ops) for t, ops in OPS_FOR_TYPE.items()},
        "actions": {k: {"required": sorted(req), "optional": sorted(opt)}
                    for k, (req, opt) in ACTION_KEYS.items()},
        "settable": {k: (sorted(v) if v is not None else None) for k, v in SETTABLE.items()},
        "methods": sorted(METHODS),
    }


@functools.lru_cache(maxsize=1)
def _vocab_body() -> bytes:
    return orjson.dumps(vocabulary())


def _assets() -> dict[str, Path]:
    """name -> path of every servable file (read once per request: the set is tiny)."""
    if not ASSET_DIR.is_dir():
        return {}
    return {p.name: p for p in ASSET_DIR.iterdir()
            if p.is_file() and p.suffix in _TYPES and not p.name.startswith(".")}


def _respond(request: Request, body: bytes, content_type: str) -> Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {**_HEADERS, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=None, headers={**headers, "Content-Type": content_type})


async def page(request: Request) -> Response:
    """The managers' page (index.html)."""
    path = _assets().get("index.html")
    if path is None:
        return Response("The admin page's files are missing from server/admin/.", 500,
                        media_type="text/plain")
    return _respond(request, path.read_bytes(), _TYPES[".html"])


async def asset(request: Request) -> Response:
    """One static asset by bare file name; anything else (sub-paths, dot files, other types) 404s."""
    name = request.path_params["name"]
    if name == "vocab.json":
        return _respond(request, _vocab_body(), _TYPES[".json"])
    path = _assets().get(name)
    if path is None:
        return Response("Not found", 404, media_type="text/plain",
                        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})
    return _respond(request, path.read_bytes(), _TYPES[path.suffix])


routes = [
    Route("/admin", page, methods=["GET"]),
    Route("/admin/", page, methods=["GET"], include_in_schema=False),
    Route("/admin/{name:str}", asset, methods=["GET"], include_in_schema=False),
]
