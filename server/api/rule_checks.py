"""The checks of a rule a tenant writes, for every route that writes one (rules, drafts, imports,
backtests, SLA policies): what the engine finds wrong with it, run by the app's check pool
(server/checkpool.py: a big rule in a check process), and the rule-count limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from server.api.common import Ctx, problem
from server.checkpool import CheckPool
from server.checkwork import Calendars, calendar_specs, named_calendars
from server.errors import Conflict, Unprocessable
from server.policy_cache import compile_policies
from server.store import sla as sla_store

__all__ = ["rule_problems", "problems_of", "checked", "checks", "check_calendars", "calendars_of",
           "check_rule_count", "Moved", "CHECK_TRIES", "checked_write"]

T = TypeVar("T")
CHECK_TRIES = 3   # what was checked changed under its write this many times in a row: a 409


class Moved(Exception):
    """What a write checked (outside its transaction, by the check pool) changed before the
    transaction, so that it says otherwise: check it again."""


async def checked_write(once: Callable[[], Awaitable[T]], refused: str) -> T:
    """`once()` (a check, then the transaction that writes what was checked, raising Moved if it
    changed meanwhile) until it is not Moved, at most CHECK_TRIES times; then a 409
    rule_changed saying `refused`. The check never runs inside the transaction: there every
    change of what it watches would run the check (up to its CPU limit) again."""
    for _ in range(CHECK_TRIES):
        try:
            return await once()
        except Moved:
            continue   # checked again, off the loop, against what is there now
    raise Conflict(refused, code="rule_changed")


def check_rule_count(ctx: Ctx, after: int) -> None:
    """422 too_many_rules when a change would leave more rules than Settings.max_rules."""
    limit = ctx.store.settings.max_rules
    if after > limit:
        raise Unprocessable(
            f"This would make {after} rules; the rule count limit is {limit} rules per workspace "
            f"(DESKFLOW_MAX_RULES). Delete rules you no longer use (GET /v1/rules?unused_for=30d).",
            code="too_many_rules", details=[problem("", f"at most {limit} rules per workspace")])


def calendars_of(specs: list[Any]) -> dict[str, Any]:
    """The calendars rules may name in business-time conditions: each SLA policy's business hours
    by the policy's name (a spec that does not compile is left out; its own check reports it)."""
    from rules.sla import policy_calendars

    return policy_calendars(compile_policies(specs, quiet=True))


def _raise_invalid(problems: list[dict[str, str]]) -> None:
    """422 with every problem the engine found (path + reason), or nothing."""
    if problems:
        raise Unprocessable("The rule is not valid: " + "; ".join(
            f"{p['path'] or 'rule'}: {p['reason']}" for p in problems[:5]), details=problems)


async def check_calendars(ctx: Ctx, node: Any) -> Calendars:
    """The workspace's calendars as a check of `node` (a rule, a document) needs them: the specs
    of the SLA policies it names, the other policies' names (server/checkwork.py)."""
    return calendar_specs(await sla_store.list_policies(ctx.store, ctx.workspace), named_calendars(node))


async def problems_of(ctx: Ctx, rule: Any, prefix: str = "") -> list[dict[str, str]]:
    """rule_problems of a rule the caller wrote, checked by the app's check pool: a big rule in a
    check process (server/checkpool.py), so its compile holds no GIL another workspace's requests
    wait on (300 regexes of ~770 characters written over and over: another workspace's p99 was
    1,050 ms on the loop, 134-174 ms in a thread; tests/server/test_tenant_isolation.py)."""
    cal = await check_calendars(ctx, rule)
    problems: list[dict[str, str]] = await checks(ctx).run(ctx.workspace, "rule", rule, prefix, cal)
    return problems


async def checked(ctx: Ctx, rule: dict[str, Any]) -> None:
    """422 with every problem of `rule` (problems_of), or nothing."""
    _raise_invalid(await problems_of(ctx, rule))


def checks(ctx: Ctx) -> CheckPool:
    """The app's check pool (opened in the lifespan, server/app.py)."""
    pool: CheckPool = ctx.request.state.checks
    return pool


def rule_problems(rule: Any, prefix: str = "", calendars: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Every problem of one rule definition as {path, reason} (paths under `prefix`); `calendars`
    are the names business-time conditions may use (calendars_of)."""
    from rules import validate_rule

    problems: list[dict[str, str]] = []
    if isinstance(rule, dict) and "name" in rule and (
            not isinstance(rule["name"], str) or not rule["name"].strip()):
        problems.append({"path": "name", "reason": "must be a non-empty string"})
    problems += [{"path": p.path, "reason": p.reason} for p in validate_rule(rule, calendars=calendars)]
    problems += _bounds_of_valid_actions(rule, problems)
    if prefix:
        problems = [{"path": f"{prefix}.{p['path']}" if p["path"] else prefix, "reason": p["reason"]}
                    for p in problems]
    return problems


def _bounds_of_valid_actions(rule: Any, problems: list[dict[str, str]]) -> list[dict[str, str]]:
    """The run-time bounds of the actions the engine found nothing wrong with (server/api/
    action_bounds.py), so that an action is never named twice for one mistake."""
    from server.api.action_bounds import action_bound_problems

    engine = {p["path"].split(".", 1)[0] for p in problems}
    return [b for b in action_bound_problems(rule) if b["path"].split(".", 1)[0] not in engine]
