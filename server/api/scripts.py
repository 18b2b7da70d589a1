"""Scripts (upload, versions, test-run), the HTTP allow-list and secrets."""

from __future__ import annotations

import re
from typing import Any

import orjson

from starlette.responses import Response
from starlette.routing import Route

from sandbox import LimitsError
from server import audit
from server.api.checks import allowlist_problems, timeout_problem
from server.api.common import Ctx, json_response, listing, page_params, path_number, problem, read_object, requires
from server.api.query import FORCE, PAGE, Query
from server.api.references import Catalog, delete_in_use, force_param, read_catalog
from server.api.rule_checks import checks
from server.api.rules import audit_rules, by_of
from server.errors import NotFound, Unprocessable
from server.scripting import script_limits
from server.store import keys as K
from server.store import scripts as S

__all__ = ["routes", "SCRIPT_NAME", "MAX_SCRIPT_DESCRIPTION"]

SCRIPT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_SOURCE_BYTES = 64 * 1024
MAX_SECRET_BYTES = 8 * 1024
# A script's description is kept on its entry in the scripts hash, which GET /v1/scripts, the
# export and every rule write's reference check (server/api/references.py) read whole: unbounded,
# 200 scripts of 1 MiB bodies were 200 MB read per rule write.
MAX_SCRIPT_DESCRIPTION = 1000


@requires("developer")
async def upload(ctx: Ctx) -> Response:
    """Upload a script, or a new version of one: {"name", "source", "timeout"?}."""
    body = await read_object(ctx.request)
    problems: list[dict[str, str]] = []
    name, source, timeout = body.get("name"), body.get("source"), body.get("timeout")
    extra = sorted(set(body) - {"name", "source", "timeout", "description"})
    problems += [problem(k, "unknown key; a script has name, source, timeout") for k in extra]
    if not (isinstance(name, str) and SCRIPT_NAME.fullmatch(name)):
        problems.append(problem("name", "must match ^[a-z0-9][a-z0-9_-]{0,63}$"))
    if not isinstance(source, str) or not source.strip():
        problems.append(problem("source", "must be the script's Python source, a non-empty string"))
    elif len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        problems.append(problem("source", f"is {len(source.encode('utf-8', 'surrogatepass')):,} bytes; "
                                          f"the limit is {MAX_SOURCE_BYTES:,}"))
    description = body.get("description")
    if isinstance(description, str) and len(description) > MAX_SCRIPT_DESCRIPTION:
        problems.append(problem("description", f"is {len(description):,} characters; the script "
                                               f"description limit is {MAX_SCRIPT_DESCRIPTION:,} "
                                               "characters (limit MAX_SCRIPT_DESCRIPTION)"))
    if timeout is not None:
        if not isinstance(timeout, str):
            problems.append(problem("timeout", 'must be a duration string like "5s"'))
        else:
            reason = timeout_problem(timeout)  # in the units the user wrote
            try:
                script_limits(timeout)
            except (LimitsError, ValueError) as exc:
                reason = reason or str(exc)
            if reason:
                problems.append(problem("timeout", reason))
    if problems:
        raise Unprocessable("The script is not valid.", details=problems)
    assert isinstance(name, str) and isinstance(source, str)  # checked above
    refused: list[str] = await checks(ctx).run(ctx.workspace, "script", source)   # a big one off the loop
    if refused:
        raise Unprocessable("The script does not compile under the sandbox policy.", code="script_refused",
                            details=[problem("source", reason) for reason in refused])
    description = description if isinstance(description, str) else None

    def also(pipe: Any, version: int) -> None:
        audit.record_in(pipe, ctx, "script.upload", f"script:{name}", {"version": version})

    record = await S.add_version(ctx.store, ctx.workspace, name, source, timeout,
                                 created_by=ctx.principal.key_id or "", description=description,
                                 also=also)
    return json_response({k: v for k, v in record.items() if k != "source"}, 201)


@requires("viewer", Query(PAGE))
async def list_scripts(ctx: Ctx) -> Response:
    limit, offset = page_params(ctx.request)
    return listing([S.public(m) for m in await S.list_scripts(ctx.store, ctx.workspace)], limit, offset)


async def _meta(ctx: Ctx) -> dict[str, Any]:
    name = ctx.request.path_params["name"]
    meta = await S.get_script(ctx.store, ctx.workspace, name)
    if meta is None:
        raise NotFound(f"No script named {name!r} in this workspace.")
    return meta


@requires("viewer")
async def get_script(ctx: Ctx) -> Response:
    """The script: its latest version's source and every version's metadata."""
    meta = await _meta(ctx)
    latest = await S.get_version(ctx.store, ctx.workspace, meta["name"], int(meta["latest"]))
    versions = await S.list_versions(ctx.store, ctx.workspace, meta["name"])
    return json_response({**S.public(meta), "version": meta["latest"], "source": (latest or {}).get("source"),
                          "versions": versions})


@requires("viewer")
async def get_version(ctx: Ctx) -> Response:
    meta = await _meta(ctx)
    raw, n = ctx.request.path_params["n"], path_number(ctx.request, "n", "a version number")
    record = await S.get_version(ctx.store, ctx.workspace, meta["name"], n) if n is not None else None
    if record is None:
        raise NotFound(f"Script {meta['name']!r} keeps {S.kept_text(S.kept_versions(meta))}; there is no {raw!r} "
                       "(a script keeps its newest DESKFLOW_MAX_SCRIPT_VERSIONS versions).")
    return json_response(record)


@requires("developer")
async def test_script(ctx: Ctx) -> Response:
    """Run a version on a sample {"event", "ticket"?, "version"?}; applies nothing. A failing run
    still answers 200 with `error` set."""
    meta = await _meta(ctx)
    body = await read_object(ctx.request)
    event, version = body.get("event"), body.get("version", meta["latest"])
    problems: list[dict[str, str]] = []
    if not isinstance(event, dict):
        problems.append(problem("event", "must be an event object"))
    if "ticket" in body and not isinstance(body["ticket"], dict):
        problems.append(problem("ticket", "must be a ticket object"))
    if not (type(version) is int and version in S.kept_versions(meta)):
        problems.append(problem("version", f"must be a version the script keeps: {S.kept_text(S.kept_versions(meta))}"))
    if problems:
        raise Unprocessable("The test request is not valid.", details=problems)
    assert isinstance(event, dict)
    ticket = body.get("ticket") or event.get("ticket") or {}
    entry = await ctx.request.state.scripting.run_script(
        ctx.workspace, {"script": meta["name"], "version": version}, event, ticket, {})
    return json_response(entry)


@requires("developer", Query(FORCE))
async def delete_script(ctx: Ctx) -> Response:
    """Delete a script and all its versions. Enabled rules that run it make this a 409 listing
    them; ?force=true deletes anyway and disables those rules (200 with `disabled_rules`)."""
    name = ctx.request.path_params["name"]
    ws = ctx.workspace

    async def load(p: Any) -> tuple[Catalog, Catalog, dict[str, Any]]:
        raw = await p.hget(K.scripts(ws), name)
        if raw is None:
            raise NotFound(f"No script named {name!r} in this workspace.")
        before = await read_catalog(p, ws)
        return before, before.without("script", name), orjson.loads(raw)

    def queue_delete(pipe: Any, meta: dict[str, Any]) -> None:
        S.queue_delete_script(pipe, ws, meta)
        audit.record_in(pipe, ctx, "script.delete", f"script:{name}",
                        {"versions": meta.get("latest"), "forced": force_param(ctx)})

    disabled = await delete_in_use(ctx, by_of(ctx), f"Script {name!r}", [K.scripts(ws)], load,
                                   queue_delete, audit_rules(ctx))
    if force_param(ctx):
        return json_response({"deleted": {"script": name}, "disabled_rules": disabled}, 200)
    return Response(status_code=204)


@requires("admin")
async def put_allowlist(ctx: Ctx) -> Response:
    """Replace the allow-list: {"hosts": ["crm.example.com", "billing.example.com:8443", ...]}."""
    body = await read_object(ctx.request)
    hosts = body.get("hosts")
    problems = allowlist_problems(hosts)  # every bad entry, not only the first
    if problems:
        raise Unprocessable("The allow-list is not valid: " + "; ".join(
            f"{p['path']}: {p['reason']}" for p in problems[:5]), details=problems)
    assert isinstance(hosts, list)  # allowlist_problems refuses anything else
    await S.put_allowlist(ctx.store, ctx.workspace, list(dict.fromkeys(hosts)))
    await audit.record(ctx, "allowlist.update", "allowlist", {"hosts": list(dict.fromkeys(hosts))})
    return json_response({"hosts": await S.get_allowlist(ctx.store, ctx.workspace)})


@requires("developer")
async def get_allowlist(ctx: Ctx) -> Response:
    return json_response({"hosts": await S.get_allowlist(ctx.store, ctx.workspace)})


def _secret_hosts(raw: object, problems: list[dict[str, str]]) -> list[str] | None:
    """The hosts a secret may be sent to, in allow-list spelling; None when not given (unbound:
    any allow-listed host, as before secrets had hosts)."""
    if raw is None:
        return None
    found = allowlist_problems(raw, "hosts")  # the allow-list's own entry rules and limit
    if found:
        problems.extend(found)
        return None
    assert isinstance(raw, list)  # allowlist_problems refuses anything else
    return [str(h) for h in dict.fromkeys(raw)]


@requires("admin")
async def put_secret(ctx: Ctx) -> Response:
    """Set a secret {"value", "hosts"?}; write-only: no route ever returns a value. `hosts` binds
    it to the origins it may be sent to (the broker refuses any other; [] = none)."""
    name = ctx.request.path_params["name"]
    body = await read_object(ctx.request)
    value = body.get("value")
    problems: list[dict[str, str]] = [problem(k, "unknown key; a secret has value and hosts")
                                      for k in sorted(set(body) - {"value", "hosts"})]
    hosts = _secret_hosts(body.get("hosts"), problems)
    if not SECRET_NAME.fullmatch(name):
        problems.append(problem("name", "must match ^[A-Za-z_][A-Za-z0-9_]{0,63}$"))
    if not isinstance(value, str) or not value:
        problems.append(problem("value", "must be a non-empty string"))
    elif len(value.encode("utf-8", "surrogatepass")) > MAX_SECRET_BYTES:
        problems.append(problem("value", f"the limit is {MAX_SECRET_BYTES:,} bytes"))
    elif any(c in value for c in "\r\n\0"):
        problems.append(problem("value", "must not contain CR, LF or NUL (it goes into an HTTP header)"))
    if problems:
        raise Unprocessable("The secret is not valid.", details=problems)
    assert isinstance(value, str)
    created = await S.put_secret(ctx.store, ctx.workspace, name, value, hosts)
    await audit.record(ctx, "secret.put", f"secret:{name}",       # never the value
                       {"created": created, "hosts": hosts})
    return json_response({"name": name, **({"hosts": hosts} if hosts is not None else {})},
                         201 if created else 200)


@requires("admin", Query(PAGE))
async def list_secrets(ctx: Ctx) -> Response:
    """Names and, for a secret bound to hosts, its `hosts`; never values."""
    limit, offset = page_params(ctx.request)
    records = await S.get_secret_records(ctx.store, ctx.workspace)
    names = await S.list_secrets(ctx.store, ctx.workspace)   # also those no key opens
    items = [{"name": n, **({"hosts": records[n][1]} if n in records and records[n][1] is not None else {})}
             for n in names]
    return listing(items, limit, offset)


@requires("admin")
async def delete_secret(ctx: Ctx) -> Response:
    name = ctx.request.path_params["name"]
    if not await S.delete_secret(ctx.store, ctx.workspace, name):
        raise NotFound(f"No secret named {name!r}.")
    await audit.record(ctx, "secret.delete", f"secret:{name}")
    return Response(status_code=204)


routes = [
    Route("/v1/scripts", upload, methods=["POST"]),
    Route("/v1/scripts", list_scripts, methods=["GET"]),
    Route("/v1/scripts/{name}", get_script, methods=["GET"]),
    Route("/v1/scripts/{name}", delete_script, methods=["DELETE"]),
    Route("/v1/scripts/{name}/versions/{n}", get_version, methods=["GET"]),
    Route("/v1/scripts/{name}/test", test_script, methods=["POST"]),
    Route("/v1/allowlist", put_allowlist, methods=["PUT"]),
    Route("/v1/allowlist", get_allowlist, methods=["GET"]),
    Route("/v1/secrets", list_secrets, methods=["GET"]),
    Route("/v1/secrets/{name}", put_secret, methods=["PUT"]),
    Route("/v1/secrets/{name}", delete_secret, methods=["DELETE"]),
]
