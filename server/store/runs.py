"""Run records (written by tickets.commit, expiring after Settings.run_ttl_s) and the updates
feed: reads. A run list may name a run that has expired; reads skip it."""

from __future__ import annotations

from typing import Any

import orjson

from server.store import keys as K
from server.store.replies import entries, texts
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["get_run", "list_ticket_runs", "list_rule_runs", "list_recent_runs", "outcomes",
           "read_feed", "OUTCOMES", "SCAN_CHUNK"]

OUTCOMES = ("fired", "errored", "suppressed")
SCAN_CHUNK = 100


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


def outcomes(run: dict[str, Any]) -> set[str]:
    """Which of OUTCOMES a run record shows: a rule fired (`matched`), something erred (the run,
    a rule or a script), an effect was suppressed."""
    found = set()
    if run.get("matched"):
        found.add("fired")
    if (run.get("error") or any(r.get("errors") for r in run.get("rules") or [])
            or any(sc.get("error") for sc in run.get("scripts") or [])):
        found.add("errored")
    if run.get("suppressed"):
        found.add("suppressed")
    return found


@guarded
async def list_recent_runs(store: Store, workspace: str, *, rule_id: str | None,
                           ticket_id: str | None, outcome: str | None, offset: int,
                           limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """The workspace's runs, newest first, filtered. The source list is the narrowest one the
    filters name (the ticket's 200, the rule's 200, or the workspace's runs_per_workspace), and a
    page reads that list in SCAN_CHUNK steps until it has `limit` matches or the list ends, so a
    request costs at most one pass over a capped list however rare its matches."""
    if ticket_id is not None:
        key = K.ticket_runs(workspace, ticket_id)
    elif rule_id is not None:
        key = K.rule_runs(workspace, rule_id)
    else:
        key = K.workspace_runs(workspace)
    items: list[dict[str, Any]] = []
    pos = offset
    while len(items) < limit:
        ids = texts(await store.redis.lrange(key, pos, pos + SCAN_CHUNK - 1))
        if not ids:
            return items, None
        raws = await store.redis.mget([K.run(workspace, r) for r in ids])
        for i, raw in enumerate(raws):
            if not raw:
                continue
            run = orjson.loads(raw)
            if rule_id is not None and rule_id not in [str(m) for m in run.get("matched") or []]:
                continue
            if outcome is not None and outcome not in outcomes(run):
                continue
            items.append(run)
            if len(items) == limit:
                nxt = pos + i + 1
                more = await store.redis.lrange(key, nxt, nxt)
                return items, (nxt if more else None)
        pos += len(ids)
    return items, None


@guarded
async def read_feed(store: Store, workspace: str, *, after: str | None,
                    limit: int) -> list[dict[str, Any]]:
    """Feed entries oldest first, strictly after the cursor (a stream id)."""
    start = f"({after}" if after else "-"
    rows = entries(await store.redis.xrange(K.feed(workspace), min=start, max="+", count=limit))
    return [{"cursor": entry_id, **orjson.loads(fields["d"])} for entry_id, fields in rows]
