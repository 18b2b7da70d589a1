"""SLA policies: first-response, next-response and resolution targets, with business hours."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from rules import RuleError
from rules.sla import compile_policy
from server.api.common import Ctx, json_response, listing, page_params, problem, read_object, requires
from server.errors import Conflict, NotFound, Unprocessable
from server.store import sla as S
from server.store.catalog import now_iso

__all__ = ["routes", "POLICY_NAME"]

POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_POLICIES = 100
_STORED = ("created_at", "updated_at", "position")


def _checked(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The policy as it will be stored; 422 naming the path of the first problem."""
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
    if problems:
        raise Unprocessable(f"The SLA policy is not valid: {problems[0]['path']}: {problems[0]['reason']}",
                            details=problems)
    return spec


@requires("manager")
async def create_policy(ctx: Ctx) -> Response:
    body = await read_object(ctx.request)
    name = body.get("name")
    spec = _checked(body, name if isinstance(name, str) else "")
    existing = await S.list_policies(ctx.store, ctx.workspace)
    if any(p["name"] == spec["name"] for p in existing):
        raise Conflict(f"An SLA policy named {spec['name']!r} exists already.", code="already_exists")
    if len(existing) >= MAX_POLICIES:
        raise Unprocessable(f"A workspace has at most {MAX_POLICIES} SLA policies.",
                            details=[problem("", f"limit of {MAX_POLICIES} policies reached")])
    at = now_iso()
    policy = {**spec, "position": max((p.get("position", 0) for p in existing), default=0) + 1,
              "created_at": at, "updated_at": at}
    await S.put_policy(ctx.store, ctx.workspace, policy)
    return json_response(policy, 201)


@requires("viewer")
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


@requires("viewer")
async def get_policy(ctx: Ctx) -> Response:
    return json_response(await _load(ctx))


@requires("manager")
async def put_policy(ctx: Ctx) -> Response:
    """Replace a policy's definition (its place in the order stays)."""
    old = await _load(ctx)
    body = await read_object(ctx.request)
    if "name" in body and body["name"] != old["name"]:
        raise Unprocessable("An SLA policy cannot be renamed.", details=[problem("name", "must stay " + old["name"])])
    spec = _checked(body, old["name"])
    policy = {**spec, "position": old.get("position", 0), "created_at": old.get("created_at"), "updated_at": now_iso()}
    await S.put_policy(ctx.store, ctx.workspace, policy)
    return json_response(policy)


@requires("manager")
async def delete_policy(ctx: Ctx) -> Response:
    policy = await _load(ctx)
    await S.delete_policy(ctx.store, ctx.workspace, policy["name"])
    return Response(status_code=204)


routes = [
    Route("/v1/sla-policies", create_policy, methods=["POST"]),
    Route("/v1/sla-policies", list_policies, methods=["GET"]),
    Route("/v1/sla-policies/{name}", get_policy, methods=["GET"]),
    Route("/v1/sla-policies/{name}", put_policy, methods=["PUT"]),
    Route("/v1/sla-policies/{name}", delete_policy, methods=["DELETE"]),
]
