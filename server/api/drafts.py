"""Rule drafts and duplicates: edit a live rule without changing it live, then publish.

A draft is a copy of a live rule's definition kept in keys.rule_drafts (server/store/drafts.py),
which the worker never reads: saving, testing or discarding a draft leaves the live rule and every
run exactly as they were. Publishing writes the draft's definition over the live rule as ONE
revision (action "publish") and deletes the draft in the same MULTI/EXEC, after the usual checks of
a rule write (validity, outbound secrets, references) and an expected-revision check: a draft
taken from revision 3 of a rule that is now at revision 4 is a 409 unless the request names
revision 4 (the page shows the live rule's change first).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response
from starlette.routing import Route

from server.api.common import Ctx, json_response, problem, read_object, requires
from server.api.references import (
    catalog_watch,
    raise_missing,
    read_catalog,
    reference_problems,
    write_rules,
)
from server.api.rule_checks import CHECK_TRIES, Moved, check_rule_count, checked_write, problems_of
from server.api.rules import audit_rules, by_of, definition, dry_run_response
from server.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from server.scripting import check_rule_outbound
from server.store import catalog
from server.store import drafts as D
from server.store import keys as K
from server.store import revisions as R
from server.store.catalog import now_iso
from server.store.rule_size import check_rule_changes
from server.store.rule_snapshot import read_rules

__all__ = ["routes"]


def _text(k: Any) -> str:
    return k.decode() if isinstance(k, bytes) else str(k)


async def _live(ctx: Ctx) -> dict[str, Any]:
    rule_id = ctx.request.path_params["rule_id"]
    rule = await catalog.get_rule(ctx.store, ctx.workspace, rule_id)
    if rule is None:
        raise NotFound(f"No rule {rule_id!r} in this workspace.")
    return rule


def _shown(draft: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    """A draft as answered: with the live rule's revision now and whether the draft is behind it."""
    now = (live or {}).get("revision")
    return {**draft, "live_revision": now, "stale": now is not None and now != draft.get("base_revision")}


def _checked_content(body: Any) -> dict[str, Any]:
    """A draft's rule from a request: an object (413 over MAX_DRAFT_BYTES), without bookkeeping."""
    if not isinstance(body, dict):
        raise Unprocessable("`rule` must be an object (the rule's definition).",
                            details=[problem("rule", "must be an object")])
    size = D.draft_size({"enabled": False, **definition(body)})   # (as it would be published)
    if size > D.MAX_DRAFT_BYTES:
        raise PayloadTooLarge(
            f"The draft is {size} bytes; the draft size limit is {D.MAX_DRAFT_BYTES} bytes "
            f"(limit MAX_DRAFT_BYTES).", code="draft_too_large",
            details=[problem("rule", f"at most {D.MAX_DRAFT_BYTES} bytes of JSON")])
    return definition(body)


async def _validate(ctx: Ctx, content: dict[str, Any], live: dict[str, Any]) -> None:
    problems = await problems_of(ctx, content)
    if problems:
        raise Unprocessable("The draft is not valid: " + "; ".join(
            f"{p['path'] or 'rule'}: {p['reason']}" for p in problems[:5]), details=problems)
    check_rule_outbound(ctx.principal.role, content, live)


async def _store_draft(ctx: Ctx, live: dict[str, Any], content: dict[str, Any],
                       *, replace: bool) -> tuple[dict[str, Any], bool]:
    """Write the draft of `live` (a new one counts against MAX_DRAFTS; drafts of deleted rules
    are dropped first). Returns (draft, created). `replace=False`: an existing draft is a 409."""
    ws, rule_id = ctx.workspace, live["id"]

    async def build(p: Any) -> tuple[tuple[dict[str, Any], bool], Any]:
        raw = await p.hget(K.rule_drafts(ws), rule_id)
        old = orjson.loads(raw) if raw else None
        if old is not None and not replace:
            raise Conflict(f"Rule {rule_id!r} already has a draft; edit it (PUT .../draft), "
                           "publish or discard it.", code="draft_exists",
                           details=[problem("rule_id", "has a draft")])
        orphans: list[str] = []
        if old is None:
            ids = [_text(k) for k in await p.hkeys(K.rule_drafts(ws))]
            if len(ids) + 1 > D.MAX_DRAFTS:
                live_ids = {_text(k) for k in await p.hkeys(K.rules(ws))}
                orphans = [i for i in ids if i not in live_ids]
                if len(ids) - len(orphans) + 1 > D.MAX_DRAFTS:
                    raise Unprocessable(
                        f"This workspace has {len(ids) - len(orphans)} drafts; the draft count "
                        f"limit is {D.MAX_DRAFTS} drafts per workspace (limit MAX_DRAFTS). Publish "
                        "or discard one first.", code="too_many_drafts",
                        details=[problem("", f"at most {D.MAX_DRAFTS} drafts per workspace")])
        now = now_iso()
        draft = {"rule_id": rule_id,
                 "base_revision": old["base_revision"] if old else live.get("revision"),
                 "rule": content, "created_at": old["created_at"] if old else now,
                 "updated_at": now, "by": by_of(ctx)}

        def writer(pipe: Any) -> None:
            if orphans:
                pipe.hdel(K.rule_drafts(ws), *orphans)
            pipe.hset(K.rule_drafts(ws), rule_id, orjson.dumps(draft).decode())

        return (draft, old is None), writer

    return await R.transact(ctx.store, [K.rule_drafts(ws)], build)


@requires("viewer")
async def list_drafts(ctx: Ctx) -> Response:
    """Every draft of the workspace (at most MAX_DRAFTS), with whether each is behind its rule."""
    drafts = await D.list_drafts(ctx.store, ctx.workspace)
    rules = {r["id"]: r for r in await catalog.listed_rules(ctx.store, ctx.workspace)}
    items = [_shown(d, rules.get(d["rule_id"])) for d in drafts if d["rule_id"] in rules]
    return json_response({"items": items, "next": None})


@requires("manager")
async def create_draft(ctx: Ctx) -> Response:
    """Start a draft of a live rule: a copy of its definition, or {"rule": {...}} if given."""
    live = await _live(ctx)
    text = await ctx.request.body()
    body = await read_object(ctx.request) if text.strip() else {}
    content = _checked_content(body["rule"]) if "rule" in body else definition(live)
    await _validate(ctx, content, live)
    draft, _ = await _store_draft(ctx, live, content, replace=False)
    return json_response(_shown(draft, live), 201)


@requires("viewer")
async def get_draft(ctx: Ctx) -> Response:
    """The rule's draft (404 when it has none)."""
    live = await _live(ctx)
    draft = await D.get_draft(ctx.store, ctx.workspace, live["id"])
    if draft is None:
        raise NotFound(f"Rule {live['id']!r} has no draft.", code="no_draft")
    return json_response(_shown(draft, live))


@requires("manager")
async def put_draft(ctx: Ctx) -> Response:
    """Save the draft: the body is the rule's whole definition (or {"rule": {...}}). Creates the
    draft when there is none. The live rule is not touched."""
    live = await _live(ctx)
    body = await read_object(ctx.request)
    content = _checked_content(body["rule"] if set(body) == {"rule"} else body)
    await _validate(ctx, content, live)
    draft, created = await _store_draft(ctx, live, content, replace=True)
    return json_response(_shown(draft, live), 201 if created else 200)


@requires("manager")
async def discard_draft(ctx: Ctx) -> Response:
    """Throw the draft away; the live rule stays as it is."""
    live = await _live(ctx)
    if not await D.delete_draft(ctx.store, ctx.workspace, live["id"]):
        raise NotFound(f"Rule {live['id']!r} has no draft.", code="no_draft")
    return Response(status_code=204)


@requires("manager")
async def test_draft(ctx: Ctx) -> Response:
    """Dry run of the draft, like POST /v1/rules/{id}/test of the live rule. Applies nothing."""
    live = await _live(ctx)
    body = await read_object(ctx.request)
    draft = await D.get_draft(ctx.store, ctx.workspace, live["id"])
    if draft is None:
        raise NotFound(f"Rule {live['id']!r} has no draft.", code="no_draft")
    return await dry_run_response(ctx, {**draft["rule"], "id": live["id"]}, body)


def _expected(body: dict[str, Any], draft: dict[str, Any]) -> Any:
    if "revision" not in body:
        return draft.get("base_revision")
    if type(body["revision"]) is not int:
        raise Unprocessable("`revision` must be the live rule's revision number.",
                            details=[problem("revision", "must be an integer")])
    return body["revision"]


@requires("manager")
async def publish_draft(ctx: Ctx) -> Response:
    """Replace the live rule with its draft in one revision ("publish") and delete the draft, in
    one transaction. {"revision": n}, optional, is the live revision the caller expects (default:
    the one the draft was taken from): another is a 409 rule_changed."""
    text = await ctx.request.body()
    body = await read_object(ctx.request) if text.strip() else {}
    return json_response(await checked_write(
        lambda: _publish_once(ctx, body),
        f"The rule or its draft changed while the draft was being checked, {CHECK_TRIES} times in "
        "a row; read them and try again."))


def _content(live: dict[str, Any], draft: dict[str, Any]) -> dict[str, Any]:
    """What publishing `draft` over `live` writes, before ids and times."""
    content = dict(draft["rule"])
    content.setdefault("enabled", live.get("enabled", False))
    return content


async def _publish_once(ctx: Ctx, body: dict[str, Any]) -> dict[str, Any]:
    """One try: the draft as read now is checked (a big one in a check process), outside any
    transaction; the transaction publishes it if it still finds the same content, else Moved.
    Checked inside the WATCH, every rule change of the workspace during a check (up to its 10 s
    of CPU, after up to 30 s in the workspace's queue) ran the check again, each holding a store
    connection under WATCH all the while."""
    ws, rule_id = ctx.workspace, ctx.request.path_params["rule_id"]
    also = audit_rules(ctx)
    raw_live = await ctx.store.redis.hget(K.rules(ws), rule_id)
    raw_draft = await ctx.store.redis.hget(K.rule_drafts(ws), rule_id)
    checked: dict[str, Any] | None = None
    problems: list[dict[str, str]] = []
    if raw_live is not None and raw_draft is not None:
        checked = _content(orjson.loads(raw_live), orjson.loads(raw_draft))
        problems = await problems_of(ctx, checked)
        await catalog.listed_rules(ctx.store, ws)   # kept: what the transaction bounds the bytes by

    async def build(p: Any) -> tuple[dict[str, Any], Any]:
        raw_live = await p.hget(K.rules(ws), rule_id)
        if raw_live is None:
            raise NotFound(f"No rule {rule_id!r} in this workspace.")
        live = orjson.loads(raw_live)
        raw = await p.hget(K.rule_drafts(ws), rule_id)
        if raw is None:
            raise NotFound(f"Rule {rule_id!r} has no draft.", code="no_draft")
        draft = orjson.loads(raw)
        expected = _expected(body, draft)
        if live.get("revision") != expected:
            raise Conflict(
                f"Rule {rule_id!r} is at revision {live.get('revision')}, not {expected}: it "
                "changed after the draft was taken. Compare them, then publish with "
                f'{{"revision": {live.get("revision")}}} or discard the draft.',
                code="rule_changed", details=[problem("revision", f"the live rule is at "
                                                                  f"{live.get('revision')}")])
        content = _content(live, draft)
        if content != checked:
            raise Moved
        if problems:
            raise Unprocessable("The draft is not valid: " + "; ".join(
                f"{pr['path'] or 'rule'}: {pr['reason']}" for pr in problems[:5]), details=problems)
        check_rule_outbound(ctx.principal.role, content, live)
        raise_missing(reference_problems(content, await read_catalog(p, ws)))
        new = {**content, "id": rule_id, "name": content.get("name") or live.get("name") or rule_id,
               "position": live.get("position", 0), "created_at": live.get("created_at"),
               "updated_at": now_iso()}
        change = None
        if definition(new) != definition(live):
            change = R.Change(rule_id, new, live, "publish")
            stored = await read_rules(ctx.store, ws, p)   # (kept: read before the check)
            check_rule_changes(ctx.store.settings.max_rule_bytes, stored.sizes, [change])
            n = (await R.numbers(p, ctx.store, ws, R.RULE, [change]))[0]

        def writer(pipe: Any) -> None:
            pipe.hdel(K.rule_drafts(ws), rule_id)
            if change is not None:
                R.queue_changes(pipe, ws, R.RULE, [change], [n], by_of(ctx))  # bumps rules:rev
                also(pipe, [change])

        return (new if change is not None else live), writer

    rule: dict[str, Any] = await R.transact(
        ctx.store, [K.rules(ws), K.rule_drafts(ws), *catalog_watch(ws)], build)
    return rule


@requires("manager")
async def duplicate_rule(ctx: Ctx) -> Response:
    """A new, disabled rule with the same definition, named "Copy of <name>", last in the order.
    The copy is a new rule, checked as a create is (no `before`): a copy of a rule that sends a
    stored secret is the secret role's to make. Checked against the original, a manager's copy
    passed (its actions are the original's) and then, the copy's own actions being kept by every
    edit, its triggers and conditions could be widened: the admin's secret sent on events the
    admin's rule never reached."""
    live = await _live(ctx)
    content = {**definition(live), "enabled": False, "name": f"Copy of {live.get('name')}"[:200]}
    check_rule_outbound(ctx.principal.role, content)
    rule_id, now = catalog.new_rule_id(), now_iso()

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        check_rule_count(ctx, len(current) + 1)
        position = max((r.get("position", 0) for r in current.values()), default=0) + 1
        rule = {"id": rule_id, **content, "position": position, "created_at": now,
                "updated_at": now}
        return [R.Change(rule_id, rule, None, "create", {"duplicated_from": live["id"]})]

    changes = await write_rules(ctx, by_of(ctx), compute, audit_rules(ctx))
    return json_response(changes[0].new, 201)


routes = [
    Route("/v1/drafts", list_drafts, methods=["GET"]),
    Route("/v1/rules/{rule_id}/draft", create_draft, methods=["POST"]),
    Route("/v1/rules/{rule_id}/draft", get_draft, methods=["GET"]),
    Route("/v1/rules/{rule_id}/draft", put_draft, methods=["PUT"]),
    Route("/v1/rules/{rule_id}/draft", discard_draft, methods=["DELETE"]),
    Route("/v1/rules/{rule_id}/draft/test", test_draft, methods=["POST"]),
    Route("/v1/rules/{rule_id}/draft/publish", publish_draft, methods=["POST"]),
    Route("/v1/rules/{rule_id}/duplicate", duplicate_rule, methods=["POST"]),
]
