"""A workspace's settings (server/api/workspace_settings.py), stored as one JSON object.

  df:{ws:W}:settings   string  JSON {"strict_events": bool}; absent: every setting at its default
"""

from __future__ import annotations

from typing import Any

import orjson

from server.store import keys as K
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["get_stored", "put"]


@guarded
async def get_stored(store: Store, workspace: str) -> dict[str, Any] | None:
    raw = await store.redis.get(K.workspace_settings(workspace))
    value = orjson.loads(raw) if raw else None
    return value if isinstance(value, dict) else None


@guarded
async def put(store: Store, workspace: str, settings: dict[str, Any]) -> None:
    await store.redis.set(K.workspace_settings(workspace), orjson.dumps(settings))
