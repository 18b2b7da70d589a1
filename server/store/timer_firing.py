"""Firing a partition's due timers into its event stream, atomically and fair between
workspaces (the layout and the reasons: server/store/timers.py).

A round reads the due share of each waiting workspace, builds their events in Python (Timer.event),
then writes in one script call (`_FIRE`: on Redis and Redis Cluster; the partition's keys share
its stream's slot): each timer still in its set at the due time read is removed and its event
added to the stream, each served workspace is ranked again in the index, and the answer says
when the partition's next timer is due, so the worker needs no read of its own to know how long
to wait. A WATCH/MULTI round (4 round trips, and again after any change to a watched set) came
before it: the single-workspace lateness p99 went from 2.7 ms to 31.8 ms with the fair rounds
(bench/RESULTS.md "Timers"). The in-process store runs no Lua: `_fire_watched` does the same
writes as a WATCH/MULTI transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from redis.exceptions import WatchError

from server.store import keys as K
from server.store.connect import Store
from server.store.errors import guarded
from server.store.replies import scored, text, texts
from server.store.timers import Timer, ms_of, next_due, parse_member, timer_of

__all__ = ["fire_due", "fire_round", "ROUND_WORKSPACES"]

# Workspaces served per firing round, those waiting longest first (store/keys.py timer_index): a
# round costs one read per workspace, so it is bounded; the rest are served by the next rounds.
ROUND_WORKSPACES = 32


@guarded
async def fire_due(store: Store, n: int, now: datetime, *, limit: int = 500) -> list[Timer]:
    """Move partition n's timers due at `now` into its event stream, atomically; returns them
    (fire_round, which also says when the partition's next timer is due)."""
    return (await fire_round(store, n, now, limit=limit))[0]


@guarded
async def fire_round(store: Store, n: int, now: datetime, *, limit: int = 500) -> tuple[list[Timer], int | None]:
    """Move partition n's timers due at `now` into its event stream, atomically: (the timers
    fired, the due ms of the partition's first timer after that, or None if it has none).

    Fair between workspaces: a round serves up to ROUND_WORKSPACES workspaces with timers due,
    each up to an equal share of `limit`, so one workspace's burst of due timers (20,000 snoozes
    due at one second) is fired a share per round while another's timer due meanwhile goes out in
    the next round. A workspace whose share ran out while it still has timers due is ranked at
    `now` in the index, behind those still waiting since earlier: round-robin. Within a round the
    timers go to the stream in due order (a ticket's timers keep their order)."""
    now_ms = ms_of(now)
    while True:
        async with store.redis.pipeline(transaction=False) as r:
            r.zrangebyscore(K.timer_index(n), "-inf", now_ms, start=0, num=ROUND_WORKSPACES, withscores=True)
            r.zrangebyscore(K.timers(n), "-inf", now_ms, start=0, num=max(1, limit), withscores=True)
            waiting, old = await r.execute()
        if old:   # due timers of the older one-set layout: into their workspaces' sets, then fired
            await _migrate(store, n, now_ms, max(1, limit))
            continue
        if not waiting:
            return [], await _first_due(store, n)
        fired, first = await _fire_round(store, n, [w for w, _ in scored(waiting)], now_ms, max(1, limit))
        if fired:   # [] after a round that only fixed stale index entries: look again
            return fired, first


# One firing round's writes, atomic: KEYS = stream, index, data, old set, then each served
# workspace's set; ARGV = now ms, the workspaces (as many as their sets), then per timer read
# due: (number of its workspace, member, due ms, its event's JSON), in due order. A timer fires
# only if it is still in its set at the due time read (a cancel or a reschedule since wins);
# each served workspace is then ranked in the index at its first remaining due (at now if that
# is due already: its share ran out) or leaves it. Returns the members fired, and the
# partition's first due after the round (the index's and the older set's first), so the caller
# needs no read of its own to know how long to wait.
_FIRE = """
local now = tonumber(ARGV[1])
local nws = #KEYS - 4
local fired = {}
local i = nws + 2
while i <= #ARGV do
  local w, member, due, event = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local set = KEYS[4 + w]
  if tonumber(redis.call('ZSCORE', set, member)) == tonumber(due) then
    redis.call('ZREM', set, member)
    redis.call('HDEL', KEYS[3], member)
    redis.call('XADD', KEYS[1], '*', 'w', ARGV[1 + w], 'e', event)
    fired[#fired + 1] = member
  end
  i = i + 4
end
for w = 1, nws do
  local head = redis.call('ZRANGE', KEYS[4 + w], 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', KEYS[2], ARGV[1 + w])
  else
    redis.call('ZADD', KEYS[2], math.max(tonumber(head[2]), now), ARGV[1 + w])
  end
end
local first = false
for _, key in ipairs({KEYS[2], KEYS[4]}) do
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #head > 0 and (not first or tonumber(head[2]) < first) then first = tonumber(head[2]) end
end
return {fired, first and tostring(first) or false}
"""


async def _fire_round(store: Store, n: int, workspaces: list[str], now_ms: int,
                      limit: int) -> tuple[list[Timer], int | None]:
    """One firing round over these workspaces' sets: read each one's due share (and the event
    data of timers that have any), then one script call fires those still there (_FIRE). No
    WATCH: what changed since the read is what the script checks, so a round never runs again."""
    share = -(-limit // len(workspaces))
    keys = [K.timers_of(n, w) for w in workspaces]
    async with store.redis.pipeline(transaction=False) as r:
        for key in keys:
            r.zrangebyscore(key, "-inf", now_ms, start=0, num=share, withscores=True)
        r.hlen(K.timer_data(n))   # 0 for the service's own timers: no HMGET then
        *heads, with_data = await r.execute()
    taken = [(w, m, s) for w, head in enumerate(heads) for m, s in scored(head)]
    members = [m for _, m, _ in taken]
    datas = await store.redis.hmget(K.timer_data(n), members) if members and with_data else [None] * len(members)
    rows = sorted(((w, m, s, timer_of(m, s, d)) for (w, m, s), d in zip(taken, datas, strict=True)),
                  key=lambda row: row[3].due_ms)
    args: list[Any] = [now_ms, *workspaces]
    for w, m, s, timer in rows:
        args += [w + 1, m, s, orjson.dumps(timer.event()).decode()]
    script_keys = [K.stream(n), K.timer_index(n), K.timer_data(n), K.timers(n), *keys]
    if store.embedded:   # the in-process store runs no Lua: the same writes under WATCH
        done = await _fire_watched(store, script_keys, args)
        first = await _first_due(store, n)
    else:
        done, head = await store.redis.eval(_FIRE, len(script_keys), *script_keys, *args)
        first = None if head is None else int(float(text(head)))
    gone = set(texts(done))
    fired = [timer for _, m, _, timer in rows if m in gone]
    return fired, first


async def _fire_watched(store: Store, keys: list[str], args: list[Any]) -> list[str]:
    """_FIRE's writes, step for step, as a WATCH/MULTI transaction (run again if a key changed
    meanwhile); the members fired (the caller reads the next due itself, as next_due does)."""
    stream, index, data, _old, *sets = keys
    now, workspaces, rows = int(args[0]), args[1:1 + len(sets)], args[1 + len(sets):]
    while True:
        async with store.redis.pipeline(transaction=True) as p:
            try:
                await p.watch(index, *sets)
                fired, writes = [], []
                for i in range(0, len(rows), 4):
                    w, member, due, event = rows[i:i + 4]
                    if await p.zscore(sets[w - 1], member) == float(due):
                        writes.append((sets[w - 1], member, workspaces[w - 1], event))
                        fired.append(member)
                gone = {(key, m) for key, m, _, _ in writes}
                firsts: list[float | None] = []
                for key in sets:   # each set's first timer once the fired ones are gone
                    left = [s for m, s in scored(await p.zrange(key, 0, len(rows) // 4, withscores=True))
                            if (key, m) not in gone]
                    firsts.append(left[0] if left else None)
                p.multi()
                for key, member, workspace, event in writes:
                    p.zrem(key, member)
                    p.hdel(data, member)
                    p.xadd(stream, {"w": workspace, "e": event})
                for workspace, head in zip(workspaces, firsts, strict=True):
                    if head is None:
                        p.zrem(index, workspace)
                    else:
                        p.zadd(index, {str(workspace): max(head, float(now))})
                await p.execute()
            except WatchError:
                continue
        return fired


async def _first_due(store: Store, n: int) -> int | None:
    due = await next_due(store, [n])
    return None if due is None else int(due.timestamp() * 1000)


async def _migrate(store: Store, n: int, now_ms: int, limit: int) -> None:
    """Move up to `limit` due timers of the older one-set layout into their workspaces' sets (the
    same members: their timer-data fields stand), atomically, so the fair round fires them."""
    async with store.redis.pipeline(transaction=True) as p:
        try:
            await p.watch(K.timers(n))
            rows = scored(await p.zrangebyscore(K.timers(n), "-inf", now_ms, start=0, num=limit, withscores=True))
            if not rows:
                return
            by_ws: dict[str, dict[str, int]] = {}
            for m, score in rows:
                by_ws.setdefault(parse_member(m)[0], {})[m] = int(score)
            p.multi()
            for workspace, scores in by_ws.items():
                p.zadd(K.timers_of(n, workspace), scores)
                p.zadd(K.timer_index(n), {workspace: min(scores.values())}, lt=True)
            p.zrem(K.timers(n), *(m for m, _ in rows))
            await p.execute()
        except WatchError:
            return   # moved meanwhile: the caller reads again
