"""Rules: CRUD, enable/disable, order, and the dry-run test (explains, applies nothing)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from rules.durations import duration_seconds
from server import audit, automation
from server.api.common import (
    Ctx,
    page,
    json_response,
    page_params,
    read_object,
    requires,
)
from server.api.query import PAGE, Param, Query, ValueProblem
from server.api.references import write_rules
from server.api.revisioned import Revisions, by_of
from server.api.rule_checks import (CHECK_TRIES, Moved, check_calendars, check_rule_count, checked,
                                    checked_write, checks)
from server.api.validate import validate_event
from server.errors import NotFound, Unprocessable
from server.scripting import check_rule_outbound
from server.store import catalog, rule_usage, runs, tickets
from server.store import revisions as R
from server.store.catalog import now_iso
from server.store.rule_size import BOOKKEEPING, check_rule_size

__all__ = ["routes", "definition", "change_action", "by_of", "audit_rules", "dry_run_response"]

_OWNED = BOOKKEEPING   # what the service keeps on a rule; a client cannot set it


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _OWNED}


def definition(rule: dict[str, Any]) -> dict[str, Any]:
    """What a rule says (everything but the service's bookkeeping): what revisions compare."""
    return {k: v for k, v in rule.items() if k not in _OWNED}


def _says(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule's definition with each optional key's "nothing" forms alike (`stop` null/false,
    `description` null/"", `conditions` null/{}/{"all": []}): saving a rule unchanged from a client
    that normalizes them (the managers' page) writes no revision."""
    said = definition(rule)
    blanks: tuple[tuple[str, tuple[object, ...]], ...] = (
        ("stop", (None, False)), ("description", (None, "")), ("conditions", (None, {}, {"all": []})))
    for key, empties in blanks:
        if key in said and any(said[key] == e and type(said[key]) is type(e) for e in empties):
            del said[key]
    return said


def change_action(old: dict[str, Any], new: dict[str, Any]) -> str:
    """rename / enable / disable when only that changed, else update."""
    a, b = definition(old), definition(new)
    changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    if changed == {"name"}:
        return "rename"
    if changed == {"enabled"}:
        return "enable" if b.get("enabled") else "disable"
    return "update"


def audit_rules(ctx: Ctx) -> Any:
    """Queue one audit entry per rule change, in the change's transaction."""

    def also(pipe: Any, changes: list[R.Change]) -> None:
        for ch in changes:
            rule = ch.new or ch.old or {}
            detail: dict[str, Any] = {"revision": ch.n, "name": rule.get("name")}
            if ch.action == "reorder":
                detail["position"] = [(ch.old or {}).get("position"), rule.get("position")]
            detail.update(ch.extra or {})
            audit.record_in(pipe, ctx, f"rule.{ch.action}", f"rule:{ch.ident}", detail)

    return also


async def _write(ctx: Ctx, compute: Any) -> list[R.Change]:
    """Write rule changes with their revisions and audit entries; an enabled rule naming a missing
    script, policy or group is a 422 (server/api/references.py)."""
    return await write_rules(ctx, by_of(ctx), compute, audit_rules(ctx))


def _current(current: dict[str, dict[str, Any]], rule_id: str) -> dict[str, Any]:
    if rule_id not in current:
        raise NotFound(f"No rule {rule_id!r} in this workspace.")
    return current[rule_id]


async def _load(ctx: Ctx) -> dict[str, Any]:
    rule_id = ctx.request.path_params["rule_id"]
    rule = await catalog.get_rule(ctx.store, ctx.workspace, rule_id)
    if rule is None:
        raise NotFound(f"No rule {rule_id!r} in this workspace.")
    return rule


def _next_position(current: dict[str, dict[str, Any]]) -> int:
    return max((r.get("position", 0) for r in current.values()), default=0) + 1


@requires("manager")
async def create_rule(ctx: Ctx) -> Response:
    """Create a rule (disabled unless the body says "enabled": true)."""
    body = _clean(await read_object(ctx.request))
    body.setdefault("enabled", False)
    check_rule_size(body)   # (before its compile: a 413 costs no check)
    await checked(ctx, body)
    check_rule_outbound(ctx.principal.role, body)   # secrets need admin; no X-Deskflow-* headers
    now = now_iso()
    rule_id = catalog.new_rule_id()

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        check_rule_count(ctx, len(current) + 1)
        rule = {"id": rule_id, **body, "name": body.get("name") or rule_id,
                "position": _next_position(current), "created_at": now, "updated_at": now}
        return [R.Change(rule_id, rule, None, "create")]

    changes = await _write(ctx, compute)   # (a new id: no counter of it to read)
    return json_response({**(changes[0].new or {}), **rule_usage.unused()}, 201)


async def _with_stats(ctx: Ctx, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rules with `last_fired_at`, `fired_24h` and `usage` (read-only; the per-rule counters)."""
    stats = await rule_usage.rule_stats(ctx.store, ctx.workspace, rules, int(time.time() // 3600))
    return [{**r, **stats[r["id"]]} for r in rules]


def _unused_for(ctx: Ctx) -> int | None:
    return ctx.query["unused_for"]  # type: ignore[no-any-return]


# ?unused_for at most 100 years: `now - window` past datetime's range (100000000h) was a 500.
MAX_UNUSED_FOR_DAYS = 36_500


def _duration(raw: str) -> int:
    seconds = duration_seconds(raw)
    if not seconds:
        raise ValueProblem(f'must be a duration such as "30d", "7d" or "12h", got {raw[:100]!r}', 400,
                           "invalid_duration")
    if seconds > MAX_UNUSED_FOR_DAYS * 86_400:
        raise ValueProblem(f"must be at most {MAX_UNUSED_FOR_DAYS}d (100 years), got {raw[:100]!r}", 400,
                           "invalid_duration")
    return seconds


_LIST = Query(PAGE, Param("unused_for", "string", "Only rules older than this duration (like "
                          "30d) that did not fire in it.", convert=_duration))


def _unused(rule: dict[str, Any], since: datetime) -> bool:
    """Did not fire since `since`, and existed before it (a younger rule has not had the time)."""
    created = automation.parse_time(rule.get("created_at"))
    if created is None or created > since:
        return False
    last = automation.parse_time(rule.get("last_fired_at"))
    return last is None or last < since


@requires("viewer", _LIST)
async def list_rules(ctx: Ctx) -> Response:
    """Rules in evaluation order, each with its usage (fires over 1 h / 24 h / 7 d / 30 d, last
    fired). ?unused_for=30d lists only rules older than that which did not fire in it."""
    limit, offset = page_params(ctx.request)
    window = _unused_for(ctx)
    rules = await catalog.listed_rules(ctx.store, ctx.workspace)   # (shared: not changed here)
    if window is not None:
        since = datetime.now(UTC) - timedelta(seconds=window)
        rules = [r for r in await _with_stats(ctx, rules) if _unused(r, since)]
        shown = rules[offset:offset + limit]
    else:
        shown = await _with_stats(ctx, rules[offset:offset + limit])
    return page(shown, offset + limit if offset + limit < len(rules) else None)


@requires("viewer")
async def get_rule(ctx: Ctx) -> Response:
    """One rule, with last_fired_at, fired_24h and usage."""
    return json_response((await _with_stats(ctx, [await _load(ctx)]))[0])


async def _save(ctx: Ctx, make: Any) -> Response:
    """Write the rule `make(current rule)` returns, with a revision, unless it says what the rule
    already says (then nothing is written and the rule is answered as it is)."""
    seen: dict[str, Any] = {}
    changes = await checked_write(lambda: _save_once(ctx, make, seen),
                                  f"The rule changed while this change was being checked, {CHECK_TRIES} "
                                  "times in a row; read it and try again.")
    shown: dict[str, Any] = changes[0].new if changes and changes[0].new is not None else seen["rule"]
    return json_response((await _with_stats(ctx, [shown]))[0])


async def _save_once(ctx: Ctx, make: Any, seen: dict[str, Any]) -> list[R.Change]:
    """One try of _save: the rule as read now is checked (by the check pool), then written if the
    transaction still finds it so (else Moved: the check never runs inside the transaction)."""
    rule_id = ctx.request.path_params["rule_id"]
    now = await catalog.get_rule(ctx.store, ctx.workspace, rule_id)
    pre = definition(make(now)) if now is not None else None
    refused: Unprocessable | None = None
    if pre is not None:
        check_rule_size(pre, now)
        try:
            await checked(ctx, pre)
        except Unprocessable as exc:
            refused = exc

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        old = seen["rule"] = _current(current, rule_id)
        new = make(old)
        if definition(new) != pre:
            raise Moved
        if refused is not None:
            raise refused
        check_rule_outbound(ctx.principal.role, definition(new), old)
        rule = {**definition(new), "id": rule_id,
                "name": new.get("name") or old.get("name") or rule_id,
                "position": old.get("position", 0), "created_at": old.get("created_at"),
                "updated_at": now_iso()}
        if _says(rule) == _says(old):
            return []
        return [R.Change(rule_id, rule, old, change_action(old, rule))]

    return await _write(ctx, compute)


@requires("manager")
async def replace_rule(ctx: Ctx) -> Response:
    """Replace a rule; `enabled` keeps its current value unless given."""
    body = _clean(await read_object(ctx.request))

    def make(old: dict[str, Any]) -> dict[str, Any]:
        return {"enabled": old.get("enabled", False), **body}

    return await _save(ctx, make)


@requires("manager")
async def patch_rule(ctx: Ctx) -> Response:
    """Change some top-level keys (rename, conditions, ...); null removes an optional key."""
    body = _clean(await read_object(ctx.request))

    def make(old: dict[str, Any]) -> dict[str, Any]:
        merged = definition(old)
        for key, value in body.items():
            if value is None and key in ("conditions", "description", "stop"):
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    return await _save(ctx, make)


@requires("manager")
async def delete_rule(ctx: Ctx) -> Response:
    """Delete a rule (its revisions stay readable and restorable)."""
    rule_id = ctx.request.path_params["rule_id"]

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        return [R.Change(rule_id, None, _current(current, rule_id), "delete")]

    await _write(ctx, compute)
    return Response(status_code=204)


async def _toggle(ctx: Ctx, enabled: bool) -> Response:
    return await _save(ctx, lambda old: {**definition(old), "enabled": enabled})


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
    """Set the evaluation order: {"ids": [...]}; rules not listed keep their order after these.
    Every rule whose position changes gets a revision."""
    body = await read_object(ctx.request)
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise Unprocessable("`ids` must be a list of rule ids.",
                            details=[{"path": "ids", "reason": "must be a list of rule ids"}])
    if len(set(ids)) != len(ids):
        raise Unprocessable("`ids` lists a rule twice.",
                            details=[{"path": "ids", "reason": "must not repeat an id"}])
    result: list[dict[str, Any]] = []

    def compute(by_id: dict[str, dict[str, Any]]) -> list[R.Change]:
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise Unprocessable(f"Unknown rule ids: {', '.join(unknown)}.",
                                details=[{"path": f"ids[{ids.index(u)}]", "reason": "no such rule"}
                                         for u in unknown])
        current = sorted(by_id.values(), key=catalog.rule_order)
        listed = set(ids)
        ordered = [by_id[i] for i in ids] + [r for r in current if r["id"] not in listed]
        now = now_iso()
        changes = []
        result.clear()
        for pos, rule in enumerate(ordered, start=1):
            if rule.get("position") != pos:
                changes.append(R.Change(rule["id"], {**rule, "position": pos, "updated_at": now},
                                        rule, "reorder"))
                rule = changes[-1].new or rule
            result.append(rule)
        return changes

    await _write(ctx, compute)
    return json_response({"items": result, "next": None})


@requires("manager")
async def test_rule(ctx: Ctx) -> Response:
    """Dry run: {"event": {...}, "ticket"?: <ticket before the event>, "now"?: <RFC 3339>} ->
    the rule's explain, changes and effects. Applies nothing. Without "ticket" the stored ticket
    of the event's ticket id (if any) is the ticket before the event."""
    return await dry_run_response(ctx, await _load(ctx))


async def dry_run_response(ctx: Ctx, rule: dict[str, Any],
                           body: dict[str, Any] | None = None) -> Response:
    """The dry run of `rule` on the request's {"event", "ticket"?, "now"?} (test_rule; a draft's
    test, server/api/drafts.py, passes the body it read)."""
    body = body if body is not None else await read_object(ctx.request)
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
    # compiled and run by the check pool: a big rule in a check process (problems_of's reason)
    out = await checks(ctx).run(ctx.workspace, "dry_run", rule, event, ticket, previous, now,
                                await check_calendars(ctx, rule))
    if "problems" in out:
        raise Unprocessable(f"The stored rule is not valid: {out['message']}", details=out["problems"])
    return json_response(out["result"])


@requires("viewer", Query(PAGE))
async def rule_runs(ctx: Ctx) -> Response:
    """The runs in which this rule fired, newest first (the last 200)."""
    rule = await _load(ctx)
    limit, offset = page_params(ctx.request)
    items, nxt = await runs.list_rule_runs(ctx.store, ctx.workspace, rule["id"], offset=offset,
                                           limit=limit)
    return page(items, nxt)


async def _restore(ctx: Ctx, rev: dict[str, Any]) -> Response:
    """Write what rule revision `rev` says as a new revision, the rule keeping its place (a
    deleted rule comes back last)."""
    rule_id, content = rev["rule"]["id"], definition(rev["rule"])
    await checked(ctx, content)
    seen: dict[str, Any] = {}

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        old = seen["rule"] = current.get(rule_id)
        # a restore is a change like any other: a manager may not bring back a secret (or an
        # X-Deskflow-* header) the current rule does not send (tests/server/test_attack_roles.py)
        check_rule_outbound(ctx.principal.role, content, old)
        now = now_iso()
        new = {**content, "id": rule_id,
               "position": old.get("position", 0) if old else _next_position(current),
               "created_at": old.get("created_at") if old else now, "updated_at": now}
        if old is not None and definition(old) == definition(new):
            return []
        return [R.Change(rule_id, new, old, "restore", {"restored_from": rev["n"]})]

    changes = await _write(ctx, compute)
    shown: dict[str, Any] = changes[0].new if changes and changes[0].new is not None else seen["rule"]
    return json_response((await _with_stats(ctx, [shown]))[0])


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
    *Revisions(R.RULE, "rule_id", "Rule", "rule", _load).routes("/v1/rules/{rule_id}", (
        "The rule's revisions, newest first: {n, action, at, by: {key_id, key_name}, rule}. A "
        "deleted\nrule's revisions stay readable.",
        "One revision of a rule.",
        "Make the rule say again what revision n said (name, enabled, triggers, conditions, "
        "actions,\n...; not its position): a new revision. A deleted rule comes back, last in the "
        "order."), _restore),
]
