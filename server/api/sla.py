"""SLA policies: first-response, next-response and resolution targets, with business hours."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from rules import RuleError
from rules.sla import compile_policy
from server import audit
from server.api.common import (
    Ctx,
    encode_cursor,
    json_response,
    listing,
    page_params,
    path_number,
    problem,
    read_object,
    requires,
)
from server.api.query import PAGE, Query
from server.errors import Conflict, NotFound, Unprocessable
from server.store import revisions as R
from server.store import sla as S
from server.store.catalog import now_iso

__all__ = ["routes", "POLICY_NAME", "definition", "audit_policies", "check_policy"]

POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_POLICIES = 100
_STORED = S.BOOKKEEPING


def check_policy(body: dict[str, Any], name: str) -> list[dict[str, str]]:
    """Every problem of a policy definition (path, reason); [] when valid."""
    spec = {k: v for k, v in body.items() if k not in _STORED}
    spec["name"] = name
    problems = []
    if not POLICY_NAME.fullmatch(name):
        problems.append(problem("name", "must be 1-64 letters, digits, _ . : - (starting with a letter or digit)"))
    else:
        try:
            compile_policy(spec)
        except RuleError as exc:
            problems.append(problem(exc.path, exc.reason))
    return problems


def _checked(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The policy as it will be stored; 422 naming the path of the first problem."""
    spec = {k: v for k, v in body.items() if k not in _STORED}
    spec["name"] = name
    problems = check_policy(body, name)
    if problems:
        raise Unprocessable(f"The SLA policy is not valid: {problems[0]['path']}: {problems[0]['reason']}",
                            details=problems)
    return spec


def _by(ctx: Ctx) -> dict[str, Any]:
    return {"key_id": ctx.principal.key_id, "key_name": ctx.principal.key_name}


def audit_policies(ctx: Ctx) -> Any:
    """Queue one audit entry per policy change, in the change's transaction."""

    def also(pipe: Any, changes: list[R.Change]) -> None:
        for ch in changes:
            audit.record_in(pipe, ctx, f"sla_policy.{ch.action}", f"sla_policy:{ch.ident}",
                            {"revision": ch.n, **(ch.extra or {})})

    return also


async def _write(ctx: Ctx, compute: Any) -> list[R.Change]:
    return await R.write(ctx.store, ctx.workspace, R.SLA, _by(ctx), compute, audit_policies(ctx))


definition = S.definition


@requires("manager")
async def create_policy(ctx: Ctx) -> Response:
    body = await read_object(ctx.request)
    name = body.get("name")
    spec = _checked(body, name if isinstance(name, str) else "")

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        if spec["name"] in current:
            raise Conflict(f"An SLA policy named {spec['name']!r} exists already.", code="already_exists")
        if len(current) >= MAX_POLICIES:
            raise Unprocessable(f"A workspace has at most {MAX_POLICIES} SLA policies.",
                                details=[problem("", f"limit of {MAX_POLICIES} policies reached")])
        at = now_iso()
        policy = {**spec, "position": max((p.get("position", 0) for p in current.values()), default=0) + 1,
                  "created_at": at, "updated_at": at}
        return [R.Change(spec["name"], policy, None, "create")]

    changes = await _write(ctx, compute)
    return json_response(changes[0].new, 201)


@requires("viewer", Query(PAGE))
async def list_policies(ctx: Ctx) -> Response:
    """Policies in the order they are tried."""
    limit, offset = page_params(ctx.request)
    return listing(await S.list_policies(ctx.store, ctx.workspace), limit, offset)


async def _load(ctx: Ctx) -> dict[str, Any]:
    name = ctx.request.path_params["name"]
    policy = await S.get_policy(ctx.store, ctx.workspace, name)
    if policy is None:
        raise NotFound(f"No SLA policy named {name!r} in this workspace.")
    return policy


def _current(current: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    if name not in current:
        raise NotFound(f"No SLA policy named {name!r} in this workspace.")
    return current[name]


@requires("viewer")
async def get_policy(ctx: Ctx) -> Response:
    return json_response(await _load(ctx))


async def _replace(ctx: Ctx, name: str, spec: dict[str, Any], action: str,
                   extra: dict[str, Any] | None = None) -> Response:
    """Write `spec` as policy `name` (its place in the order stays; a deleted one comes back last);
    nothing is written when it says what the policy already says."""
    seen: dict[str, Any] = {}

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        old = seen["policy"] = current.get(name)
        if old is None and action != "restore":
            _current(current, name)
        at = now_iso()
        position = old.get("position", 0) if old else max(
            (p.get("position", 0) for p in current.values()), default=0) + 1
        policy = {**spec, "position": position, "created_at": (old or {}).get("created_at", at),
                  "updated_at": at}
        if old is not None and definition(old) == definition(policy):
            return []
        return [R.Change(name, policy, old, action, extra)]

    changes = await _write(ctx, compute)
    return json_response(changes[0].new if changes else seen["policy"])


@requires("manager")
async def put_policy(ctx: Ctx) -> Response:
    """Replace a policy's definition (its place in the order stays)."""
    name = ctx.request.path_params["name"]
    body = await read_object(ctx.request)
    if "name" in body and body["name"] != name:
        raise Unprocessable("An SLA policy cannot be renamed.", details=[problem("name", "must stay " + name)])
    return await _replace(ctx, name, _checked(body, name), "update")


@requires("manager")
async def delete_policy(ctx: Ctx) -> Response:
    """Delete a policy (its revisions stay readable and restorable)."""
    name = ctx.request.path_params["name"]

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        return [R.Change(name, None, _current(current, name), "delete")]

    await _write(ctx, compute)
    return Response(status_code=204)


async def _revision(ctx: Ctx) -> dict[str, Any]:
    name, raw = ctx.request.path_params["name"], ctx.request.path_params["n"]
    n = path_number(ctx.request, "n", "a revision number")
    rev = await R.get(ctx.store, ctx.workspace, R.SLA, name, n) if n is not None else None
    if rev is None:
        raise NotFound(f"SLA policy {name!r} has no revision {raw!r}.")
    return rev


@requires("viewer", Query(PAGE))
async def list_revisions(ctx: Ctx) -> Response:
    """The policy's revisions, newest first: {n, action, at, by: {key_id, key_name}, policy}."""
    name = ctx.request.path_params["name"]
    limit, offset = page_params(ctx.request)
    items, more = await R.page(ctx.store, ctx.workspace, R.SLA, name, offset, limit)
    if not items and await R.count(ctx.store, ctx.workspace, R.SLA, name) == 0:
        await _load(ctx)
    return json_response({"items": items, "next": encode_cursor(offset + limit) if more else None})


@requires("viewer")
async def get_revision(ctx: Ctx) -> Response:
    """One revision of an SLA policy."""
    return json_response(await _revision(ctx))


@requires("manager")
async def restore_revision(ctx: Ctx) -> Response:
    """Make the policy say again what revision n said: a new revision (a deleted one comes back)."""
    rev = await _revision(ctx)
    if rev["action"] == "delete":
        raise Unprocessable("That revision records the policy's deletion; restore an earlier one.",
                            details=[problem("n", "is a delete revision")])
    name = ctx.request.path_params["name"]
    spec = _checked(definition(rev["policy"]), name)
    return await _replace(ctx, name, spec, "restore", {"restored_from": rev["n"]})


routes = [
    Route("/v1/sla-policies", create_policy, methods=["POST"]),
    Route("/v1/sla-policies", list_policies, methods=["GET"]),
    Route("/v1/sla-policies/{name}", get_policy, methods=["GET"]),
    Route("/v1/sla-policies/{name}", put_policy, methods=["PUT"]),
    Route("/v1/sla-policies/{name}", delete_policy, methods=["DELETE"]),
    Route("/v1/sla-policies/{name}/revisions", list_revisions, methods=["GET"]),
    Route("/v1/sla-policies/{name}/revisions/{n}", get_revision, methods=["GET"]),
    Route("/v1/sla-policies/{name}/revisions/{n}/restore", restore_revision, methods=["POST"]),
]
