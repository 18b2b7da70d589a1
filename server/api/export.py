"""Rules as code (issue 8 part 2): GET /v1/export, POST /v1/import (?dry_run=true for the plan).

The document (JSON, or YAML through PyYAML's safe_dump / safe_load), in a stable order:

  deskflow: 1
  rules:         [...]  in evaluation order: id, name, description, enabled, triggers, conditions,
                        actions, stop (no bookkeeping: no position, revision, timestamps, usage)
  groups:        [...]  by name: name, color, description
  sla_policies:  [...]  in the order they are tried
  scripts:       [...]  metadata only (name, version, timeout, description); read-only on import
  allowlist:     [...]  only in a developer's or admin's export; changing it on import needs admin
  secrets:       [...]  names only, never values; only in an admin's export; read-only on import

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
import datetime as dt
from typing import Any

import orjson
import yaml
from starlette.responses import Response
from starlette.routing import Route

from server import audit
from server.api.checks import allowlist_problems
from server.api.common import RANK, Ctx, _too_deep, json_depth, json_response, problem, requires
from server.api.query import Query, choice, flag
from server.api.rules import (by_of, calendars_of, check_rule_count, definition, rule_problems,
                              workspace_calendars)
from server.api.import_plan import Plan as _Plan
from server.api.import_plan import by_position as _by_position
from server.api.import_plan import export_group as _export_group
from server.api.import_plan import make_plan as _make_plan
from server.api.import_refs import import_reference_problems
from server.api.references import raise_missing, read_catalog
from server.api.sla import check_policy
from server.api.sla import definition as policy_definition
from server.api.validate import GROUP_NAME
from server.errors import BadRequest, Forbidden, PayloadTooLarge, UnsupportedMedia, Unprocessable
from server.scripting import check_rule_outbound
from server.store import keys as K
from server.store import revisions as R
from server.store import scripts as S
from server.store.catalog import rule_order
from server.store.errors import guarded
from server.yamlsafe import load_document_off_loop

__all__ = ["routes", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
_TOP = ("deskflow", "rules", "groups", "sla_policies", "scripts", "allowlist", "secrets")
_RULE_FIRST = ("id", "name", "description", "enabled", "triggers", "conditions", "actions", "stop")
_RULE_ID = GROUP_NAME  # the same shape: 1-64 letters, digits, _ . : -
_MISSING = ("keep", "disable", "delete")


def _ordered(obj: dict[str, Any], first: tuple[str, ...]) -> dict[str, Any]:
    """Known keys first in a fixed order, then the rest sorted: a stable, readable document."""
    return {**{k: obj[k] for k in first if k in obj}, **{k: obj[k] for k in sorted(obj) if k not in first}}


def _export_rule(rule: dict[str, Any]) -> dict[str, Any]:
    return _ordered({"id": rule["id"], **definition(rule)}, _RULE_FIRST)


def _export_policy(policy: dict[str, Any]) -> dict[str, Any]:
    return _ordered(policy_definition(policy), ("name", "conditions", "targets", "warn_before"))


async def _state(p: Any, workspace: str) -> dict[str, Any]:
    """Rules, groups, SLA policies and allow-list as stored (read through `p`: a client, or a
    pipeline in WATCH mode)."""
    async def hash_of(key: str) -> dict[str, dict[str, Any]]:
        return {k: orjson.loads(v) for k, v in (await p.hgetall(key)).items()}

    allow = await p.get(K.allowlist(workspace))
    return {"rules": await hash_of(K.rules(workspace)), "groups": await hash_of(K.groups(workspace)),
            "sla_policies": await hash_of(K.sla_policies(workspace)),
            "allowlist": list(orjson.loads(allow)) if allow else []}


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
    state = await guarded(_state)(ctx.store.redis, ctx.workspace)  # an outage is a 503
    doc: dict[str, Any] = {
        "deskflow": FORMAT_VERSION,
        "rules": [_export_rule(r) for r in sorted(state["rules"].values(), key=rule_order)],
        "groups": [_export_group(g) for g in sorted(state["groups"].values(), key=lambda g: g["name"])],
        "sla_policies": [_export_policy(p) for p in _by_position(state["sla_policies"])],
        "scripts": [_ordered({"name": s["name"], "version": s.get("latest"), "timeout": s.get("timeout"),
                              **({"description": s["description"]} if s.get("description") else {})},
                             ("name", "version", "timeout"))
                    for s in await S.list_scripts(ctx.store, ctx.workspace)],
    }
    rank = RANK.get(ctx.principal.role, 0)
    if rank >= RANK["developer"]:
        doc["allowlist"] = state["allowlist"]
    if rank >= RANK["admin"]:
        doc["secrets"] = await S.list_secrets(ctx.store, ctx.workspace)
    if fmt == "yaml":
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
        return Response(text, media_type="application/yaml")
    return json_response(doc)


def _format(ctx: Ctx) -> str:
    fmt: str | None = ctx.query["format"]
    if fmt is None:
        accept = ctx.request.headers.get("accept", "")
        return "yaml" if any(t in accept for t in _YAML_TYPES) else "json"
    return fmt


# -- import ---------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """YAML reads unquoted dates and times as date objects; the document speaks strings."""
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def _read_document(ctx: Ctx) -> dict[str, Any]:
    request = ctx.request
    limit = ctx.store.settings.max_body_bytes
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    is_yaml = ctype in _YAML_TYPES
    if not is_yaml and ctype != "application/json":
        raise UnsupportedMedia("Send the document as application/json or application/yaml "
                               f"(got {ctype or 'no content type'}).")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"The document is over the limit of {limit} bytes.")
    depth_limit = ctx.store.settings.max_json_depth
    try:
        doc = _plain(await load_document_off_loop(body, depth_limit)) if is_yaml else orjson.loads(body)
    except RecursionError:   # PyYAML recurses once per nesting level
        raise _too_deep(depth_limit, "too many") from None
    except (yaml.YAMLError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The document does not parse: {exc}", code="invalid_document") from exc
    depth = json_depth(doc)
    if depth > depth_limit:
        raise _too_deep(depth_limit, str(depth))
    if not isinstance(doc, dict):
        raise Unprocessable("The document must be a mapping (deskflow, rules, groups, ...).",
                            details=[problem("", "expected a mapping at the top")])
    return doc


def _list(doc: dict[str, Any], key: str, problems: list[dict[str, str]]) -> list[Any] | None:
    if key not in doc or doc[key] is None:
        return None
    if type(doc[key]) is not list:
        problems.append(problem(key, "must be a list"))
        return None
    return list(doc[key])


def _sla_items(doc: dict[str, Any]) -> list[Any]:
    items = doc.get("sla_policies")
    return items if isinstance(items, list) else []


def _validate(doc: dict[str, Any], calendars: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Every problem of the document, with its path; [] when it can be planned. `calendars`: the
    names rules' business-time conditions may use (stored policies and the document's own)."""
    problems = [problem(k, f"unknown key; a document has {', '.join(_TOP)}") for k in doc if k not in _TOP]
    if doc.get("deskflow", FORMAT_VERSION) != FORMAT_VERSION:
        problems.append(problem("deskflow", f"must be {FORMAT_VERSION} (the document format)"))
    seen: dict[str, set[Any]] = {"rule id": set(), "rule name": set(), "group": set(), "policy": set()}

    def once(kind: str, value: Any, path: str) -> None:
        if value in seen[kind]:
            problems.append(problem(path, f"repeats {kind} {value!r}"))
        seen[kind].add(value)

    for i, rule in enumerate(_list(doc, "rules", problems) or []):
        path = f"rules[{i}]"
        if not isinstance(rule, dict):
            problems.append(problem(path, "must be a rule (a mapping)"))
            continue
        if "id" in rule and not (isinstance(rule["id"], str) and _RULE_ID.fullmatch(rule["id"])):
            problems.append(problem(f"{path}.id", "must be 1-64 letters, digits, _ . : -"))
        problems += rule_problems(definition(rule), path, calendars)  # bookkeeping keys pass
        if not isinstance(rule.get("name"), str) and "id" not in rule:
            problems.append(problem(f"{path}.name", "a rule without an id needs a name"))
        if "id" in rule:
            once("rule id", rule["id"], f"{path}.id")
        elif isinstance(rule.get("name"), str):
            once("rule name", rule["name"], f"{path}.name")
    for i, group in enumerate(_list(doc, "groups", problems) or []):
        path = f"groups[{i}]"
        if not isinstance(group, dict) or not (isinstance(group.get("name"), str) and GROUP_NAME.fullmatch(group["name"])):
            problems.append(problem(f"{path}.name", "must be 1-64 letters, digits, _ . : -"))
            continue
        extra = set(group) - {"name", "color", "description"}
        problems += [problem(f"{path}.{k}", "unknown key; a group has name, color, description") for k in sorted(extra)]
        color = group.get("color")
        if color is not None and not (isinstance(color, str) and len(color) == 7 and color[0] == "#"
                                      and all(c in "0123456789abcdefABCDEF" for c in color[1:])):
            problems.append(problem(f"{path}.color", "must be a colour like #ff8800, or null"))
        if group.get("description") is not None and not isinstance(group["description"], str):
            problems.append(problem(f"{path}.description", "must be a string or null"))
        once("group", group["name"], f"{path}.name")
    for i, policy in enumerate(_list(doc, "sla_policies", problems) or []):
        path = f"sla_policies[{i}]"
        if not isinstance(policy, dict) or not isinstance(policy.get("name"), str):
            problems.append(problem(f"{path}.name", "must be the policy's name"))
            continue
        problems += [problem(f"{path}.{p['path']}" if p["path"] else path, p["reason"])
                     for p in check_policy(policy, policy["name"])]
        once("policy", policy["name"], f"{path}.name")
    hosts = _list(doc, "allowlist", problems)
    if hosts is not None:
        problems += allowlist_problems(hosts, "allowlist")
    for key in ("scripts", "secrets"):
        _list(doc, key, problems)
    return problems


def _notes(doc: dict[str, Any], scripts: list[dict[str, Any]], secret_names: list[str]) -> list[str]:
    """What the import leaves alone but the caller may want to know: scripts and secrets are
    read-only here (upload scripts with POST /v1/scripts, set secrets with PUT /v1/secrets/{name})."""
    notes = []
    have = {s["name"]: s.get("latest") for s in scripts}
    for item in doc.get("scripts") or []:
        if isinstance(item, dict) and item.get("name") not in have:
            notes.append(f"script {item.get('name')!r} is not in this workspace (scripts are not imported)")
        elif isinstance(item, dict) and item.get("version") not in (None, have[item["name"]]):
            notes.append(f"script {item['name']!r} is at version {have[item['name']]} here, "
                         f"{item['version']} in the document (scripts are not imported)")
    for name in doc.get("secrets") or []:
        if isinstance(name, str) and name not in secret_names:
            notes.append(f"secret {name!r} is not set in this workspace (secrets are not imported)")
    return notes


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


@requires("manager", _IMPORT)
async def import_document(ctx: Ctx) -> Response:
    """Apply a document (JSON or YAML by Content-Type) all or nothing; ?dry_run=true answers the
    plan and writes nothing; ?missing=keep|disable|delete says what happens to what it leaves out."""
    dry_run: bool = ctx.query["dry_run"]
    missing = _missing(ctx)
    doc = await _read_document(ctx)
    calendars = {**await workspace_calendars(ctx.store, ctx.workspace), **calendars_of(_sla_items(doc))}
    # in a thread: compiling a document's rules (1,000 of 1,000-character regexes: seconds of
    # re's Python parser) would hold the loop every workspace's requests are served from
    problems = await asyncio.to_thread(_validate, doc, calendars)
    if problems:
        raise Unprocessable(f"The document has {len(problems)} problem(s); nothing was changed.",
                            details=problems)
    ws, by = ctx.workspace, by_of(ctx)
    notes = _notes(doc, await S.list_scripts(ctx.store, ws), await S.list_secrets(ctx.store, ws))

    async def build(p: Any) -> tuple[_Plan, Any]:
        state = await _state(p, ws)
        plan = _make_plan(doc, state, missing)
        if plan.problems:
            raise Unprocessable("The document does not match this workspace; nothing was changed.",
                                details=plan.problems)
        raise_missing(import_reference_problems(doc, state, plan, await read_catalog(p, ws)),
                      "The document")
        check_rule_count(ctx, len(state["rules"]) + sum(ch.old is None and ch.new is not None
                                                        for ch in plan.rules)
                         - sum(ch.new is None and ch.old is not None for ch in plan.rules))
        changed = plan.rules or plan.policies or plan.groups or plan.allowlist is not None
        for ch in plan.rules:   # secrets need admin; no X-Deskflow-* webhook headers (issue 13)
            if ch.new is not None:
                check_rule_outbound(ctx.principal.role, ch.new, ch.old, f"rules.{ch.ident}.")
        if dry_run or not changed:
            return plan, None
        if plan.allowlist is not None and RANK.get(ctx.principal.role, 0) < RANK["admin"]:
            raise Forbidden("The document changes the allow-list, which needs an admin key; "
                            "leave `allowlist` out or use an admin key.")
        rule_numbers = [await R.number(p, ws, R.RULE, ch) for ch in plan.rules]
        policy_numbers = [await R.number(p, ws, R.SLA, ch) for ch in plan.policies]

        def writer(pipe: Any) -> None:
            for ch, n in zip(plan.rules, rule_numbers, strict=True):
                R.queue_change(pipe, ws, R.RULE, ch, n, by)
            if plan.rules:
                pipe.incr(K.rules_rev(ws))
            for ch, n in zip(plan.policies, policy_numbers, strict=True):
                R.queue_change(pipe, ws, R.SLA, ch, n, by)
            for name, group, _ in plan.groups:
                if group is None:
                    pipe.hdel(K.groups(ws), name)
                else:
                    pipe.hset(K.groups(ws), name, orjson.dumps(group).decode())
            if plan.allowlist is not None:
                pipe.set(K.allowlist(ws), orjson.dumps(plan.allowlist).decode())
            _audit_import(ctx, plan)(pipe)

        return plan, writer

    watch = [K.rules(ws), K.groups(ws), K.sla_policies(ws), K.allowlist(ws), K.scripts(ws)]
    plan = await R.transact(ctx.store, watch, build)
    changed = any(i["action"] != "unchanged" for i in plan.items)
    return json_response({"dry_run": dry_run, "applied": changed and not dry_run, "missing": missing,
                          "summary": plan.summary(), "items": plan.items, "notes": notes})


routes = [
    Route("/v1/export", export, methods=["GET"]),
    Route("/v1/import", import_document, methods=["POST"]),
]
