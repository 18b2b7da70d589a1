"""Rules: CRUD, enable/disable, order, and the dry-run test (explains, applies nothing)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from server import automation
from server.api.common import (
    Ctx,
    encode_cursor,
    json_response,
    listing,
    page_params,
    read_object,
    requires,
)
from server.api.validate import validate_event
from server.errors import NotFound, Unprocessable
from server.store import catalog, runs, tickets
from server.store.catalog import now_iso

__all__ = ["routes"]

# Bookkeeping the service owns; a client cannot set them.
_OWNED = ("id", "position", "created_at", "updated_at", "revision", "last_fired_at", "fired_24h")


def _check(rule: dict[str, Any]) -> None:
    """422 with every problem the engine finds (path + reason), or nothing."""
    from rules import validate_rule

    problems: list[dict[str, str]] = []
    if "name" in rule and (not isinstance(rule["name"], str) or not rule["name"].strip()):
        problems.append({"path": "name", "reason": "must be a non-empty string"})
    problems += [{"path": p.path, "reason": p.reason} for p in validate_rule(rule)]
    if problems:
        raise Unprocessable("The rule is not valid: " + "; ".join(
            f"{p['path'] or 'rule'}: {p['reason']}" for p in problems[:5]), details=problems)


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _OWNED}


async def _load(ctx: Ctx) -> dict[str, Any]:
    rule_id = ctx.request.path_params["rule_id"]
    rule = await catalog.get_rule(ctx.store, ctx.workspace, rule_id)
    if rule is None:
        raise NotFound(f"No rule {rule_id!r} in this workspace.")
    return rule


@requires("manager")
async def create_rule(ctx: Ctx) -> Response:
    """Create a rule (disabled unless the body says "enabled": true)."""
    body = _clean(await read_object(ctx.request))
    body.setdefault("enabled", False)
    _check(body)
    existing = await catalog.list_rules(ctx.store, ctx.workspace)
    now = now_iso()
    rule_id = catalog.new_rule_id()
    rule = {"id": rule_id, **body, "name": body.get("name") or rule_id,
            "position": max((r.get("position", 0) for r in existing), default=0) + 1,
            "created_at": now, "updated_at": now, "revision": 1}
    await catalog.put_rule(ctx.store, ctx.workspace, rule)
    return json_response((await _with_stats(ctx, [rule]))[0], 201)


async def _with_stats(ctx: Ctx, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rules with `last_fired_at` and `fired_24h` (read-only; from the per-rule fire counters)."""
    import time

    stats = await catalog.rule_stats(ctx.store, ctx.workspace, [r["id"] for r in rules], int(time.time() // 3600))
    return [{**r, **stats[r["id"]]} for r in rules]


@requires("viewer")
async def list_rules(ctx: Ctx) -> Response:
    """Rules in evaluation order, each with when it last fired and how often in the last 24 h."""
    limit, offset = page_params(ctx.request)
    rules = await catalog.list_rules(ctx.store, ctx.workspace)
    page = await _with_stats(ctx, rules[offset:offset + limit])
    return json_response({"items": page, "next": encode_cursor(offset + limit) if offset + limit < len(rules) else None})


@requires("viewer")
async def get_rule(ctx: Ctx) -> Response:
    """One rule, with last_fired_at and fired_24h."""
    return json_response((await _with_stats(ctx, [await _load(ctx)]))[0])


async def _save(ctx: Ctx, current: dict[str, Any], new: dict[str, Any]) -> Response:
    _check(new)
    rule = {**new, "id": current["id"], "name": new.get("name") or current.get("name") or current["id"],
            "position": current.get("position", 0), "created_at": current.get("created_at"),
            "updated_at": now_iso(), "revision": int(current.get("revision", 1)) + 1}
    await catalog.put_rule(ctx.store, ctx.workspace, rule)
    return json_response((await _with_stats(ctx, [rule]))[0])


@requires("manager")
async def replace_rule(ctx: Ctx) -> Response:
    """Replace a rule; `enabled` keeps its current value unless given."""
    current = await _load(ctx)
    body = _clean(await read_object(ctx.request))
    body.setdefault("enabled", current.get("enabled", False))
    return await _save(ctx, current, body)


@requires("manager")
async def patch_rule(ctx: Ctx) -> Response:
    """Change some top-level keys (rename, conditions, ...); null removes an optional key."""
    current = await _load(ctx)
    body = _clean(await read_object(ctx.request))
    merged = {k: v for k, v in current.items() if k not in _OWNED}
    for key, value in body.items():
        if value is None and key in ("conditions", "description", "stop"):
            merged.pop(key, None)
        else:
            merged[key] = value
    return await _save(ctx, current, merged)


@requires("manager")
async def delete_rule(ctx: Ctx) -> Response:
    """Delete a rule."""
    await _load(ctx)
    await catalog.delete_rule(ctx.store, ctx.workspace, ctx.request.path_params["rule_id"])
    return Response(status_code=204)


async def _toggle(ctx: Ctx, enabled: bool) -> Response:
    current = await _load(ctx)
    if current.get("enabled") is enabled:
        return json_response(current)
    rule = {**current, "enabled": enabled, "updated_at": now_iso(),
            "revision": int(current.get("revision", 1)) + 1}
    await catalog.put_rule(ctx.store, ctx.workspace, rule)
    return json_response((await _with_stats(ctx, [rule]))[0])


@requires("manager")
async def enable_rule(ctx: Ctx) -> Response:
    """Enable a rule."""
    return await _toggle(ctx, True)


@requires("manager")
async def disable_rule(ctx: Ctx) -> Response:
    """Disable a rule."""
    return await _toggle(ctx, False)


@requires("manager")
async def order_rules(ctx: Ctx) -> Response:
    """Set the evaluation order: {"ids": [...]}; rules not listed keep their order after these."""
    body = await read_object(ctx.request)
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise Unprocessable("`ids` must be a list of rule ids.",
                            details=[{"path": "ids", "reason": "must be a list of rule ids"}])
    if len(set(ids)) != len(ids):
        raise Unprocessable("`ids` lists a rule twice.",
                            details=[{"path": "ids", "reason": "must not repeat an id"}])
    current = await catalog.list_rules(ctx.store, ctx.workspace)
    by_id = {r["id"]: r for r in current}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise Unprocessable(f"Unknown rule ids: {', '.join(unknown)}.",
                            details=[{"path": f"ids[{ids.index(u)}]", "reason": "no such rule"}
                                     for u in unknown])
    ordered = [by_id[i] for i in ids] + [r for r in current if r["id"] not in set(ids)]
    now = now_iso()
    changed = []
    for pos, rule in enumerate(ordered, start=1):
        if rule.get("position") != pos:
            changed.append({**rule, "position": pos, "updated_at": now})
            rule = changed[-1]
        ordered[pos - 1] = rule
    if changed:
        await catalog.reorder_rules(ctx.store, ctx.workspace, changed)
    return json_response({"items": ordered, "next": None})


@requires("manager")
async def test_rule(ctx: Ctx) -> Response:
    """Dry run: {"event": {...}, "ticket"?: <ticket before the event>, "now"?: <RFC 3339>} ->
    the rule's explain, changes and effects. Applies nothing. Without "ticket" the stored ticket
    of the event's ticket id (if any) is the ticket before the event."""
    from rules import RuleError, dry_run

    rule = await _load(ctx)
    body = await read_object(ctx.request)
    event, problems = validate_event(body.get("event"), now_iso(), path="event", require_id=False)
    previous = body.get("ticket")
    if previous is not None and not isinstance(previous, dict):
        problems.append({"path": "ticket", "reason": "must be an object (the ticket before the event)"})
    now = datetime.now(UTC)
    if body.get("now") is not None:
        parsed = automation.parse_time(body["now"])
        if parsed is None:
            problems.append({"path": "now", "reason": "must be an RFC 3339 timestamp"})
        else:
            now = parsed
    if problems or event is None:
        raise Unprocessable("The test request is not valid.", details=problems)
    event.setdefault("id", None)
    event["id"] = event["id"] or "dry-run"
    if previous is None:
        previous = await tickets.get_ticket(ctx.store, ctx.workspace, event["ticket"]["id"])
    ticket = automation.merge_event(previous, event)
    try:
        result = dry_run(rule, event, ticket, previous, now)
    except RuleError as exc:
        raise Unprocessable(f"The stored rule is not valid: {exc}",
                            details=[{"path": e.path, "reason": e.reason}
                                     for e in (exc.errors or [exc])]) from exc
    return json_response(result)


@requires("viewer")
async def rule_runs(ctx: Ctx) -> Response:
    """The runs in which this rule fired, newest first (the last 200)."""
    rule = await _load(ctx)
    limit, offset = page_params(ctx.request)
    items, nxt = await runs.list_rule_runs(ctx.store, ctx.workspace, rule["id"], offset=offset,
                                           limit=limit)
    return json_response({"items": items, "next": encode_cursor(nxt) if nxt else None})


routes = [
    Route("/v1/rules", create_rule, methods=["POST"]),
    Route("/v1/rules", list_rules, methods=["GET"]),
    Route("/v1/rules/order", order_rules, methods=["PUT"]),
    Route("/v1/rules/{rule_id}", get_rule, methods=["GET"]),
    Route("/v1/rules/{rule_id}", replace_rule, methods=["PUT"]),
    Route("/v1/rules/{rule_id}", patch_rule, methods=["PATCH"]),
    Route("/v1/rules/{rule_id}", delete_rule, methods=["DELETE"]),
    Route("/v1/rules/{rule_id}/enable", enable_rule, methods=["POST"]),
    Route("/v1/rules/{rule_id}/disable", disable_rule, methods=["POST"]),
    Route("/v1/rules/{rule_id}/test", test_rule, methods=["POST"]),
    Route("/v1/rules/{rule_id}/runs", rule_runs, methods=["GET"]),
]
