"""Durable timers: one per (ticket, reason), fired into the ticket's event stream exactly once.

Layout (slot {q:n}, the same partition as the ticket's events, store/keys.py):

  df:{q:n}:timers        zset  member = JSON [workspace, ticket, reason] -> due time (ms)
  df:{q:n}:timer-data    hash  member -> JSON {"type": <event type>, ...extra fields for the event}

Why there: a ticket's timers and its event stream share a hash slot, so firing is one WATCH/MULTI
transaction (ZREM the timer, XADD the generated event); the partition's lease holder (the worker
that applies the ticket's events) fires them, and generated events queue behind the ticket's
real events in order. Scheduling the same (ticket, reason) again moves the timer (ZADD overwrites
the score), so rescheduling and cancelling need no lookup.

The generated event's id is `<reason>@<due ms>`: should a timer ever be fired twice (a transaction
retried after a lost reply), the second copy is an idempotent duplicate, not a second firing.
A timer that came due while nothing ran fires on the next tick after start-up: due timers are read
with ZRANGEBYSCORE -inf..now, like arq's queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import WatchError

from server.store import keys as K
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["Timer", "schedule", "schedule_many", "cancel", "get", "fire_due", "next_due", "count"]


@dataclass(frozen=True)
class Timer:
    workspace: str
    ticket: str
    reason: str
    due_ms: int
    data: dict[str, Any]

    @property
    def due_at(self) -> datetime:
        return datetime.fromtimestamp(self.due_ms / 1000, UTC)

    def event(self) -> dict[str, Any]:
        """The event this timer generates when it fires."""
        at = self.due_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event: dict[str, Any] = {"id": f"{self.reason}@{self.due_ms}", "type": self.data.get("type", "time.reached"),
                                 "occurred_at": at, "ticket": {"id": self.ticket}}
        extra = {k: v for k, v in self.data.items() if k != "type"}
        event["timer"] = {"reason": self.reason, "due_at": at, **extra}
        return event


def _member(workspace: str, ticket: str, reason: str) -> str:
    return orjson.dumps([workspace, ticket, reason]).decode()


def _partition(store: Store, workspace: str, ticket: str) -> int:
    return K.partition_of(workspace, ticket, store.settings.partitions)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


async def schedule(store: Store, workspace: str, ticket: str, reason: str, due: datetime,
                   data: dict[str, Any] | None = None) -> None:
    """Set (or move) the ticket's timer for `reason` to `due`."""
    await schedule_many(store, [(workspace, ticket, reason, due, data)])


@guarded
async def schedule_many(store: Store, items: list[tuple[str, str, str, datetime, dict[str, Any] | None]]) -> None:
    """schedule() for many (workspace, ticket, reason, due, data) at once, one pipeline per partition
    (each partition's keys share a slot, so each pipeline is a transaction on one slot)."""
    by_part: dict[int, list[tuple[str, int, str]]] = {}
    for workspace, ticket, reason, due, data in items:
        by_part.setdefault(_partition(store, workspace, ticket), []).append(
            (_member(workspace, ticket, reason), _ms(due), orjson.dumps(data or {}).decode()))
    for n, rows in by_part.items():
        async with store.redis.pipeline(transaction=True) as p:
            p.zadd(K.timers(n), {m: score for m, score, _ in rows})
            p.hset(K.timer_data(n), mapping={m: d for m, _, d in rows})
            await p.execute()
    store.wakeup.set()


@guarded
async def cancel(store: Store, workspace: str, ticket: str, reason: str) -> bool:
    """Remove the ticket's timer for `reason`; True if there was one."""
    n = _partition(store, workspace, ticket)
    member = _member(workspace, ticket, reason)
    async with store.redis.pipeline(transaction=True) as p:
        p.zrem(K.timers(n), member)
        p.hdel(K.timer_data(n), member)
        removed, _ = await p.execute()
    return bool(removed)


@guarded
async def get(store: Store, workspace: str, ticket: str, reason: str) -> Timer | None:
    n = _partition(store, workspace, ticket)
    member = _member(workspace, ticket, reason)
    score = await store.redis.zscore(K.timers(n), member)
    if score is None:
        return None
    data = await store.redis.hget(K.timer_data(n), member)
    return Timer(workspace, ticket, reason, int(score), orjson.loads(data) if data else {})


@guarded
async def fire_due(store: Store, n: int, now: datetime, *, limit: int = 500) -> list[Timer]:
    """Move partition n's timers due at `now` into its event stream, atomically; returns them."""
    zkey, dkey = K.timers(n), K.timer_data(n)
    while True:
        async with store.redis.pipeline(transaction=True) as p:
            try:
                await p.watch(zkey)
                due = await p.zrangebyscore(zkey, "-inf", _ms(now), start=0, num=limit, withscores=True)
                if not due:
                    return []
                members = [m for m, _ in due]
                datas = await p.hmget(dkey, members)
                fired = []
                for (member, score), data in zip(due, datas, strict=True):
                    workspace, ticket, reason = orjson.loads(member)
                    fired.append(Timer(workspace, ticket, reason, int(score), orjson.loads(data) if data else {}))
                p.multi()
                p.zrem(zkey, *members)
                p.hdel(dkey, *members)
                for timer in fired:
                    p.xadd(K.stream(n), {"w": timer.workspace, "e": orjson.dumps(timer.event()).decode()})
                await p.execute()
                return fired
            except WatchError:
                continue  # a timer was moved while we read: read again


@guarded
async def next_due(store: Store, partitions: list[int]) -> datetime | None:
    """The earliest due time among these partitions' timers (to sleep exactly until then)."""
    best: int | None = None
    for n in partitions:
        first = await store.redis.zrange(K.timers(n), 0, 0, withscores=True)
        if first and (best is None or first[0][1] < best):
            best = int(first[0][1])
    return datetime.fromtimestamp(best / 1000, UTC) if best is not None else None


@guarded
async def count(store: Store) -> int:
    total = 0
    for n in range(store.settings.partitions):
        total += int(await store.redis.zcard(K.timers(n)))
    return total
