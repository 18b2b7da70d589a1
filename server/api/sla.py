"""SLA policies: first-response, next-response and resolution targets, with business hours."""

from __future__ import annotations

import re
from typing import Any

import orjson

from starlette.responses import Response
from starlette.routing import Route

from server import audit
from server.api.common import (
    Ctx,
    json_response,
    listing,
    page_params,
    problem,
    read_object,
    requires,
)
from server.api.query import FORCE, PAGE, Query
from server.api.references import Catalog, delete_in_use, force_param, read_catalog, write_policies
from server.api.revisioned import Revisions, by_of
from server.api.rule_checks import checks
from server.api.rules import audit_rules
from server.api.sla_checks import policy_problems
from server.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from server.settings import Settings
from server.store import keys as K
from server.store import revisions as R
from server.store import sla as S
from server.store.catalog import now_iso
from server.store.counts import check_count

__all__ = ["routes", "POLICY_NAME", "definition", "audit_policies", "check_policy",
           "check_policy_size", "check_policy_count", "MAX_POLICY_BYTES"]

POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_POLICIES = Settings.max_sla_policies   # the default; the limit is Settings.max_sla_policies
# One policy's definition as compact JSON (413 policy_too_large): the worker compiles a workspace's
# policies whole (server/policy_cache.py) and every rule write reads them (the catalog), so 100 of
# them each a 1 MiB body were 100 MiB read per write; 1,000 holidays and 12 windows a day for all
# 7 days come to about 20 KiB.
MAX_POLICY_BYTES = 64 * 1024
_STORED = S.BOOKKEEPING
_RESERVED = frozenset({"order"})  # PUT /v1/sla-policies/order is the order route


def check_policy(body: dict[str, Any], name: str) -> list[dict[str, str]]:
    """Every problem of a policy definition (path, reason); [] when valid."""
    spec = {k: v for k, v in body.items() if k not in _STORED}
    if not POLICY_NAME.fullmatch(name):
        return [problem("name", "must be 1-64 letters, digits, _ . : - (starting with a letter or digit)")]
    return [problem(path, reason) for path, reason in policy_problems(spec, name)]


def check_policy_size(spec: dict[str, Any], path: str = "") -> None:
    """413 policy_too_large when the policy's definition is over MAX_POLICY_BYTES of compact JSON."""
    size = len(orjson.dumps({k: v for k, v in spec.items() if k not in _STORED}))
    if size > MAX_POLICY_BYTES:
        raise PayloadTooLarge(
            f"The SLA policy is {size} bytes; the SLA policy size limit is {MAX_POLICY_BYTES} "
            f"bytes of compact JSON (limit MAX_POLICY_BYTES).", code="policy_too_large",
            details=[problem(path, f"at most {MAX_POLICY_BYTES} bytes of JSON")])


def check_policy_count(ctx: Ctx, after: int) -> None:
    """422 too_many_policies when a change would leave more than Settings.max_sla_policies."""
    check_count(after, ctx.store.settings.max_sla_policies, one="SLA policy", many="SLA policies",
                per="workspace", setting="DESKFLOW_MAX_SLA_POLICIES", code="too_many_policies",
                advice="Delete policies you no longer use (DELETE /v1/sla-policies/{name}).")


def _position_type(body: dict[str, Any]) -> list[dict[str, str]]:
    pos = body.get("position")
    if pos is None or (type(pos) is int and pos >= 1):
        return []
    return [problem("position", "must be a whole number from 1 (first) up; leave it out to keep "
                                "the place (PUT) or to go last (create)")]


async def _checked(ctx: Ctx, body: dict[str, Any], name: str, *, reserved: bool = False) -> dict[str, Any]:
    """The policy as it will be stored; 422 listing every problem. Checked by the check pool: a
    policy of 1,000 holidays and 12 windows a day is compiled in a check process
    (server/checkpool.py), not on the loop every workspace's requests share."""
    spec = {k: v for k, v in body.items() if k not in _STORED}
    spec["name"] = name
    check_policy_size(spec)   # before any compile
    problems = await checks(ctx).run(ctx.workspace, "policy", body, name) + _position_type(body)
    if reserved and name in _RESERVED:
        problems.insert(0, problem("name", f"{name!r} is reserved (PUT /v1/sla-policies/order "
                                           "sets the order); choose another name"))
    if problems:
        raise Unprocessable("The SLA policy is not valid: " + "; ".join(
            f"{p['path'] or 'policy'}: {p['reason']}" for p in problems[:5]), details=problems)
    return spec


def _ordered(current: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The policies in the order they are tried (store/sla.py's order)."""
    return sorted(current.values(), key=S.policy_order)


def _place(ordered: list[dict[str, Any]], at: str, changed: dict[str, R.Change]) -> list[R.Change]:
    """Positions 1..n for `ordered` (dense, so export -> plan compares like with like): the
    changes in `changed` get their place, every other policy whose position moves gets a
    "reorder" revision."""
    out = []
    for pos, policy in enumerate(ordered, start=1):
        ch = changed.get(policy["name"])
        if ch is not None:
            assert ch.new is not None
            ch.new["position"] = pos
            out.append(ch)
        elif policy.get("position") != pos:
            out.append(R.Change(policy["name"], {**policy, "position": pos, "updated_at": at},
                                policy, "reorder"))
    return out


def _bounded(pos: Any, most: int) -> int | None:
    """A requested position (1..most), or None when none was asked for; 422 outside."""
    if pos is None:
        return None
    if not 1 <= pos <= most:
        raise Unprocessable(f"`position` must be from 1 to {most} here (got {pos}).",
                            details=[problem("position", f"must be from 1 to {most}")])
    return int(pos)


def audit_policies(ctx: Ctx) -> Any:
    """Queue one audit entry per policy change, in the change's transaction."""

    def also(pipe: Any, changes: list[R.Change]) -> None:
        for ch in changes:
            audit.record_in(pipe, ctx, f"sla_policy.{ch.action}", f"sla_policy:{ch.ident}",
                            {"revision": ch.n, **(ch.extra or {})})

    return also


async def _write(ctx: Ctx, compute: Any) -> list[R.Change]:
    """Write policy changes with revisions and audit entries; taking away business hours an
    enabled rule names as its calendar is a 409 (server/api/references.py)."""
    return await write_policies(ctx, by_of(ctx), compute, audit_policies(ctx))


definition = S.definition


@requires("manager")
async def create_policy(ctx: Ctx) -> Response:
    """Create a policy: last in the order, or at `position` (1 = tried first; those at and after
    it move down one)."""
    body = await read_object(ctx.request)
    name = body.get("name")
    spec = await _checked(ctx, body, name if isinstance(name, str) else "", reserved=True)

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        if spec["name"] in current:
            raise Conflict(f"An SLA policy named {spec['name']!r} exists already.", code="already_exists")
        check_policy_count(ctx, len(current) + 1)   # (read in the write's transaction)
        at = now_iso()
        ordered = _ordered(current)
        pos = _bounded(body.get("position"), len(ordered) + 1) or len(ordered) + 1
        policy = {**spec, "position": pos, "created_at": at, "updated_at": at}
        ordered.insert(pos - 1, policy)
        return _place(ordered, at, {spec["name"]: R.Change(spec["name"], policy, None, "create")})

    changes = await _write(ctx, compute)
    return json_response(next(ch.new for ch in changes if ch.ident == spec["name"]), 201)


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
                   extra: dict[str, Any] | None = None, position: Any = None) -> Response:
    """Write `spec` as policy `name`: at `position` if given, else where it is (a deleted one
    comes back last); nothing is written when nothing changes."""
    seen: dict[str, Any] = {}

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        old = seen["policy"] = current.get(name)
        if old is None and action != "restore":
            _current(current, name)
        if old is None:   # a deleted policy restored comes back: counted like a create
            check_policy_count(ctx, len(current) + 1)
        at = now_iso()
        ordered = [p for p in _ordered(current) if p["name"] != name]
        index = ([p["name"] for p in _ordered(current)].index(name) if old else len(ordered))
        pos = _bounded(position, len(ordered) + 1)
        index = pos - 1 if pos is not None else index
        policy = {**spec, "position": index + 1, "created_at": (old or {}).get("created_at", at),
                  "updated_at": at}
        ordered.insert(index, policy)
        changes = _place(ordered, at, {name: R.Change(name, policy, old, action, extra)})
        if old is not None and definition(old) == definition(policy) and old.get("position") == policy["position"]:
            changes = [ch for ch in changes if ch.ident != name]  # only neighbours' numbering, if any
        return changes

    changes = await _write(ctx, compute)
    mine = [ch.new for ch in changes if ch.ident == name]
    return json_response(mine[0] if mine else seen["policy"])


@requires("manager")
async def put_policy(ctx: Ctx) -> Response:
    """Replace a policy's definition; its place in the order stays unless `position` is given."""
    name = ctx.request.path_params["name"]
    body = await read_object(ctx.request)
    if "name" in body and body["name"] != name:
        raise Unprocessable("An SLA policy cannot be renamed.", details=[problem("name", "must stay " + name)])
    return await _replace(ctx, name, await _checked(ctx, body, name), "update", position=body.get("position"))


@requires("manager")
async def order_policies(ctx: Ctx) -> Response:
    """Set the order policies are tried in: {"names": [...]} naming every policy exactly once.
    Every policy whose position changes gets a revision."""
    body = await read_object(ctx.request)
    names = body.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Unprocessable("`names` must be a list of SLA policy names.",
                            details=[problem("names", "must be a list of policy names, first tried first")])
    result: list[dict[str, Any]] = []

    def compute(current: dict[str, dict[str, Any]]) -> list[R.Change]:
        problems = []
        seen: set[str] = set()
        for i, n in enumerate(names):
            if n in seen:
                problems.append(problem(f"names[{i}]", f"repeats {n!r}; name each policy once"))
            elif n not in current:
                problems.append(problem(f"names[{i}]", f"no SLA policy named {n!r}"))
            seen.add(n)
        for n in sorted(set(current) - seen):
            problems.append(problem("names", f"leaves out {n!r}; name every policy exactly once"))
        if problems:
            raise Unprocessable("The order must name every SLA policy exactly once: " + "; ".join(
                f"{p['path']}: {p['reason']}" for p in problems[:5]), details=problems)
        at = now_iso()
        changes = _place([current[n] for n in names], at, {})
        by_name = {ch.ident: ch.new for ch in changes}
        result[:] = [by_name.get(n) or current[n] for n in names]
        return changes

    await _write(ctx, compute)
    return json_response({"items": result, "next": None})


@requires("manager", Query(FORCE))
async def delete_policy(ctx: Ctx) -> Response:
    """Delete a policy (its revisions stay readable and restorable); those after it move up one.
    Enabled rules that apply it make this a 409 listing them; ?force=true deletes anyway and
    disables them (200 with `disabled_rules`)."""
    name, ws = ctx.request.path_params["name"], ctx.workspace

    async def load(p: Any) -> tuple[Catalog, Catalog, tuple[list[R.Change], list[int]]]:
        current = await R.read_all(p, ws, R.SLA)
        old = _current(current, name)
        before = await read_catalog(p, ws)
        at = now_iso()
        changes = [R.Change(name, None, old, "delete")]
        changes += _place([q for q in _ordered(current) if q["name"] != name], at, {})
        return before, before.without("policy", name), (
            changes, await R.numbers(p, ctx.store, ws, R.SLA, changes))

    def queue_delete(pipe: Any, target: tuple[list[R.Change], list[int]]) -> None:
        changes, numbers = target
        R.queue_changes(pipe, ws, R.SLA, changes, numbers, by_of(ctx))
        audit_policies(ctx)(pipe, changes)

    disabled = await delete_in_use(ctx, by_of(ctx), f"SLA policy {name!r}", [K.sla_policies(ws)],
                                   load, queue_delete, audit_rules(ctx))
    if force_param(ctx):
        return json_response({"deleted": {"sla_policy": name}, "disabled_rules": disabled}, 200)
    return Response(status_code=204)


async def _restore(ctx: Ctx, rev: dict[str, Any]) -> Response:
    """Write what policy revision `rev` says as a new revision."""
    name = ctx.request.path_params["name"]
    spec = await _checked(ctx, definition(rev["policy"]), name)
    return await _replace(ctx, name, spec, "restore", {"restored_from": rev["n"]})


routes = [
    Route("/v1/sla-policies", create_policy, methods=["POST"]),
    Route("/v1/sla-policies", list_policies, methods=["GET"]),
    Route("/v1/sla-policies/order", order_policies, methods=["PUT"]),
    Route("/v1/sla-policies/{name}", get_policy, methods=["GET"]),
    Route("/v1/sla-policies/{name}", put_policy, methods=["PUT"]),
    Route("/v1/sla-policies/{name}", delete_policy, methods=["DELETE"]),
    *Revisions(R.SLA, "name", "SLA policy", "policy", _load).routes("/v1/sla-policies/{name}", (
        "The policy's revisions, newest first: {n, action, at, by: {key_id, key_name}, policy}.",
        "One revision of an SLA policy.",
        "Make the policy say again what revision n said: a new revision (a deleted one comes "
        "back)."), _restore),
]
