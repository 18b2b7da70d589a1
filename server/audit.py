"""The audit log: who changed which rule, SLA policy, group, script, allow-list, secret, key or
webhook setting, and when (issue 7). `GET /v1/audit` (admin) reads it, newest first.

Other routes call `record(ctx, action, target, detail)` after a single write, or
`record_in(pipe, ctx, ...)` to queue the entry in the MULTI/EXEC of the change itself, so a change
and its audit entry are written together or not at all. `action` is "<noun>.<verb>" ("rule.update",
"secret.put"), `target` is "<noun>:<name or id>" ("rule:rule_1a2b", "secret:CRM_TOKEN"). `detail`
must never hold a secret's value or an API key: names and ids only.

Stored as a stream in the workspace's slot (store/keys.py `audit`), capped near `MAX_ENTRIES`
(XADD MAXLEN ~): the stream id orders the entries and is the paging cursor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from redis.typing import EncodableT, FieldT
from starlette.responses import Response
from starlette.routing import Route

from server.store import keys as K
from server.store.replies import entries
from server.store.catalog import now_iso
from server.store.connect import Store
from server.store.errors import guarded

if TYPE_CHECKING:
    from server.api.common import Ctx

__all__ = ["record", "record_in", "read", "actor_of", "routes", "MAX_ENTRIES"]

MAX_ENTRIES = 100_000
_SCAN_BATCH = 500
_SCAN_CAP = 20_000  # entries one filtered page may walk before it hands back a cursor


def actor_of(ctx: Ctx) -> dict[str, Any]:
    """Who acts: the key's id, its name (label) and role."""
    p = ctx.principal
    return {"key_id": p.key_id, "key_name": p.key_name, "role": p.role}


def _entry(ctx: Ctx, action: str, target: str, detail: dict[str, Any] | None) -> dict[FieldT, EncodableT]:
    entry = {"at": now_iso(), "actor": actor_of(ctx), "action": action, "target": target,
             "detail": detail or {}}
    return {"e": orjson.dumps(entry)}


def record_in(pipe: Any, ctx: Ctx, action: str, target: str,
              detail: dict[str, Any] | None = None) -> None:
    """Queue an audit entry in `pipe` (a MULTI pipeline on the same workspace's slot)."""
    pipe.xadd(K.audit(ctx.workspace), _entry(ctx, action, target, detail), maxlen=MAX_ENTRIES,
              approximate=True)


@guarded
async def _add(store: Store, ctx: Ctx, action: str, target: str, detail: dict[str, Any] | None) -> None:
    await store.redis.xadd(K.audit(ctx.workspace), _entry(ctx, action, target, detail),
                           maxlen=MAX_ENTRIES, approximate=True)


async def record(ctx: Ctx, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """Append an audit entry (for changes that are a single write)."""
    await _add(ctx.store, ctx, action, target, detail)


def _matches(entry: dict[str, Any], target: str | None, actor: str | None) -> bool:
    if target and not (entry["target"] == target or entry["target"].startswith(target + ":")):
        return False
    if actor:
        who = entry.get("actor") or {}
        if actor not in (who.get("key_id"), who.get("key_name")):
            return False
    return True


@guarded
async def read(store: Store, workspace: str, *, before: str | None, limit: int,
               target: str | None = None, actor: str | None = None
               ) -> tuple[list[dict[str, Any]], str | None]:
    """(entries newest first, cursor of the next page or None). `target` matches exactly or as a
    prefix up to a colon ("rule" finds every rule); `actor` is a key id or key name."""
    items: list[dict[str, Any]] = []
    top = f"({before}" if before else "+"
    scanned = 0
    while True:
        batch = entries(await store.redis.xrevrange(K.audit(workspace), max=top, min="-", count=_SCAN_BATCH))
        if not batch:
            return items, None
        for sid, fields in batch:
            scanned += 1
            if "e" not in fields:
                continue
            entry = {"id": sid, **orjson.loads(fields["e"])}
            if _matches(entry, target, actor):
                items.append(entry)
                if len(items) == limit:
                    return items, sid
            if scanned >= _SCAN_CAP:
                return items, sid
        top = f"({sid}"


async def list_audit(ctx: Ctx) -> Response:
    """The audit log, newest first: ?target= (rule:<id>, or a kind such as rule), ?actor= (key id or
    key name), ?limit= (1-500, default 50), ?cursor=."""
    from server.api.common import encode_cursor, json_response

    q = ctx.query
    items, nxt = await read(ctx.store, ctx.workspace, before=q["cursor"], limit=q["limit"],
                            target=q["target"], actor=q["actor"])
    return json_response({"items": items, "next": encode_cursor(nxt) if nxt else None})


def _audit_cursor(raw: str) -> str:
    """An audit cursor: base64url of the stream id of the last entry of the previous page."""
    from server.api.query import ValueProblem, decode_cursor, stream_id
    from server.errors import ApiError

    try:
        return stream_id(decode_cursor(raw))
    except (ValueError, ApiError) as exc:  # ApiError: a cursor that does not decode
        raise ValueProblem("is not a cursor this list gave out (pass `next` from the previous "
                           "page)", 400, "invalid_cursor") from exc


def routes() -> list[Route]:
    """GET /v1/audit. A function, and server.api.common imported here rather than at the top, so
    that any module (route modules included) may import this one first."""
    from server.api.common import requires
    from server.api.query import Param, Query, number, text

    query = Query(number("limit", 1, 500, 50, "Entries per page (1-500, default 50).",
                         "invalid_limit"),
                  Param("cursor", "string", "`next` of the previous page.", convert=_audit_cursor),
                  text("target", "Only entries about this target (rule:<id>), or of a kind (rule)."),
                  text("actor", "Only entries by this key (its id or name)."))
    return [Route("/v1/audit", requires("admin", query)(list_audit), methods=["GET"])]
