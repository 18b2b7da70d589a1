"""Rules as code (issue 8 part 2): GET /v1/export, POST /v1/import (?dry_run=true for the plan).
Thin routes: the document (format, order, checks) is server/api/document.py, the plan
server/api/import_plan.py, the store reads and writes server/store/workspace_doc.py.

Import matches rules by `id` (by `name` when an item has no id), groups and SLA policies by name.
The file's rules come first, in its order; what the file does not name is kept as it is, unless
`?missing=disable` (rules not in the file are disabled) or `?missing=delete` (alias `?prune=true`:
rules, groups and SLA policies not in the file are deleted). Every item is validated first and all
problems are answered at once (422, paths like `rules[2].conditions.all[0].op`); then everything is
written in ONE MULTI/EXEC that WATCHes what the plan was computed from, with a revision for every
changed rule and policy and an audit entry for every change. Applying the same file again changes
nothing: the plan says every item is `unchanged` and no revision is written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import orjson
from starlette.responses import Response
from starlette.routing import Route

from server import audit
from server.api.common import RANK, Ctx, json_response, problem, requires
from server.api.query import Query, choice, flag
from server.api.document import (FORMAT_VERSION, YAML_TYPES, export_policy, export_rule, export_script,
                                 import_notes)
from server.api.document_read import document_of
from server.api.rule_checks import check_calendars, check_rule_count, checks
from server.api.rules import by_of
from server.api.sla import check_policy_count, check_policy_size
from server.api.import_plan import Plan as _Plan
from server.api.import_plan import by_position as _by_position
from server.api.import_plan import export_group as _export_group
from server.api.import_plan import make_plan as _make_plan
from server.api.import_refs import import_reference_problems
from server.api.references import raise_missing, read_catalog
from server.errors import Forbidden, PayloadTooLarge, UnsupportedMedia, Unprocessable
from server.scripting import check_rule_outbound
from server.store import revisions as R
from server.store import scripts as S
from server.store.counts import check_count
from server.store.errors import guarded
from server.store.rule_size import check_rule_changes
from server.store.rule_snapshot import advance
from server.store.workspace_doc import queue_plan, read_state, revision_numbers, watched

__all__ = ["routes", "FORMAT_VERSION"]

_MISSING = ("keep", "disable", "delete")


_EXPORT = Query(choice("format", ("json", "yaml"), "json or yaml; left out: by the Accept header "
                       "(YAML for application/yaml), else JSON."))
_IMPORT = Query(flag("dry_run", "Answer the plan and change nothing."),
                choice("missing", _MISSING, "What happens to what the document leaves out: keep "
                       "(default), disable or delete."),
                flag("prune", "An older name for missing=delete."))


@requires("viewer", _EXPORT)
async def export(ctx: Ctx) -> Response:
    """The workspace's rules, groups, SLA policies, script metadata and (developer+) allow-list and
    (admin) secret names as one document: JSON, or YAML with ?format=yaml or Accept: application/yaml."""
    fmt = _format(ctx)
    state = await guarded(read_state)(ctx.store, ctx.workspace)  # an outage is a 503
    doc: dict[str, Any] = {
        "deskflow": FORMAT_VERSION,
        "rules": _exported_rules(state["rules"]),
        "groups": [_export_group(g) for g in sorted(state["groups"].values(), key=lambda g: g["name"])],
        "sla_policies": [export_policy(p) for p in _by_position(state["sla_policies"])],
        "scripts": [export_script(s) for s in await S.list_scripts(ctx.store, ctx.workspace)],
    }
    rank = RANK.get(ctx.principal.role, 0)
    if rank >= RANK["developer"]:
        doc["allowlist"] = state["allowlist"]
    if rank >= RANK["admin"]:
        doc["secrets"] = await S.list_secrets(ctx.store, ctx.workspace)
    if fmt == "yaml":
        # by the check pool (server/checkwork.py dump_yaml): a big one in a check process
        text = await checks(ctx).run(ctx.workspace, "yaml", orjson.dumps(doc))
        return Response(text, media_type="application/yaml")
    return json_response(doc)


def _exported_rules(rules: Any) -> orjson.Fragment:
    """The export's rules section as JSON, made once per rules revision (kept with the rules:
    server/store/rule_snapshot.py): at the 4 MiB limit it was ~13 ms of the loop an export."""
    made: orjson.Fragment | None = rules.memo.get("export")
    if made is None:
        made = rules.memo["export"] = orjson.Fragment(orjson.dumps(
            [export_rule(r) for r in rules.ordered()]))
    return made


def _format(ctx: Ctx) -> str:
    fmt: str | None = ctx.query["format"]
    if fmt is None:
        accept = ctx.request.headers.get("accept", "")
        return "yaml" if any(t in accept for t in YAML_TYPES) else "json"
    return fmt


# -- import ---------------------------------------------------------------------------------------


async def _read_document(ctx: Ctx) -> tuple[dict[str, Any], bytes]:
    """The import's document, and its compact JSON (which the document's check is sent)."""
    request = ctx.request
    limit = ctx.store.settings.max_body_bytes
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    is_yaml = ctype in YAML_TYPES
    if not is_yaml and ctype != "application/json":
        raise UnsupportedMedia("Send the document as application/json or application/yaml "
                               f"(got {ctype or 'no content type'}).")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"The document is over the limit of {limit} bytes.")
    # in a check process when it is big (server/api/document_read.py): parsing 1 MiB of YAML
    # held the GIL every other workspace's requests wait on
    answer = await checks(ctx).run(ctx.workspace, "read", bytes(body), is_yaml,
                                   ctx.store.settings.max_json_depth)
    return document_of(answer), answer[1]


def _missing(ctx: Ctx) -> str:
    missing: str | None = ctx.query["missing"]
    if missing is not None and ctx.query["prune"] and missing != "delete":
        raise Unprocessable(f"?prune=true (an older name for missing=delete) and "
                            f"?missing={missing} disagree; give only ?missing.",
                            code="invalid_parameter",
                            details=[problem("?prune", f"contradicts ?missing={missing}")])
    return missing or ("delete" if ctx.query["prune"] else "keep")


def _audit_import(ctx: Ctx, plan: _Plan) -> Any:
    def also(pipe: Any) -> None:
        for ch in plan.rules:
            audit.record_in(pipe, ctx, f"rule.{ch.action}", f"rule:{ch.ident}",
                            {"revision": ch.n, "via": "import"})
        for ch in plan.policies:
            audit.record_in(pipe, ctx, f"sla_policy.{ch.action}", f"sla_policy:{ch.ident}",
                            {"revision": ch.n, "via": "import"})
        for name, _, action in plan.groups:
            audit.record_in(pipe, ctx, f"group.{action}", f"group:{name}", {"via": "import"})
        if plan.allowlist is not None:
            audit.record_in(pipe, ctx, "allowlist.update", "allowlist",
                            {"hosts": plan.allowlist, "via": "import"})
        audit.record_in(pipe, ctx, "import.apply", "workspace", {"summary": plan.summary()})

    return also


# An import's plan and checks (pure Python over the document and the workspace's state): two at a
# time in a process, in threads of their own (not the loop's default executor, whose threads the
# store's and check pool's exchanges use)
_PLANNING = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="deskflow-import-plan")


@requires("manager", _IMPORT)
async def import_document(ctx: Ctx) -> Response:
    """Apply a document (JSON or YAML by Content-Type) all or nothing; ?dry_run=true answers the
    plan and writes nothing; ?missing=keep|disable|delete says what happens to what it leaves out."""
    dry_run: bool = ctx.query["dry_run"]
    missing = _missing(ctx)
    doc, raw = await _read_document(ctx)
    for i, policy in enumerate(doc.get("sla_policies") or []):   # 413 before any compile
        if isinstance(policy, dict):
            check_policy_size(policy, f"sla_policies[{i}]")
    # by the check pool, a big document in a check process: compiling its rules (1,000 of
    # 1,000-character regexes: seconds of re's Python parser) and policies would hold the GIL
    # the loop every workspace's requests are served from needs (a thread did too)
    problems = await checks(ctx).run(ctx.workspace, "document", raw, await check_calendars(ctx, doc))
    if problems:
        raise Unprocessable(f"The document has {len(problems)} problem(s); nothing was changed.",
                            details=problems)
    ws, by = ctx.workspace, by_of(ctx)
    notes = import_notes(doc, await S.list_scripts(ctx.store, ws), await S.list_secrets(ctx.store, ws))

    read: list[Any] = []

    def planned(state: dict[str, Any], catalog: Any) -> _Plan:
        # (in a planning thread: over a document of 250 rules and a workspace of 1,000 this is
        # hundreds of ms of Python, which on the loop every workspace's requests waited out:
        # another's p99 162-210 ms beside back-to-back imports, tests/server/test_redteam18.py)
        plan = _make_plan(doc, state, missing)
        if plan.problems:
            raise Unprocessable("The document does not match this workspace; nothing was changed.",
                                details=plan.problems)
        raise_missing(import_reference_problems(doc, state, plan, catalog), "The document")
        return plan

    def checked(state: dict[str, Any], plan: _Plan) -> None:   # (in a planning thread too)
        check_rule_changes(ctx.store.settings.max_rule_bytes, state["rules"].sizes, plan.rules,
                           {rid: f"rules[{i}]" for i, rid in enumerate(plan.file_rules)})
        for ch in (*plan.rules, *plan.policies):   # (what the revisions' bound counts, kept)
            R.estimate(ch)

    async def build(p: Any) -> tuple[_Plan, Any]:
        state = await read_state(ctx.store, ws, p)
        read[:] = [state["rules"]]
        catalog = await read_catalog(p, ws)
        loop = asyncio.get_running_loop()
        plan = await loop.run_in_executor(_PLANNING, planned, state, catalog)
        check_rule_count(ctx, len(state["rules"]) + sum(ch.old is None and ch.new is not None
                                                        for ch in plan.rules)
                         - sum(ch.new is None and ch.old is not None for ch in plan.rules))
        await loop.run_in_executor(_PLANNING, checked, state, plan)
        # policies and groups counted as the import leaves them, read in its transaction
        check_policy_count(ctx, len(state["sla_policies"])
                           + sum(ch.old is None and ch.new is not None for ch in plan.policies)
                           - sum(ch.new is None and ch.old is not None for ch in plan.policies))
        check_count(len(state["groups"]) + sum(a == "create" for _, _, a in plan.groups)
                    - sum(a == "delete" for _, _, a in plan.groups),
                    ctx.store.settings.max_groups, one="group", many="groups", per="workspace",
                    setting="DESKFLOW_MAX_GROUPS", code="too_many_groups",
                    advice="Delete groups you no longer use, or import with ?missing=delete.")
        changed = plan.rules or plan.policies or plan.groups or plan.allowlist is not None
        for ch in plan.rules:   # secrets need admin; no X-Deskflow-* webhook headers (issue 13)
            if ch.new is not None:
                check_rule_outbound(ctx.principal.role, ch.new, ch.old, f"rules.{ch.ident}.")
        if dry_run or not changed:
            return plan, None
        if plan.allowlist is not None and RANK.get(ctx.principal.role, 0) < RANK["admin"]:
            raise Forbidden("The document changes the allow-list, which needs an admin key; "
                            "leave `allowlist` out or use an admin key.")
        numbers = await revision_numbers(p, ctx.store, ws, plan)

        def writer(pipe: Any) -> None:
            queue_plan(pipe, ws, plan, numbers, by)
            _audit_import(ctx, plan)(pipe)

        return plan, writer

    plan = await R.transact(ctx.store, watched(ws), build, write_in=_PLANNING)
    if plan.rules and not dry_run:   # (EXEC'd: the rules one revision on, kept)
        advance(ctx.store, ws, read[0], plan.rules)
    changed = any(i["action"] != "unchanged" for i in plan.items)
    return json_response({"dry_run": dry_run, "applied": changed and not dry_run, "missing": missing,
                          "summary": plan.summary(), "items": plan.items, "notes": notes})


routes = [
    Route("/v1/export", export, methods=["GET"]),
    Route("/v1/import", import_document, methods=["POST"]),
]
