"""Revisioned resources: rules and SLA policies, kept with immutable revisions, written one way.

  df:{ws:W}:revisions:rule:<rule id>   hash  n -> JSON {n, action, at, by: {key_id, key_name}, rule}
  df:{ws:W}:revisions:sla:<name>       hash  n -> JSON {n, action, at, by, policy}

A revision is the whole object as it stood after a change. It is written in the same MULTI/EXEC as
the change (every key is in the workspace's slot), so there is never a change without its revision
or a revision of a change that did not happen. Revision numbers per object count up from 1; an
object's stored `revision` is the number of its latest revision. Revisions stay when their object
is deleted (the delete itself is a revision with action "delete"), so a deleted rule's history
stays readable and restorable. An object stored without revisions (catalog.put_rule: the demo's
rules; older versions, whose rules had no `revision`) stands at 1: its first change is 2 and
writes its revision 1 as it stood if none is stored, since run records name it revision 1.

What a workspace's revisions may hold is bounded (Settings.max_revision_bytes, 64 MiB): without a
bound one manager key could fill the store for everyone -- a PATCH of a 64 KiB rule in a loop at
the rate limit writes ~13 MB/s of revisions, and one reorder of 1,000 rules writes a revision of
each. Every record written counts its JSON + REVISION_OVERHEAD in `revisions:bytes`, in the same
MULTI; a revision that stops being its object's latest (or whose object is deleted) is listed in
`revisions:retired` with the time. A write that would pass the bound first drops retired
revisions, oldest first, that no run record can name any more (retired more than run_ttl_s +
RETIRED_GRACE_S ago: a run names the revision its rule had when its pass loaded the rules, and
expires run_ttl_s after it was written); if that is not room enough it is refused whole, 422
too_many_revision_bytes naming the limit -- except deletes and disables, which always go through
(a workspace can always stop a rule). Under the bound nothing is dropped.

Each resource also has a workspace counter that the same MULTI bumps once per write: `rules:rev`
for rules, `policy:rev` for SLA policies (server/guards.py's limits bump it too, store/guards.py).
Workers cache what they compile from a resource by that counter (server/rulecache.py,
server/policy_cache.py), so `queue_changes` is the only code that writes a resource's hash: a
writer cannot change the objects and forget the counter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

import time

import orjson
from redis.exceptions import WatchError

from server.errors import Conflict, Unprocessable
from server.store import keys as K
from server.store.catalog import now_iso
from server.store.connect import Store
from server.store.encoding import dumps
from server.store.errors import guarded
from server.store.replies import json_or_none, text_map
from server.store.rule_snapshot import Rules, advance, read_rules

__all__ = ["Resource", "RULE", "SLA", "Change", "TRANSACT_TRIES", "lost_races", "transact", "number", "numbers", "estimate",
           "number_all", "queue_changes", "read_all", "sizes_of", "write", "page", "get", "count", "revision",
           "REVISION_OVERHEAD", "RETIRED_GRACE_S", "FREE_ACTIONS"]

REVISION_OVERHEAD = 64          # bytes counted a revision beyond its JSON: its field, its retired entry
RETIRED_GRACE_S = 24 * 3600     # past run_ttl_s before a retired revision may go (a pass that loaded
                                # the rules before a change may commit its run just after it)
FREE_ACTIONS = frozenset({"delete", "disable"})   # go through past max_revision_bytes
_ESTIMATE_ROOM = 512            # a record's bytes beyond its object's JSON, at most (n, at, by, ...)
_DROP_BATCH = 512               # retired revisions looked at per read when making room
_DROP_READS = 8                 # ... and reads of them per write at most

T = TypeVar("T")
Writer = Callable[[Any], None]


@dataclass(frozen=True)
class Resource:
    """A kind of object kept with revisions: where the objects live, what a revision record calls
    the object, the workspace counter every change bumps, and the per-object keys a delete drops."""

    kind: str                                   # the revisions key's segment
    field: str                                  # the object's name in a revision record
    objects: Callable[[str], str]               # workspace -> hash of id/name -> JSON object
    counter: Callable[[str], str]               # workspace -> counter bumped by every write
    dropped: tuple[Callable[[str, str], str], ...] = ()  # (workspace, id) -> keys a delete drops


RULE = Resource("rule", "rule", K.rules, K.rules_rev, (K.rule_runs, K.rule_stats))
SLA = Resource("sla", "policy", K.sla_policies, K.policy_rev)


@guarded
async def transact(store: Store, watch: list[str],
                   build: Callable[[Any], Awaitable[tuple[T, Writer | None]]], *,
                   write_in: Executor | None = None) -> T:
    """WATCH `watch`, let `build(pipe)` read through the pipe (immediate mode) and return
    (result, writer); the writer queues the writes, which EXEC atomically. A concurrent change to a
    watched key runs `build` again (arq's "lost the race"). An exception from `build` (a 4xx)
    leaves everything untouched. A writer of None means nothing to write.

    At most TRANSACT_TRIES tries, then a 409: a workspace writing its rules in a loop made a
    concurrent write of its own go round without end (each try a few round trips on the API's
    loop, and a store connection held).

    `write_in`: an executor the writer runs in (it only queues commands on the pipeline, which
    nothing else touches meanwhile): an import's writer serializes hundreds of rules and their
    revision records, ~25 ms of Python that on the loop every workspace's requests waited out."""
    async with store.redis.pipeline(transaction=True) as p:
        for _ in range(TRANSACT_TRIES):
            try:
                await p.watch(*watch)
                result, writer = await build(p)
                if writer is None:
                    await p.reset()
                    return result
                p.multi()
                if write_in is None:
                    writer(p)
                else:
                    await asyncio.get_running_loop().run_in_executor(write_in, writer, p)
                await p.execute()
                return result
            except WatchError:
                continue
        raise lost_races()


TRANSACT_TRIES = 32   # lost races of one API write before it is a 409 (transact and its likes)


def lost_races() -> Conflict:
    """The 409 of an API write that lost TRANSACT_TRIES races in a row: without a bound, another
    writer that kept changing what it watched kept it going round on the API's loop."""
    return Conflict(f"What this change reads was changed by other writes {TRANSACT_TRIES} times "
                    "in a row while it was being made (TRANSACT_TRIES); nothing was changed. "
                    "Try again.", code="conflict", headers={"Retry-After": "1"})


class Change:
    """One object's change: `new` is its state after (None: deleted), `old` before (None: new)."""

    __slots__ = ("ident", "new", "old", "action", "extra", "n", "size", "drop", "estimated")

    def __init__(self, ident: str, new: dict[str, Any] | None, old: dict[str, Any] | None,
                 action: str, extra: dict[str, Any] | None = None) -> None:
        self.ident, self.new, self.old, self.action, self.extra = ident, new, old, action, extra
        self.n = 0  # the revision number, once written
        self.size = 0  # the bytes of JSON `new` was written as, once written
        # retired revisions this change's write drops to make room: (member, kind, ident, n, bytes)
        self.drop: list[tuple[Any, str, str, int, int]] = []
        self.estimated: int | None = None   # (`estimate`'s, once asked)


async def read_all(p: Any, workspace: str, res: Resource) -> dict[str, dict[str, Any]]:
    """Every object of the resource by id/name, read through `p` (a client, or a pipeline in WATCH
    mode)."""
    return {k: orjson.loads(v) for k, v in text_map(await p.hgetall(res.objects(workspace))).items()}


def sizes_of(current: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Each object's stored JSON size, as `write` read them (rules only: store/rule_snapshot.py)."""
    return current.sizes if isinstance(current, Rules) else {}


def _revision_of(obj: dict[str, Any]) -> int:
    """The revision an object stands at: its `revision`, or 1 for one stored without (by older
    versions: what the rule cache and the run records count it as, server/rulecache.py)."""
    try:
        return max(1, int(obj.get("revision", 1)))
    except (TypeError, ValueError):
        return 1


async def number(pipe: Any, workspace: str, res: Resource, change: Change) -> int:
    """Revision number of `change`: the old object's counter + 1, or (a new object) after whatever
    revisions its id or name left behind (a deleted rule recreated under its id continues its
    history). An old object stored without `revision` stands at 1, so its first change is 2: it
    was numbered after the revisions it left (none: 1), and the run records of the events it
    matched, which name it revision 1, were read back with the new definition."""
    if change.old is not None and "revision" in change.old:
        return _revision_of(change.old) + 1
    # the highest number held, not how many: retired revisions may have been dropped (the
    # latest of an object never is before its retirement, so the highest is still there)
    held = max((int(k) for k in await pipe.hkeys(K.revisions(workspace, res.kind, change.ident))),
               default=0)   # (the hash's fields are revision numbers only, as `page` reads them)
    return held + 1 if change.old is None else max(held, _revision_of(change.old)) + 1


async def numbers(pipe: Any, store: Store, workspace: str, res: Resource,
                  changes: Sequence[Change]) -> list[int]:
    """The revision number of each change (`number`), after making room for their revisions
    under Settings.max_revision_bytes (`number_all`)."""
    return (await number_all(pipe, store, workspace, [(res, changes)]))[0]


async def number_all(pipe: Any, store: Store, workspace: str,
                     groups: Sequence[tuple[Resource, Sequence[Change]]]) -> list[list[int]]:
    """`numbers` for changes of several resources written in one MULTI (an import's rules and
    policies): one check of the bound for all of them. Read through `pipe` under WATCH (the
    byte counter and the retired list are watched here), so two writes cannot both take the
    last room; raises 422 too_many_revision_bytes when there is not room enough."""
    out = [[await number(pipe, workspace, res, ch) for ch in changes] for res, changes in groups]
    every = [ch for _, changes in groups for ch in changes]
    if every:
        every[0].drop = await _make_room(pipe, store, workspace, every)
    return out


def estimate(change: Change) -> int:
    """At least the bytes `change`'s revision record will count (its object's JSON + the rest),
    worked out once (an import works it out in its planning thread, off the loop)."""
    if change.estimated is None:
        body = change.new if change.new is not None else change.old
        change.estimated = ((len(orjson.dumps(body)) if body is not None else 0)
                            + _ESTIMATE_ROOM + REVISION_OVERHEAD)
    return change.estimated


async def _make_room(pipe: Any, store: Store, workspace: str,
                     changes: Sequence[Change]) -> list[tuple[Any, str, str, int, int]]:
    """The retired revisions to drop so that `changes`' revisions fit the workspace's bound, or
    422 when the droppable ones are not enough (unless every change is a delete or disable)."""
    limit = store.settings.max_revision_bytes
    held_key, retired_key = K.revision_bytes(workspace), K.revisions_retired(workspace)
    await pipe.watch(held_key, retired_key)
    held = int(await pipe.get(held_key) or 0)
    adding = sum(estimate(ch) for ch in changes)
    over = held + adding - limit
    if over <= 0:
        return []
    cutoff_ms = int((time.time() - store.settings.run_ttl_s - RETIRED_GRACE_S) * 1000)
    drop: list[tuple[Any, str, str, int, int]] = []
    freed, start = 0, 0
    for _ in range(_DROP_READS):
        members = await pipe.zrangebyscore(retired_key, "-inf", cutoff_ms, start=start, num=_DROP_BATCH)
        if not members:
            break
        start += len(members)
        named: list[tuple[Any, str, str, int]] = []
        for m in members:
            try:
                kind, ident, n = orjson.loads(m)
                named.append((m, str(kind), str(ident), int(n)))
            except (ValueError, TypeError):
                named.append((m, "", "", 0))   # not ours: dropped from the list, nothing else
        async with store.redis.pipeline(transaction=False) as q:   # (watched: a change to any
            for _, kind, ident, n in named:                         # of them moves the list)
                q.hstrlen(K.revisions(workspace, kind or "-", ident), str(n))
            sizes = await q.execute()
        for (m, kind, ident, n), size in zip(named, sizes, strict=True):
            counted = int(size) + REVISION_OVERHEAD if int(size) else 0
            drop.append((m, kind, ident, n, counted))
            freed += counted
            if freed >= over:
                return drop
    if all(ch.action in FREE_ACTIONS for ch in changes):
        return drop
    raise Unprocessable(
        f"The workspace's rule and SLA policy revisions hold {held} bytes and this change would "
        f"add about {adding}, past the limit of {limit} bytes (DESKFLOW_MAX_REVISION_BYTES). "
        f"Revisions replaced more than {(store.settings.run_ttl_s + RETIRED_GRACE_S) // 86400} "
        "days ago (the run retention and a day) are dropped to make room, and there are not "
        "enough of them yet; nothing was changed. Deleting and disabling rules still work.",
        code="too_many_revision_bytes",
        details=[{"path": "", "reason": f"revisions at most {limit} bytes a workspace",
                  "limit": limit, "bytes": held, "adding": adding}])


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _queue_one(pipe: Any, workspace: str, res: Resource, change: Change, n: int,
               by: dict[str, Any], batch: _Batch) -> None:
    change.n = n
    if change.old is not None and _revision_of(change.old) == 1:
        # the first change of an object that may have been stored without a revision record
        # (catalog.put_rule: the demo's rules, benchmarks, older versions): its revision 1 is
        # kept as it stood, if missing (HSETNX), so what ran under it still reads as it was
        # (server/store/run_rules.py expands run records with each rule at its revision)
        old = {**change.old, "revision": 1}
        first = {"n": 1, "action": "create", "at": old.get("created_at") or old.get("updated_at") or now_iso(),
                 "by": {"key_id": None, "key_name": None}, res.field: old}
        pipe.hsetnx(K.revisions(workspace, res.kind, change.ident), "1", dumps(first))
    if change.new is None:
        pipe.hdel(res.objects(workspace), change.ident)
        for key in res.dropped:
            pipe.delete(key(workspace, change.ident))
        content = {**(change.old or {}), "revision": n}
    else:
        change.new["revision"] = n
        text = dumps(change.new)
        change.size = _utf8_len(text)
        batch.objects[change.ident] = text
        content = change.new
    record = {"n": n, "action": change.action, "at": now_iso(), "by": by, **(change.extra or {}),
              res.field: content}
    text = dumps(record)
    pipe.hset(K.revisions(workspace, res.kind, change.ident), str(n), text)
    batch.added += _utf8_len(text) + REVISION_OVERHEAD
    at_ms = int(time.time() * 1000)
    if n > 1:   # the revision before is no longer the latest
        batch.retired[dumps([res.kind, change.ident, n - 1])] = at_ms
    if change.new is None:   # nothing runs under a deleted object's last revision
        batch.retired[dumps([res.kind, change.ident, n])] = at_ms


class _Batch:
    """What queue_changes writes once for all its changes: the objects' new JSON (one HSET), the
    revision bytes added (one INCRBY), the revisions retired (one ZADD). Why: an import of 250
    rules queued ~1,500 commands, and the loop parses their replies in one go after EXEC (~25 ms
    every workspace's requests waited out, tests/server/test_redteam18.py); ~560 now."""

    __slots__ = ("objects", "added", "retired")

    def __init__(self) -> None:
        self.objects: dict[str, str] = {}
        self.added = 0
        self.retired: dict[str, int] = {}


def queue_changes(pipe: Any, workspace: str, res: Resource, changes: Sequence[Change],
                  numbers: Sequence[int], by: dict[str, Any]) -> None:
    """Queue, in a MULTI pipeline, each change with its revision `numbers[i]` (setting `revision`
    on the new object), and one bump of the resource's counter when anything changes."""
    batch = _Batch()
    for change, n in zip(changes, numbers, strict=True):
        _queue_one(pipe, workspace, res, change, n, by, batch)
    if batch.objects:
        pipe.hset(res.objects(workspace), mapping=batch.objects)
    if batch.added:
        pipe.incrby(K.revision_bytes(workspace), batch.added)
    if batch.retired:
        pipe.zadd(K.revisions_retired(workspace), batch.retired)
    freed = 0
    for change in changes:
        for member, kind, ident, old_n, counted in change.drop:   # (number_all's room)
            if kind:
                pipe.hdel(K.revisions(workspace, kind, ident), str(old_n))
            pipe.zrem(K.revisions_retired(workspace), member)
            freed += counted
    if freed:
        pipe.decrby(K.revision_bytes(workspace), freed)
    if changes:
        pipe.incr(res.counter(workspace))


Check = Callable[[Any, dict[str, dict[str, Any]], list[Change]], Awaitable[None]]


async def write(store: Store, workspace: str, res: Resource, by: dict[str, Any],
                compute: Callable[[dict[str, dict[str, Any]]], list[Change]], *,
                check: Check | None = None, watch: Sequence[str] = (),
                also: Callable[[Any, list[Change]], None] | None = None) -> list[Change]:
    """Read every object under WATCH (with `watch`), `compute(current by id/name)` the changes,
    `check(pipe, current, changes)` them against what else it reads through the pipe (both may
    raise a 4xx: nothing is written), then write them with their revisions and the counter bump in
    one MULTI/EXEC. `also(pipe, changes)` queues more writes in the same transaction (the audit
    entries). Rules are read as kept at their revision when it has not moved
    (store/rule_snapshot.py), and kept as this write leaves them."""
    read: list[Rules] = []

    async def build(p: Any) -> tuple[list[Change], Writer | None]:
        current: dict[str, dict[str, Any]]
        if res is RULE:
            read[:] = [(await read_rules(store, workspace, p)).copy_rules()]
            current = read[0]
        else:
            current = await read_all(p, workspace, res)
        changes = compute(current)
        if not changes:
            return changes, None
        if check is not None:
            await check(p, current, changes)
        numbered = await numbers(p, store, workspace, res, changes)

        def writer(pipe: Any) -> None:
            queue_changes(pipe, workspace, res, changes, numbered, by)
            if also is not None:
                also(pipe, changes)

        return changes, writer

    changes = await transact(store, [res.objects(workspace), res.counter(workspace), *watch], build)
    if changes and read:   # (EXEC'd: the counter moved once, from the revision read)
        advance(store, workspace, read[0], changes)
    return changes


# -- reading revisions ----------------------------------------------------------------------------


@guarded
async def count(store: Store, workspace: str, res: Resource, ident: str) -> int:
    return int(await store.redis.hlen(K.revisions(workspace, res.kind, ident)))


@guarded
async def page(store: Store, workspace: str, res: Resource, ident: str, offset: int, limit: int
               ) -> tuple[list[dict[str, Any]], bool]:
    """(revisions newest first from `offset`, whether more follow)."""
    key = K.revisions(workspace, res.kind, ident)
    numbers = sorted((int(n) for n in await store.redis.hkeys(key)), reverse=True)
    chosen = numbers[offset:offset + limit]
    if not chosen:
        return [], False
    raw = await store.redis.hmget(key, [str(n) for n in chosen])
    return [orjson.loads(r) for r in raw if r], offset + limit < len(numbers)


@guarded
async def get(store: Store, workspace: str, res: Resource, ident: str, n: int
              ) -> dict[str, Any] | None:
    return json_or_none(await store.redis.hget(K.revisions(workspace, res.kind, ident), str(n)))


@guarded
async def revision(store: Store, workspace: str, res: Resource) -> int:
    """The resource's workspace counter (0: never bumped)."""
    return int(await store.redis.get(res.counter(workspace)) or 0)
