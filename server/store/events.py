"""The event streams: append (ingest, idempotent), read/claim/ack (workers), partition leases.

Idempotency without Lua or cross-slot transactions: ingest XADDs the event to its ticket's
partition stream with a random token, then SET NX the workspace's marker for the event id with
that token (both in one pipeline, in that order). The marker decides which stream copy is THE
event: if the SET NX loses to an earlier marker naming another copy, this copy is a duplicate
(XDELed, and skipped by workers anyway). A worker that meets an entry whose marker is missing
(ingest died between the two steps, or a generated event written without one) writes the marker
itself in its apply transaction, so the event is processed once either way. 202 is answered only
after both writes succeeded.
"""

from __future__ import annotations

from typing import Any

import secrets

import orjson
from redis.typing import KeyT, StreamIdT
from redis.exceptions import ResponseError, WatchError

from server.store import keys as K
from server.store.encoding import dumps as _dumps
from server.store.catalog import now_iso
from server.store.cluster import ClusterClient
from server.store.cluster_ingest import wait_for_entries, write_in_order
from server.store.connect import Store
from server.store.errors import guarded

__all__ = [
    "append_events", "owns", "get_marker", "ensure_groups", "read_entries", "claim_pending", "pending_from", "ack",
    "queue_ack", "acquire_lease", "renew_lease", "release_lease", "heartbeat", "live_workers", "stream_lengths",
]


def owns(marker: dict[str, Any], entry_id: str, fields: dict[str, str]) -> bool:
    """Whether the stream entry (id, fields) is the copy of the event the marker names."""
    token = fields.get("k")
    return bool(token and marker.get("token") == token) or marker.get("entry") == entry_id


@guarded
async def append_events(store: Store, workspace: str,
                        events: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Queue validated events in order; returns (status, marker) per event: queued | duplicate.

    One round trip: every XADD and then every SET NX in one pipeline (Redis runs a connection's
    commands in order, so each event's XADD happens before its marker). Each copy carries a random
    token, and the marker names the token of the copy that is THE event."""
    r, parts = store.redis, store.settings.partitions
    where = [K.partition_of(workspace, e["ticket"]["id"], parts) for e in events]
    tokens = [secrets.token_hex(8) for _ in events]
    markers = [{"token": t, "partition": n, "ticket": e["ticket"]["id"], "status": "queued",
                "run_id": None, "at": now_iso()} for e, n, t in zip(events, where, tokens, strict=True)]
    adds = [("XADD", K.stream(n), "*", "w", workspace, "e", _dumps(e), "k", t)
            for e, n, t in zip(events, where, tokens, strict=True)]
    sets = [("SET", K.event_marker(workspace, e["id"]), _dumps(m), "NX", "EX",
             store.settings.event_ttl_s) for e, m in zip(events, markers, strict=True)]
    entries, won = await write_in_order(store, adds, sets)
    results: list[tuple[str, dict[str, Any]]] = []
    for e, m, entry, ok in zip(events, markers, entries, won, strict=True):
        if ok:
            results.append(("queued", m))
            continue
        existing = await get_marker(store, workspace, e["id"])
        if existing is not None and existing.get("token") == m["token"]:
            results.append(("queued", existing))  # a worker was faster than our SET NX
            continue
        await r.xdel(K.stream(m["partition"]), entry)
        results.append(("duplicate", existing or m))
    store.wakeup.set(where)   # the loops of those partitions only
    return results


@guarded
async def get_marker(store: Store, workspace: str, event_id: str) -> dict[str, Any] | None:
    raw = await store.redis.get(K.event_marker(workspace, event_id))
    return orjson.loads(raw) if raw else None


@guarded
async def ensure_groups(store: Store) -> None:
    for n in range(store.settings.partitions):
        try:
            await store.redis.xgroup_create(K.stream(n), K.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


Entry = tuple[str, dict[str, str]]


@guarded
async def read_entries(store: Store, consumer: str, partitions: list[int], *,
                       count: int, block_ms: int | None,
                       dues: dict[int, int | None] | None = None,
                       after: dict[int, str] | None = None,
                       drained: dict[int, str] | None = None) -> dict[int, list[Entry]]:
    """New entries of the given partitions for this consumer (XREADGROUP >), read only while no
    other worker holds a partition's lease.

    Why the read is repeatable (`after`): XREADGROUP > moves what it returns into the consumer's
    pending list at once, so a read whose reply was lost -- the command ran, then its connection
    was closed under it (redis-py's cluster client closes every connection of every node on each
    fifth MOVED during a reshard), or the reply timed out -- and that the client library then
    sends again returned the NEXT entries, while the first ones sat in this consumer's pending
    list until some later claim: a ticket's later event applied before its earlier one (seen in
    tests/cluster's reshard test; tests/server/test_read_retry.py). So each read first returns
    this consumer's own pending entries past `after[n]` -- the last entry it was handed of
    partition n (by a read or a claim) -- which is nothing unless an earlier read's reply was
    lost, and only then reads new ones; `after[n]` is moved to the last entry handed out. A
    partition missing from `after` reads this consumer's pending list from its start (a consumer
    that holds none of its entries yet). Pending entries deleted since they were delivered (a
    duplicate copy XDELed by ingest) are acknowledged there, not handed out.

    Why the lease is checked in the same transaction as the read: a worker that lost its lease
    (it stalled past the TTL) but has not noticed yet must not take entries off the stream after
    the new owner claimed the pending ones, or those entries would sit in the old owner's pending
    list while the new owner applies the ticket's later events. So the read is WATCH lease, GET,
    MULTI XREADGROUP (never blocking) EXEC, and the wait for new entries is a separate XREAD
    BLOCK from the stream's last id, which delivers nothing to anyone.

    `dues`, when given, gets each partition's earliest timer due time (ms since the epoch, None
    when it has none) as of its last read: the worker's timer check of each round, in the same
    call instead of a ZRANGE of its own (a partition's timers share its stream's slot). A
    partition whose lease another worker holds gets no entry.

    `drained`, when given, is kept by this call: drained[n] is set when a read of n found the
    stream emptied (the new entries it returned, if any, were all there were), to the id past
    which nothing was left; a blocking read of such a partition then waits first (XREAD BLOCK
    from that id) and reads once something new came. The read after a batch was applied found
    nothing nearly every time at moderate rates: a script call an event for no entry
    (bench/RESULTS.md, session 16). A read that fails, or that hands out the consumer's own
    pending entries, leaves n out of it, so the next one reads first again."""
    if not partitions:
        return {}
    out: dict[int, list[Entry]] = {}
    waits: dict[KeyT, StreamIdT] = {}
    dues = {} if dues is None else dues
    after = {} if after is None else after
    drained = {} if drained is None else drained
    waited: list[int] = []
    for n in partitions:
        if block_ms and n in drained:
            waits[K.stream(n)] = drained[n]   # nothing new as of the last read: wait first
            waited.append(n)
            continue
        got, last = await _read_owned(store, consumer, n, count, dues, after, drained)
        if got:
            out[n] = got
        elif last is not None:
            waits[K.stream(n)] = last
    if out and waited:   # other partitions had entries: no wait, the skipped ones are read too
        for n in waited:
            got, _ = await _read_owned(store, consumer, n, count, dues, after, drained)
            if got:
                out[n] = got
        return out
    if out or not block_ms or not waits:
        return out
    woke = True   # (a cluster's waits outlive the call: read after them, as before)
    if isinstance(store.redis, ClusterClient):
        await wait_for_entries(store.redis, waits, block_ms)
    else:
        try:
            woke = bool(await store.redis.xread(waits, count=1, block=block_ms))
        except ResponseError as exc:
            if "UNBLOCKED" not in str(exc):
                raise
    for n in partitions:
        if not woke and n in drained:
            continue   # the wait timed out: nothing new past drained[n], no read to learn it
        got, _ = await _read_owned(store, consumer, n, count, dues, after, drained)
        if got:
            out[n] = got
    return out


# The lease check and the read in one script call on Redis (atomic, so the same guarantee as
# WATCH lease / GET / MULTI XREADGROUP EXEC, in one round trip instead of three).
# KEYS = lease, stream, timer index, older timers set; ARGV = consumer, group, count, after (the
# last entry id this consumer was handed of the stream). Returns {0} when another worker holds
# the lease; {1, entries, first timer, last id, drained} when some were read; {2, last generated
# id, first timer, last id} when none were; first timer = the earlier of the timer index's and the
# older layout's first {member, score} (store/timers.py), {} when both are empty; last id = the id
# to pass as `after` next time; drained = 1 when the entries are new ones (XREADGROUP >), fewer
# than COUNT: the stream held nothing more past the last. The consumer's own pending entries past `after` come first (only a
# read whose reply was lost leaves any: read_entries), and only when there are none new ones
# (XREADGROUP >); pending entries deleted meanwhile are XACKed, not returned.
_READ_OWNED = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {0} end
local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local older = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
if older[2] and (not first[2] or tonumber(older[2]) < tonumber(first[2])) then first = older end
local last = ARGV[4]
local live = {}
local got = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[1], 'COUNT', ARGV[3], 'STREAMS',
                       KEYS[2], last)
if got and got[1] then
  for _, entry in ipairs(got[1][2]) do
    last = entry[1]
    if entry[2] then live[#live + 1] = entry
    else redis.call('XACK', KEYS[2], ARGV[2], entry[1]) end
  end
end
local drained = 0
if #live == 0 then
  got = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[1], 'COUNT', ARGV[3], 'STREAMS',
                   KEYS[2], '>')
  if got and got[1] then
    for _, entry in ipairs(got[1][2]) do
      last = entry[1]
      live[#live + 1] = entry
    end
  end
  if #live < tonumber(ARGV[3]) then drained = 1 end
end
if #live > 0 then return {1, live, first, last, drained} end
local info = redis.call('XINFO', 'STREAM', KEYS[2])
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then return {2, info[i + 1], first, last} end
end
return {2, '0-0', first, last}
"""


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _first_due(first: Any) -> int | None:
    """The due time (ms) of a timers zset's first [member, score] pair (ZRANGE 0 0 WITHSCORES,
    flat from a script, pairs from redis-py); None when the zset is empty."""
    if not first:
        return None
    score = first[0][1] if isinstance(first[0], (list, tuple)) else first[1]
    return int(float(score))


async def _read_owned(store: Store, consumer: str, n: int, count: int,
                      dues: dict[int, int | None], after: dict[int, str],
                      drained: dict[int, str]) -> tuple[list[Entry], str | None]:
    """(entries read, the stream's last generated id when none were); nothing when another worker
    holds the lease. Puts the partition's first timer due time in `dues`, the last entry id
    handed out in `after` and, when the stream held nothing more, the id to wait past in
    `drained` (read_entries)."""
    lease, stream = K.lease(n), K.stream(n)
    drained.pop(n, None)   # known again only from this read's answer
    if not store.embedded:   # the in-process store runs no Lua
        try:
            # execute_command, not eval: a cluster client's eval waits for replicas (commits)
            got = await store.redis.execute_command("EVAL", _READ_OWNED, 4, lease, stream,
                                                    K.timer_index(n), K.timers(n), consumer,
                                                    K.GROUP, count, after.get(n, "0-0"))
        except ResponseError as exc:
            if "NOGROUP" not in str(exc) and "no such key" not in str(exc):
                raise
            await ensure_groups(store)  # the stream was deleted (FLUSHDB, Redis restarted empty)
            return [], None
        kind = int(got[0])
        if kind == 0:
            return [], None
        dues[n] = _first_due(got[2])
        after[n] = _text(got[3])
        if kind == 2:
            drained[n] = _text(got[1])
            return [], drained[n]
        if int(got[4]):   # (the script's `drained`: nothing more past the last entry)
            drained[n] = after[n]
        entries: list[Entry] = []
        for entry_id, flat in got[1]:
            if flat:
                fields = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
                entries.append((_text(entry_id), fields))
        return entries, None
    # fakeredis in this process: no connection that could lose a reply, no retry that could read
    # twice, so XREADGROUP > alone (its replies' shape for deleted pending entries differs too)
    async with store.redis.pipeline(transaction=True) as p:
        for _ in range(20):
            try:
                await p.watch(lease)
                holder = await p.get(lease)
                if holder is not None and holder != consumer:
                    return [], None
                p.multi()
                p.xreadgroup(K.GROUP, consumer, {stream: ">"}, count=count)
                p.xinfo_stream(stream)
                p.zrange(K.timer_index(n), 0, 0, withscores=True)
                p.zrange(K.timers(n), 0, 0, withscores=True)
                res, info, first, older = await p.execute()
            except WatchError:
                continue  # the lease was renewed or taken meanwhile: look again
            except ResponseError as exc:
                if "NOGROUP" not in str(exc) and "no such key" not in str(exc):
                    raise
                await ensure_groups(store)  # the stream was deleted (FLUSHDB, Redis restarted empty)
                return [], None
            firsts = [d for d in (_first_due(first), _first_due(older)) if d is not None]
            dues[n] = min(firsts) if firsts else None
            entries = [(i, f) for _, batch in res or [] for i, f in batch if f]
            if entries:
                after[n] = entries[-1][0]
            return entries, (None if entries else str(info["last-generated-id"]))
    return [], None


@guarded
async def claim_pending(store: Store, consumer: str, n: int, *, count: int = 500) -> list[Entry]:
    """Take over every pending entry of partition n (its previous owner is gone: we hold the lease),
    in stream order. Deleted entries (XDELed duplicates) are dropped by XAUTOCLAIM itself."""
    out: list[Entry] = []
    start = "0-0"
    while True:
        start, entries = await _autoclaim(store, consumer, n, start, count)
        out.extend(entries)
        if start == "0-0":
            break
    out.sort(key=lambda e: tuple(int(x) for x in e[0].split("-")))
    return out


@guarded
async def pending_from(store: Store, consumer: str, n: int, start: str, *,
                       count: int = 500) -> tuple[str, list[Entry]]:
    """(the id to go on from, or "0-0" at the end; up to `count` of partition n's pending entries
    from id `start` on, in stream order): read back by their owner, who holds the lease
    (server/parking.py), so XAUTOCLAIM moves nothing."""
    return await _autoclaim(store, consumer, n, start, count)


async def _autoclaim(store: Store, consumer: str, n: int, start: str,
                     count: int) -> tuple[str, list[Entry]]:
    try:
        res = await store.redis.xautoclaim(K.stream(n), K.GROUP, consumer, min_idle_time=0,
                                           start_id=start, count=count)
    except ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        await ensure_groups(store)
        return "0-0", []
    return res[0], [(i, f) for i, f in res[1] if f]


@guarded
async def ack(store: Store, n: int, entry_ids: list[str]) -> None:
    """Acknowledge and delete processed entries: the stream holds only work not yet done."""
    if entry_ids:
        async with store.redis.pipeline(transaction=True) as p:
            p.xack(K.stream(n), K.GROUP, *entry_ids)
            p.xdel(K.stream(n), *entry_ids)
            await p.execute()


def queue_ack(p: Any, n: int, entry_ids: list[str]) -> None:
    """`ack`'s commands on a shared non-transactional pipeline (store/coalesce.py): XACK then
    XDEL, sent together; both are idempotent, so a lost reply only repeats them harmlessly."""
    p.xack(K.stream(n), K.GROUP, *entry_ids)
    p.xdel(K.stream(n), *entry_ids)


@guarded
async def acquire_lease(store: Store, n: int, me: str) -> bool:
    """Take (or renew) partition n's lease as a NEW owner: True when we hold it for
    reclaim_idle_ms more. The caller must claim the partition's pending entries before reading
    new ones (worker: `_fresh`), since another worker may have held it since we last did."""
    if await store.redis.set(K.lease(n), me, nx=True, px=store.settings.reclaim_idle_ms):
        return True
    return await renew_lease(store, n, me)


@guarded
async def renew_lease(store: Store, n: int, me: str) -> bool:
    """Extend partition n's lease only if we still hold it; False when it lapsed, even if no one
    holds it now. Never SET NX here: between the lapse and now another worker may have taken the
    partition, read or claimed entries into its own pending list, and released it; a holder that
    just took the lease back would read new entries past them, and a ticket's later event would be
    applied before its earlier one (tests/server/test_lease_order.py). A lapsed lease is lost: the
    worker stops the partition and can only acquire it again as a new owner, which claims first."""
    ttl, key = store.settings.reclaim_idle_ms, K.lease(n)
    for _ in range(20):
        async with store.redis.pipeline(transaction=True) as p:
            try:
                await p.watch(key)
                if await p.get(key) != me:
                    return False
                p.multi()
                p.pexpire(key, ttl)
                await p.execute()
                return True
            except WatchError:
                # the key changed between WATCH and EXEC: renewed by another task of this worker
                # (a lane's fence and the renewal task at once) or taken; look again. Taken as
                # "lost", a partition would be dropped with its entries taken but not applied.
                continue
    return False


@guarded
async def release_lease(store: Store, n: int, me: str) -> None:
    key = K.lease(n)
    async with store.redis.pipeline(transaction=True) as p:
        try:
            await p.watch(key)
            if await p.get(key) != me:
                return
            p.multi()
            p.delete(key)
            await p.execute()
        except WatchError:
            return


@guarded
async def heartbeat(store: Store, me: str, now_ms: int, *, gone: bool = False) -> None:
    if gone:
        await store.redis.zrem(K.WORKERS, me)
        return
    async with store.redis.pipeline(transaction=False) as p:
        p.zadd(K.WORKERS, {me: now_ms})
        p.zremrangebyscore(K.WORKERS, 0, now_ms - store.settings.reclaim_idle_ms)
        await p.execute()


@guarded
async def live_workers(store: Store) -> int:
    return int(await store.redis.zcard(K.WORKERS)) or 1


@guarded
async def stream_lengths(store: Store) -> dict[str, int]:
    """Queued-but-unacknowledged counts for /metrics."""
    total_pending = 0
    total_len = 0
    for n in range(store.settings.partitions):
        try:
            total_pending += int((await store.redis.xpending(K.stream(n), K.GROUP))["pending"])
        except ResponseError:
            pass
        total_len += int(await store.redis.xlen(K.stream(n)))
    return {"pending": total_pending, "length": total_len}
