"""The store side of rules as code: the workspace state an export shows and an import is planned
against (rules, groups, SLA policies, allow-list), and the writes of an import plan, queued on the
one MULTI that WATCHes what the plan was computed from (server/api/export.py runs it)."""

from __future__ import annotations

from typing import Any

import orjson

from server.store import keys as K
from server.store import revisions as R
from server.store.connect import Store
from server.store.rule_snapshot import read_rules

__all__ = ["queue_plan", "read_state", "revision_numbers", "watched"]


async def read_state(store: Any, workspace: str, pipe: Any = None) -> dict[str, Any]:
    """Rules, groups, SLA policies and allow-list as stored (read through `pipe`, a pipeline in
    WATCH mode, when given). The rules are a store/rule_snapshot.Rules: as kept at their revision
    when it has not moved, with each one's stored size; shared, not to be changed."""
    p = pipe if pipe is not None else store.redis

    async def hash_of(key: str) -> dict[str, dict[str, Any]]:
        return {k: orjson.loads(v) for k, v in (await p.hgetall(key)).items()}

    rules = await read_rules(store, workspace, pipe)
    allow = await p.get(K.allowlist(workspace))
    return {"rules": rules, "groups": await hash_of(K.groups(workspace)),
            "sla_policies": await hash_of(K.sla_policies(workspace)),
            "allowlist": list(orjson.loads(allow)) if allow else []}


def watched(workspace: str) -> list[str]:
    """What an import plan is computed from; a change to any of them re-plans it."""
    return [K.rules(workspace), K.groups(workspace), K.sla_policies(workspace),
            K.allowlist(workspace), K.scripts(workspace)]


async def revision_numbers(p: Any, store: Store, workspace: str, plan: Any) -> tuple[list[int], list[int]]:
    """The revision number each changed rule and policy of `plan` will be written as, with room
    made for their revisions (one check of the bound for both: store/revisions.py)."""
    rules, policies = await R.number_all(p, store, workspace, [(R.RULE, plan.rules), (R.SLA, plan.policies)])
    return rules, policies


def queue_plan(pipe: Any, workspace: str, plan: Any, numbers: tuple[list[int], list[int]],
               by: Any) -> None:
    """Queue every write of `plan` (revisions and counters through store/revisions.py)."""
    R.queue_changes(pipe, workspace, R.RULE, plan.rules, numbers[0], by)
    R.queue_changes(pipe, workspace, R.SLA, plan.policies, numbers[1], by)
    for name, group, _ in plan.groups:
        if group is None:
            pipe.hdel(K.groups(workspace), name)
        else:
            pipe.hset(K.groups(workspace), name, orjson.dumps(group).decode())
    if plan.allowlist is not None:
        pipe.set(K.allowlist(workspace), orjson.dumps(plan.allowlist).decode())
