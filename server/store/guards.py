"""A workspace's loop and flood guard limits (server/guards.py), stored as one JSON object.

  df:{ws:W}:guards     string  JSON {"send_caps": [{"count", "per"}], "generated_per_minute"};
                               absent: the defaults (10 per 10m and 25 per 1h; 20 a minute)

The stored object was checked by GuardLimits.from_spec before it was written; one that no longer
passes (a later, stricter check) reads as the defaults rather than failing events.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.guards import DEFAULT_LIMITS, GuardLimits
from server.store import keys as K
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["get_limits", "get_spec", "put_spec", "delete_spec"]


@guarded
async def get_spec(store: Store, workspace: str) -> dict[str, Any] | None:
    raw = await store.redis.get(K.guards(workspace))
    return orjson.loads(raw) if raw else None


async def get_limits(store: Store, workspace: str) -> GuardLimits:
    """The limits the worker passes to automate(): the stored ones, else the defaults."""
    spec = await get_spec(store, workspace)
    if spec is None:
        return DEFAULT_LIMITS
    limits, _ = GuardLimits.from_spec(spec)
    return limits or DEFAULT_LIMITS


@guarded
async def put_spec(store: Store, workspace: str, spec: dict[str, Any]) -> None:
    await store.redis.set(K.guards(workspace), orjson.dumps(spec))


@guarded
async def delete_spec(store: Store, workspace: str) -> bool:
    return bool(await store.redis.delete(K.guards(workspace)))
