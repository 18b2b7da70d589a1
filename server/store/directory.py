"""Contacts by group, and a contact's counts: the reads behind GET /v1/contacts.

Why an index per group (keys.group_members) rather than a scan of the contacts: a group's page
reads only its members (ZRANGE of `limit` ids, one MGET), so a workspace with a million contacts
lists a ten-member group as fast as a small one. The commit (store/context_writes.py) and
PUT /v1/contacts/{id}/groups keep the index; contacts stored before it existed are added once, by
one pass over the workspace's contact index (keys.contacts), the first time a group is listed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from server import customers
from server.store import keys as K
from server.store.connect import Store
from server.store.replies import text, texts
from server.store.errors import guarded

__all__ = ["list_group_contacts", "contact_counts"]

_BACKFILLED = "\x00"   # a member of keys.contacts' companion: the group indexes are complete


async def _backfill(store: Store, workspace: str) -> None:
    marker = K.group_members(workspace, "contact", _BACKFILLED)
    if await store.redis.exists(marker):
        return
    chunk: list[str] = []

    async def flush() -> None:
        raws = await store.redis.mget([K.contact(workspace, c) for c in chunk])
        async with store.redis.pipeline(transaction=False) as p:
            for cid, raw in zip(chunk, raws, strict=True):
                if raw:
                    p.zadd(K.contacts_by_id(workspace), {cid: 0})
                for g in (orjson.loads(raw).get("groups") or []) if raw else []:
                    if isinstance(g, str):
                        p.zadd(K.group_members(workspace, "contact", g), {cid: 0})
            await p.execute()
        chunk.clear()

    async for raw_id in store.redis.sscan_iter(K.contacts(workspace), count=500):
        cid = text(raw_id)
        if cid:
            chunk.append(cid)
        if len(chunk) >= 500:
            await flush()
    if chunk:
        await flush()
    await store.redis.set(marker, "1")


@guarded
async def list_group_contacts(store: Store, workspace: str, group: str | None, limit: int,
                              offset: int) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the group's contacts (every contact when `group` is None) by id, and the next
    offset (None: the last page)."""
    await _backfill(store, workspace)
    key = (K.group_members(workspace, "contact", group) if group is not None
           else K.contacts_by_id(workspace))
    ids = texts(await store.redis.zrange(key, offset, offset + limit))
    more = len(ids) > limit
    ids = ids[:limit]
    raws = await store.redis.mget([K.contact(workspace, c) for c in ids]) if ids else []
    items = [orjson.loads(r) for r in raws if r]
    return items, (offset + limit if more else None)


@guarded
async def contact_counts(store: Store, workspace: str, contact_id: str,
                         now: datetime | None = None) -> dict[str, int]:
    """open_tickets and tickets_30d as the count hash holds them."""
    stats = await store.redis.hgetall(K.contact_stats(workspace, contact_id))
    return customers.stored_counts(stats, now or datetime.now(UTC))
