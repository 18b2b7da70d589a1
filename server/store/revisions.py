"""Immutable revisions of rules and SLA policies, and the WATCH/MULTI helper their writers share.

  df:{ws:W}:revisions:rule:<rule id>   hash  n -> JSON {n, action, at, by: {key_id, key_name}, rule}
  df:{ws:W}:revisions:sla:<name>       hash  n -> JSON {n, action, at, by, policy}

A revision is the whole object as it stood after a change. It is written in the same MULTI/EXEC as
the change (every key is in the workspace's slot), so there is never a change without its revision
or a revision of a change that did not happen. Revision numbers per object count up from 1; a rule's
stored `revision` is the number of its latest revision. Revisions stay when their rule or policy is
deleted (the delete itself is a revision with action "delete"), so a deleted rule's history stays
readable and restorable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from redis.exceptions import WatchError

from server.store import keys as K
from server.store.catalog import now_iso
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["RULE", "SLA", "Change", "transact", "next_number", "number", "queue", "queue_change",
           "write", "page", "get", "count"]

RULE = "rule"
SLA = "sla"
_FIELD = {RULE: "rule", SLA: "policy"}

T = TypeVar("T")
Writer = Callable[[Any], None]


@guarded
async def transact(store: Store, watch: list[str],
                   build: Callable[[Any], Awaitable[tuple[T, Writer | None]]]) -> T:
    """WATCH `watch`, let `build(pipe)` read through the pipe (immediate mode) and return
    (result, writer); the writer queues the writes, which EXEC atomically. A concurrent change to a
    watched key runs `build` again (arq's "lost the race"). An exception from `build` (a 4xx)
    leaves everything untouched. A writer of None means nothing to write."""
    async with store.redis.pipeline(transaction=True) as p:
        while True:
            try:
                await p.watch(*watch)
                result, writer = await build(p)
                if writer is None:
                    await p.reset()
                    return result
                p.multi()
                writer(p)
                await p.execute()
                return result
            except WatchError:
                continue


async def next_number(pipe: Any, workspace: str, kind: str, ident: str, current: int = 0) -> int:
    """The next revision number of an object: after its stored counter and after any revision it
    left behind (a deleted rule recreated under its id continues its history)."""
    existing = int(await pipe.hlen(K.revisions(workspace, kind, ident)))
    return max(current, existing) + 1


def queue(pipe: Any, workspace: str, kind: str, ident: str, n: int, action: str,
          by: dict[str, Any], content: dict[str, Any], extra: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    """Queue revision `n` in a MULTI pipeline; returns the record."""
    record = {"n": n, "action": action, "at": now_iso(), "by": by, **(extra or {}),
              _FIELD[kind]: content}
    pipe.hset(K.revisions(workspace, kind, ident), str(n), orjson.dumps(record).decode())
    return record


@guarded
async def count(store: Store, workspace: str, kind: str, ident: str) -> int:
    return int(await store.redis.hlen(K.revisions(workspace, kind, ident)))


@guarded
async def page(store: Store, workspace: str, kind: str, ident: str, offset: int, limit: int
               ) -> tuple[list[dict[str, Any]], bool]:
    """(revisions newest first from `offset`, whether more follow)."""
    key = K.revisions(workspace, kind, ident)
    numbers = sorted((int(n) for n in await store.redis.hkeys(key)), reverse=True)
    chosen = numbers[offset:offset + limit]
    if not chosen:
        return [], False
    raw = await store.redis.hmget(key, [str(n) for n in chosen])
    return [orjson.loads(r) for r in raw if r], offset + limit < len(numbers)


@guarded
async def get(store: Store, workspace: str, kind: str, ident: str, n: int) -> dict[str, Any] | None:
    raw = await store.redis.hget(K.revisions(workspace, kind, ident), str(n))
    return orjson.loads(raw) if raw else None


# -- writing rules and SLA policies with their revisions ------------------------------------------


class Change:
    """One object's change: `new` is its state after (None: deleted), `old` before (None: new)."""

    __slots__ = ("ident", "new", "old", "action", "extra", "n")

    def __init__(self, ident: str, new: dict[str, Any] | None, old: dict[str, Any] | None,
                 action: str, extra: dict[str, Any] | None = None) -> None:
        self.ident, self.new, self.old, self.action, self.extra = ident, new, old, action, extra
        self.n = 0  # the revision number, once written


async def number(pipe: Any, workspace: str, kind: str, change: Change) -> int:
    """Revision number of `change`: the old object's counter + 1, or (a new object) after whatever
    revisions its id or name left behind."""
    if change.old is not None and "revision" in change.old:
        return int(change.old["revision"]) + 1
    return await next_number(pipe, workspace, kind, change.ident)


def queue_change(pipe: Any, workspace: str, kind: str, change: Change, n: int,
                 by: dict[str, Any]) -> None:
    """Queue the write of `change` and its revision `n` (sets `revision` on the new object)."""
    change.n = n
    hkey = K.rules(workspace) if kind == RULE else K.sla_policies(workspace)
    if change.new is None:
        pipe.hdel(hkey, change.ident)
        if kind == RULE:
            pipe.delete(K.rule_runs(workspace, change.ident))
            pipe.delete(K.rule_stats(workspace, change.ident))
        content = {**(change.old or {}), "revision": n}
    else:
        change.new["revision"] = n
        pipe.hset(hkey, change.ident, orjson.dumps(change.new).decode())
        content = change.new
    queue(pipe, workspace, kind, change.ident, n, change.action, by, content, change.extra)


async def write(store: Store, workspace: str, kind: str, by: dict[str, Any],
                compute: Callable[[dict[str, dict[str, Any]]], list[Change]],
                also: Callable[[Any, list[Change]], None] | None = None) -> list[Change]:
    """Read every rule (or policy) under WATCH, `compute(current by id/name)` the changes (it may
    raise a 4xx: nothing is written), write them with their revisions in one MULTI/EXEC. Rule
    changes bump the rules revision (the worker's cache key). `also(pipe, changes)` queues more
    writes in the same transaction (the audit entries)."""
    hkey = K.rules(workspace) if kind == RULE else K.sla_policies(workspace)

    async def build(p: Any) -> tuple[list[Change], Writer | None]:
        current = {(k.decode() if isinstance(k, bytes) else k): orjson.loads(v)
                   for k, v in (await p.hgetall(hkey)).items()}
        changes = compute(current)
        if not changes:
            return changes, None
        numbers = [await number(p, workspace, kind, ch) for ch in changes]

        def writer(pipe: Any) -> None:
            for ch, n in zip(changes, numbers, strict=True):
                queue_change(pipe, workspace, kind, ch, n, by)
            if kind == RULE:
                pipe.incr(K.rules_rev(workspace))
            if also is not None:
                also(pipe, changes)

        return changes, writer

    return await transact(store, [hkey], build)
