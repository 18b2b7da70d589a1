"""SLA policies of a workspace, in order (the first whose conditions hold applies).

  df:{ws:W}:sla-policies     hash  name -> JSON policy, with `position`: 1..n, dense (every
                                   write through server/api/sla.py renumbers), so a position is
                                   the policy's place and an export -> plan compares like with like

  df:{ws:W}:policy:rev       string counter; every write of the policies (these, and those with
                                   revisions in store/revisions.py) and of the guard limits bumps
                                   it in the same MULTI: workers cache the compiled policies by it
                                   (server/policy_cache.py)
"""

from __future__ import annotations

from typing import Any

import orjson

from server.store import keys as K
from server.store.replies import json_or_none
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["policy_order", "list_policies", "get_policy", "put_policy", "delete_policy", "BOOKKEEPING", "definition"]

# Keys the service keeps on a stored policy beside what the policy says.
BOOKKEEPING = ("created_at", "updated_at", "position", "revision")


def definition(policy: dict[str, Any]) -> dict[str, Any]:
    """What a stored policy says (without position, timestamps, revision): what compile_policy
    takes and what revisions compare."""
    return {k: v for k, v in policy.items() if k not in BOOKKEEPING}


def policy_order(policy: dict[str, Any]) -> tuple[Any, ...]:
    """The order policies are tried in: position, then name (the one definition of it: the
    worker, the API and the export all sort with this)."""
    return (policy.get("position", 0), policy["name"])


@guarded
async def list_policies(store: Store, workspace: str) -> list[dict[str, Any]]:
    """The policies in the order they are tried (the first whose conditions hold applies)."""
    raw = await store.redis.hgetall(K.sla_policies(workspace))
    return sorted((orjson.loads(v) for v in raw.values()), key=policy_order)


@guarded
async def get_policy(store: Store, workspace: str, name: str) -> dict[str, Any] | None:
    return json_or_none(await store.redis.hget(K.sla_policies(workspace), name))


@guarded
async def put_policy(store: Store, workspace: str, policy: dict[str, Any]) -> None:
    """Store a policy as it is, without a revision (seeding, tests); bumps the policy revision."""
    async with store.redis.pipeline(transaction=True) as p:
        p.hset(K.sla_policies(workspace), policy["name"], orjson.dumps(policy).decode())
        p.incr(K.policy_rev(workspace))
        await p.execute()


@guarded
async def delete_policy(store: Store, workspace: str, name: str) -> bool:
    """Remove a policy without a revision; bumps the policy revision."""
    async with store.redis.pipeline(transaction=True) as p:
        p.hdel(K.sla_policies(workspace), name)
        p.incr(K.policy_rev(workspace))
        deleted, _ = await p.execute()
    return bool(deleted)
