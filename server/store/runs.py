"""Run records (written by tickets.commit, expiring after Settings.run_ttl_s) and the updates
feed: reads. A run list may name a run that has expired; reads skip it."""

from __future__ import annotations

from typing import Any

import orjson

from server.store import keys as K
from server.store.replies import entries, texts
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["get_run", "list_ticket_runs", "list_rule_runs", "read_feed"]


@guarded
async def get_run(store: Store, workspace: str, run_id: str) -> dict[str, Any] | None:
    raw = await store.redis.get(K.run(workspace, run_id))
    return orjson.loads(raw) if raw else None


@guarded
async def list_ticket_runs(store: Store, workspace: str, ticket_id: str, *, offset: int,
                           limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """Runs of a ticket, newest first."""
    return await _runs_of(store, workspace, K.ticket_runs(workspace, ticket_id), offset, limit)


@guarded
async def list_rule_runs(store: Store, workspace: str, rule_id: str, *, offset: int,
                         limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """Runs in which a rule fired, newest first."""
    return await _runs_of(store, workspace, K.rule_runs(workspace, rule_id), offset, limit)


async def _runs_of(store: Store, workspace: str, key: str, offset: int,
                   limit: int) -> tuple[list[dict[str, Any]], int | None]:
    ids = texts(await store.redis.lrange(key, offset, offset + limit))
    more = len(ids) > limit
    ids = ids[:limit]
    raws = await store.redis.mget([K.run(workspace, r) for r in ids]) if ids else []
    return [orjson.loads(r) for r in raws if r], (offset + limit if more else None)


@guarded
async def read_feed(store: Store, workspace: str, *, after: str | None,
                    limit: int) -> list[dict[str, Any]]:
    """Feed entries oldest first, strictly after the cursor (a stream id)."""
    start = f"({after}" if after else "-"
    rows = entries(await store.redis.xrange(K.feed(workspace), min=start, max="+", count=limit))
    return [{"cursor": entry_id, **orjson.loads(fields["d"])} for entry_id, fields in rows]
