"""A workspace's loop and flood guard limits (server/guards.py), stored as one JSON object.

  df:{ws:W}:guards     string  JSON {"send_caps": [{"count", "per"}], "generated_per_minute"};
                               absent: the defaults (10 per 10m and 25 per 1h; 20 a minute)

  df:{ws:W}:policy:rev string  counter bumped in the same MULTI as every write here (and every SLA
                               policy write): workers cache the limits by it (server/policy_cache.py)

The stored object was checked by GuardLimits.from_spec before it was written; one that no longer
passes (a later, stricter check) reads as the defaults rather than failing events.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.guards import GuardLimits, limits_from
from server.store import keys as K
from server.store.replies import json_or_none
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["get_limits", "get_spec", "put_spec", "delete_spec"]


@guarded
async def get_spec(store: Store, workspace: str) -> dict[str, Any] | None:
    return json_or_none(await store.redis.get(K.guards(workspace)))


async def get_limits(store: Store, workspace: str) -> GuardLimits:
    """The limits in force: the stored ones, else the defaults."""
    return limits_from(await get_spec(store, workspace))


@guarded
async def put_spec(store: Store, workspace: str, spec: dict[str, Any]) -> None:
    async with store.redis.pipeline(transaction=True) as p:
        p.set(K.guards(workspace), orjson.dumps(spec))
        p.incr(K.policy_rev(workspace))
        await p.execute()


@guarded
async def delete_spec(store: Store, workspace: str) -> bool:
    async with store.redis.pipeline(transaction=True) as p:
        p.delete(K.guards(workspace))
        p.incr(K.policy_rev(workspace))
        deleted, _ = await p.execute()
    return bool(deleted)
