"""Contacts by group, and a contact's counts: the reads behind GET /v1/contacts.

Why an index per group (keys.group_members) rather than a scan of the contacts: a group's page
reads only its members (ZRANGE of `limit` ids, one MGET), so a workspace with a million contacts
lists a ten-member group as fast as a small one. The commit (store/context_writes.py) and
PUT /v1/contacts/{id}/groups keep the index on every write.

Contacts stored before the index existed are indexed by a one-time build (`IndexBuilds`), in
steps of BUILD_STEP contacts: each step is one SSCAN of keys.contacts from the saved cursor and
one MULTI/EXEC watched on those contacts (a commit changing one of them meanwhile makes the step
read again, so the build never writes an index entry a commit has since undone). The first
listing of a workspace runs up to INLINE_STEPS steps in the request (a small workspace is done
then); a bigger one answers 503 `index_building` (Retry-After) while a background task in the
process runs the rest, pausing PAUSE_RATIO times as long as each step took, so a workspace with a
million contacts costs the others at most one short step at a time, never one request's unbounded
scan. A lease (keys.index_build_lease) keeps one process at a time on a workspace's build; the
cursor is in the store, so another process continues a build whose process died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import WatchError

from server import customers
from server.store import keys as K
from server.store.connect import Store
from server.store.replies import text, text_map, texts
from server.store.errors import StoreUnavailable, guarded

__all__ = ["BUILD_STEP", "IndexBuilds", "build_step", "build_progress", "list_group_contacts",
           "contact_counts"]

log = logging.getLogger("deskflow.directory")

BUILD_STEP = 100        # contacts indexed per step (one SSCAN COUNT, one watched MULTI/EXEC)
LEASE_MS = 15_000       # a builder renews its lease every step; a dead one's lapses after this
INLINE_STEPS = 8        # steps the first listing runs itself: a workspace of up to ~800 old
                        # contacts is indexed within that request
PAUSE_RATIO = 3         # the background build sleeps this many times as long as each step took
_STEP_TRIES = 5         # a step that loses the race this often is tried again on the next one


@guarded
async def build_progress(store: Store, workspace: str) -> dict[str, Any]:
    """{"done": bool, "indexed": contacts indexed so far}."""
    state = text_map(await store.redis.hgetall(K.index_build(workspace)))
    return {"done": state.get("done") == "1", "indexed": int(state.get("indexed") or 0)}


@guarded
async def build_step(store: Store, workspace: str, token: str, step: int = BUILD_STEP) -> bool:
    """Index the next `step` contacts of the workspace's contact set; True once the build is
    complete. Only the holder of the build lease (`token`) writes: a step whose lease was lost
    writes nothing."""
    state_key, lease = K.index_build(workspace), K.index_build_lease(workspace)
    for _ in range(_STEP_TRIES):
        state = text_map(await store.redis.hgetall(state_key))
        if state.get("done") == "1":
            return True
        cursor = int(state.get("cursor") or 0)
        next_cursor, raw_ids = await store.redis.sscan(K.contacts(workspace), cursor, count=step)
        ids = [c for c in (text(r) for r in raw_ids) if c]   # "" is keys.contacts' own marker
        keys = [K.contact(workspace, c) for c in ids]
        async with store.redis.pipeline(transaction=True) as p:
            try:
                await p.watch(lease, state_key, *keys)
                if await p.get(lease) != token:
                    return False
                if text_map(await p.hgetall(state_key)) != state:
                    continue   # another builder moved on (a lapsed lease)
                raws = await p.mget(keys) if keys else []
                members: dict[str, dict[str, int]] = {}   # index key -> {contact id: 0}
                for cid, raw in zip(ids, raws, strict=True):
                    if not raw:
                        continue
                    members.setdefault(K.contacts_by_id(workspace), {})[cid] = 0
                    for g in orjson.loads(raw).get("groups") or []:
                        if isinstance(g, str):
                            members.setdefault(K.group_members(workspace, "contact", g), {})[cid] = 0
                p.multi()
                for key, mapping in members.items():   # one ZADD per index, not per contact
                    p.zadd(key, mapping)
                p.hset(state_key, mapping={"cursor": int(next_cursor),
                                           "indexed": int(state.get("indexed") or 0) + len(ids)})
                if int(next_cursor) == 0:
                    p.hset(state_key, "done", "1")
                p.pexpire(lease, LEASE_MS)
                await p.execute()
                return int(next_cursor) == 0
            except WatchError:   # a commit or PUT changed one of them: read the step again
                continue
    return False


class IndexBuilds:
    """The index builds this process runs, one background task per workspace (opened in the app's
    lifespan, closed with it)."""

    def __init__(self, store: Store, *, step: int = BUILD_STEP) -> None:
        self.store = store
        self.step = step
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._done: set[str] = set()   # workspaces whose build this process saw complete

    async def ready(self, workspace: str) -> bool:
        """Whether the workspace's contact indexes are complete; when not, up to INLINE_STEPS
        steps now (a small workspace is then complete) and the rest in the background."""
        if workspace in self._done:
            return True
        if (await build_progress(self.store, workspace))["done"]:
            self._done.add(workspace)
            return True
        if workspace in self._tasks:
            return False
        token = secrets.token_hex(8)
        if not await self.store.redis.set(K.index_build_lease(workspace), token, nx=True,
                                          px=LEASE_MS):
            return False   # another process is building it
        for _ in range(INLINE_STEPS):
            if await build_step(self.store, workspace, token, self.step):
                self._done.add(workspace)
                await self._release(workspace, token)
                return True
        task = asyncio.create_task(self._run(workspace, token), name=f"index-build-{workspace}")
        self._tasks[workspace] = task
        task.add_done_callback(lambda _t: self._tasks.pop(workspace, None))
        return False

    async def _run(self, workspace: str, token: str) -> None:
        try:
            while True:
                started = time.perf_counter()
                if await build_step(self.store, workspace, token, self.step):
                    self._done.add(workspace)
                    return
                if await self.store.redis.get(K.index_build_lease(workspace)) != token:
                    return   # lost the lease (this process stalled past LEASE_MS): another builds
                # pause PAUSE_RATIO times as long as the step took: the build takes at most a
                # quarter of the loop and of the store, however loaded the machine is
                await asyncio.sleep(max(0.002, PAUSE_RATIO * (time.perf_counter() - started)))
        except StoreUnavailable as exc:   # the next listing starts it again from the cursor
            log.warning("contact index build of %s paused: %s", workspace, exc)
        finally:
            with contextlib.suppress(Exception):
                await self._release(workspace, token)

    async def _release(self, workspace: str, token: str) -> None:
        key = K.index_build_lease(workspace)
        async with self.store.redis.pipeline(transaction=True) as p:
            with contextlib.suppress(WatchError):
                await p.watch(key)
                if await p.get(key) == token:
                    p.multi()
                    p.delete(key)
                    await p.execute()

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@guarded
async def list_group_contacts(store: Store, workspace: str, group: str | None, limit: int,
                              offset: int) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the group's contacts (every contact when `group` is None) by id, and the next
    offset (None: the last page). The caller checks the indexes are complete first
    (IndexBuilds.ready)."""
    key = (K.group_members(workspace, "contact", group) if group is not None
           else K.contacts_by_id(workspace))
    return await indexed_page(store, key, lambda c: K.contact(workspace, c), offset, limit)


async def indexed_page(store: Store, index: str, record: Callable[[str], str], offset: int, limit: int
                       ) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the records a sorted-set index names (contacts, companies: by id or by group),
    and the next offset (None: the last page). One ZRANGE of limit + 1 ids and one MGET of
    `record(id)` keys; an id whose record is gone is left out."""
    ids = texts(await store.redis.zrange(index, offset, offset + limit))
    more = len(ids) > limit
    ids = ids[:limit]
    raws = await store.redis.mget([record(i) for i in ids]) if ids else []
    return [orjson.loads(r) for r in raws if r], (offset + limit if more else None)


@guarded
async def contact_counts(store: Store, workspace: str, contact_id: str,
                         now: datetime | None = None) -> dict[str, int]:
    """open_tickets and tickets_30d as the count hash holds them."""
    stats = await store.redis.hgetall(K.contact_stats(workspace, contact_id))
    return customers.stored_counts(stats, now or datetime.now(UTC))
