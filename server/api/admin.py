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

from rules import ACTORS, TRIGGERS
from rules.actions import ACTION_KEYS, METHODS
from rules.business import BUSINESS_OPS
from rules.fields import FIXED_FIELDS, ORDINAL, SETTABLE, Field
from rules.ops import EXTRA_OPS_FOR_FIELD, OPS, OPS_FOR_TYPE
from rules.ordinal import is_ordinal

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


# The value each op takes (rules/ops.py check_value; docs/rules-engine.md, "Values"), as the kind
# of control the editor draws for it. tests/web/test_admin_vocab.py compiles, for every field and
# every op the engine accepts on it, a rule with a value of the served kind, so a new op without a
# kind here (KeyError), or one whose kind the engine refuses, fails there.
_VALUE_KIND = {
    **dict.fromkeys(("is_empty", "is_not_empty", "changed"), "none"),
    **dict.fromkeys(("in", "not_in", "includes_any", "includes_all"), "strings"),
    **dict.fromkeys(("contains", "not_contains", "starts_with", "ends_with", "matches"), "string"),
    **dict.fromkeys(("gt", "gte", "lt", "lte"), "number"),
    **dict.fromkeys(("older_than", "newer_than", *sorted(BUSINESS_OPS)), "duration"),
    # equality: text on text fields, any JSON scalar on custom.* / vars.* ("scalar" there)
    **dict.fromkeys(("is", "is_not", "includes", "excludes", "changed_from", "changed_to"), "equal"),
}
# Fixed fields whose text values come from a set: the editor offers a choice of them.
_VALUES: dict[str, tuple[str, ...]] = {
    **{k: tuple(sorted(v)) for k, v in SETTABLE.items() if v is not None},
    **ORDINAL,  # in their order: `priority gt normal` reads along it
    "event.actor": ACTORS,
}


def value_kind(field: Field, op: str) -> str:
    """none | string | strings | scalar | scalars | number | duration | choice (one of the field's
    ordered values: `priority gt normal`)."""
    if is_ordinal(field, op):
        return "choice"
    kind = _VALUE_KIND[op]
    if field.type == "any":  # custom.*, vars.*: JSON scalars, compared without coercion
        return {"equal": "scalar", "strings": "scalars"}.get(kind, kind)
    if op in ("changed_from", "changed_to") and field.type == "list":
        return "strings"
    return "string" if kind == "equal" else kind


def field_ops(field: Field) -> dict[str, str]:
    """Every op the engine accepts on `field` (its type's, the field's extra ones such as the
    ordinal comparisons on status and priority; no `changed*` on event and vars fields), with the
    kind of value each takes."""
    ops = OPS_FOR_TYPE[field.type] | EXTRA_OPS_FOR_FIELD.get(field.name, frozenset())
    if not field.changeable:
        ops = ops - {"changed", "changed_from", "changed_to"}
    return {op: value_kind(field, op) for op in sorted(ops)}


def vocabulary() -> dict[str, Any]:
    """The engine's vocabulary as the editor needs it."""
    fields = [{"name": f.name, "type": f.type, "changeable": f.changeable, "ops": field_ops(f),
               **({"values": list(_VALUES[f.name])} if f.name in _VALUES else {})}
              for f in sorted(FIXED_FIELDS.values(),
                              key=lambda f: (_TICKET_ORDER.index(f.name)
                                             if f.name in _TICKET_ORDER else 99, f.name))]
    prefixed = [("custom.", "Ticket custom field", "ticket"),
                ("contact.custom.", "Contact custom field", "ticket"),
                ("contact.company.custom.", "Company custom field", "ticket"),
                ("vars.", "Variable (from http_request)", "vars")]
    return {
        "triggers": sorted(TRIGGERS),
        "fields": fields,
        # Families whose type is known only at run time ("any": every op, scalar values).
        "prefixed": [{"prefix": prefix, "label": label, "changeable": source == "ticket",
                      "ops": field_ops(Field(prefix + "x", "any", source,  # type: ignore[arg-type]
                                             lambda t, e, v: None))}
                     for prefix, label, source in prefixed],
        # Ops that also take a "calendar": a calendar name (an SLA policy with business_hours) or
        # an inline business_hours object.
        "calendar_ops": sorted(BUSINESS_OPS),
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
