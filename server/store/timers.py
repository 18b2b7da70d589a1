"""Durable timers: one per (ticket, reason), fired into the ticket's event stream exactly once.

Layout (slot {q:n}, the same partition as the ticket's events, store/keys.py):

  df:{q:n}:timers:<W>    zset  member -> due time (ms), workspace W's timers in the partition;
                               member = <workspace> US <code> US <ticket> (US = \\x1f, the ASCII
                               unit separator)
  df:{q:n}:timer-index   zset  workspace -> its next due (ms): which workspaces have timers due
  df:{q:n}:timer-data    hash  member -> JSON event data, ONLY for a timer whose data differs from
                               what its reason implies (none of the service's own timers)

Why a set per workspace (issue: timer bursts): firing strictly by due time from one set let one
workspace's 20,000 snoozes due at one second fire -- and queue in the stream -- ahead of another
workspace's snooze due a second later, which woke 48 s late. Firing (timer_firing.py) serves the index's due
workspaces round-robin, a share of the round each (its docstring), and the worker fires no more
per round than its partition loop reads and holds (server/worker.py _fire_timers), so a burst
waits in its workspace's set, not in the stream ahead of everyone else's events. The index entry
is a lower bound of the workspace's next due (ZADD LT on schedule; a cancel leaves it): a round
that finds nothing due there raises or removes it, so nothing fires late and nothing is scanned.

The member names the timer: `code` is the reason, shortened for the service's eight reasons
(`s` snooze, `t` time_rules, `wf`/`wn`/`wr` sla.warning:first_response/next_response/resolution,
`bf`/`bn`/`br` the same for sla.breached) and `=<reason>` for any other. Workspace ids and codes
never hold US, so a member splits with split(US, 2) and the ticket id -- the rest -- may hold
anything. The event data of a reason is implied (`snooze` -> {"type": "ticket.woke"},
`time_rules` -> {"type": "time.reached"}, `sla.<kind>:<target>` -> {"type": "sla.<kind>",
"target": <target>}, any other -> {}), so the service's timers cost one sorted-set entry each
(bench/RESULTS.md, "Timers").

Older installs stored the member as JSON `[workspace, ticket, reason]` with a timer-data field for
every timer. Such members (they never hold a raw US: JSON escapes it) are still read, fired and
cancelled, and scheduling a (ticket, reason) again drops its JSON member, so a running install
upgrades in place. A reason or workspace that holds US keeps the JSON form. Installs before the
per-workspace sets kept every timer of the partition in one set, df:{q:n}:timers: it is still
read (get, cancel, next_due, pending), and its timers move, members unchanged, into their
workspaces' sets as they come due (fire_due) or are scheduled again.

Why there: a ticket's timers and its event stream share a hash slot, so firing is atomic (ZREM
the timer, XADD the generated event: server/store/timer_firing.py); the partition's lease holder
(the worker that applies the ticket's events) fires them, and generated events queue behind the
ticket's real events in order. Scheduling the same (ticket, reason) again moves the timer (ZADD overwrites
the score), so rescheduling and cancelling need no lookup.

The generated event's id is `<reason>@<due ms>:<ticket id>` (unique in the workspace: two tickets
snoozed to the same instant must both wake): should a timer ever be fired twice (a transaction
retried after a lost reply, a timer set again after a crash), the second copy is an idempotent
duplicate, not a second firing. A timer that came due while nothing ran fires on the next tick
after start-up: due timers are read with ZRANGEBYSCORE -inf..now, like arq's queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from rules import parse_timestamp
from server.store import keys as K
from server.store.replies import scored, text
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["Timer", "schedule", "schedule_many", "cancel", "get", "next_due", "count",
           "implied_data", "pending", "Plan", "apply_plan", "restore_plan", "stale"]

US = "\x1f"
_CODES = {"snooze": "s", "time_rules": "t"}
_CODES.update({f"sla.{kind}:{target}": kind[0] + target[0]
               for kind in ("warning", "breached") for target in ("first_response", "next_response", "resolution")})
_REASONS = {code: reason for reason, code in _CODES.items()}


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
        event: dict[str, Any] = {"id": f"{self.reason}@{self.due_ms}:{self.ticket}",
                                 "type": self.data.get("type", "time.reached"),
                                 "occurred_at": at, "ticket": {"id": self.ticket}}
        extra = {k: v for k, v in self.data.items() if k != "type"}
        event["timer"] = {"reason": self.reason, "due_at": at, **extra}
        return event


def implied_data(reason: str) -> dict[str, Any]:
    """The event data a reason implies (what the service schedules for it); {} for others."""
    if reason == "snooze":
        return {"type": "ticket.woke"}
    if reason == "time_rules":
        return {"type": "time.reached"}
    kind, sep, target = reason.partition(":")
    if sep and kind in ("sla.warning", "sla.breached"):
        return {"type": kind, "target": target}
    return {}


def _legacy(workspace: str, ticket: str, reason: str) -> str:
    """The member of the JSON layout (before compact members); still read and removed."""
    return orjson.dumps([workspace, ticket, reason]).decode()


def _member(workspace: str, ticket: str, reason: str) -> str:
    if US in workspace or US in reason:
        return _legacy(workspace, ticket, reason)
    return f"{workspace}{US}{_CODES.get(reason) or '=' + reason}{US}{ticket}"


def _members(workspace: str, ticket: str, reason: str) -> tuple[str, str]:
    """(current member, legacy member) of a (ticket, reason); equal when the JSON form is current."""
    return _member(workspace, ticket, reason), _legacy(workspace, ticket, reason)


def parse_member(member: str) -> tuple[str, str, str]:
    """(workspace, ticket, reason) of a member of either form."""
    if US in member:
        workspace, code, ticket = member.split(US, 2)
        return workspace, ticket, code[1:] if code.startswith("=") else _REASONS[code]
    workspace, ticket, reason = orjson.loads(member)
    return workspace, ticket, reason


def timer_of(member: str, score: float, data: bytes | str | None) -> Timer:
    workspace, ticket, reason = parse_member(member)
    return Timer(workspace, ticket, reason, int(score), orjson.loads(data) if data else implied_data(reason))


def _partition(store: Store, workspace: str, ticket: str) -> int:
    return K.partition_of(workspace, ticket, store.settings.partitions)


def ms_of(when: datetime) -> int:
    """Whole milliseconds since the epoch, exactly (no float rounding)."""
    return _exact_ms(when if when.tzinfo else when.replace(tzinfo=UTC))


async def schedule(store: Store, workspace: str, ticket: str, reason: str, due: datetime,
                   data: dict[str, Any] | None = None) -> None:
    """Set (or move) the ticket's timer for `reason` to `due`. `data` (the generated event's type
    and extra fields) defaults to what the reason implies; it is stored only when it differs."""
    await schedule_many(store, [(workspace, ticket, reason, due, data)])


@guarded
async def schedule_many(store: Store, items: list[tuple[str, str, str, datetime, dict[str, Any] | None]]) -> None:
    """schedule() for many (workspace, ticket, reason, due, data) at once, one transaction per
    partition (each partition's keys share a slot)."""
    by_part: dict[int, dict[str, tuple[int, str | None, str, str]]] = {}
    for workspace, ticket, reason, due, data in items:
        member, legacy = _members(workspace, ticket, reason)
        extra = None if data is None or data == implied_data(reason) else orjson.dumps(data).decode()
        by_part.setdefault(_partition(store, workspace, ticket), {})[member] = (ms_of(due), extra, legacy, workspace)
    for n, rows in by_part.items():
        plain = [m for m, (_, extra, _, _) in rows.items() if extra is None]
        moved = [old for m, (_, _, old, _) in rows.items() if old != m]
        by_ws: dict[str, dict[str, int]] = {}
        for m, (score, _, _, workspace) in rows.items():
            by_ws.setdefault(workspace, {})[m] = score
        async with store.redis.pipeline(transaction=True) as p:
            for workspace, scores in by_ws.items():
                p.zadd(K.timers_of(n, workspace), scores)
                p.zadd(K.timer_index(n), {workspace: min(scores.values())}, lt=True)  # keeps the lower
            if moved:  # the same timer in the JSON layout of an older install: moved, not doubled
                for workspace in by_ws:
                    p.zrem(K.timers_of(n, workspace), *moved)
            p.zrem(K.timers(n), *rows, *moved)  # nor left behind in the older one-set layout
            if plain or moved:
                p.hdel(K.timer_data(n), *plain, *moved)
            if len(plain) < len(rows):
                p.hset(K.timer_data(n), mapping={m: extra for m, (_, extra, _, _) in rows.items() if extra is not None})
            await p.execute()
    store.wakeup.set(by_part)


async def cancel(store: Store, workspace: str, ticket: str, reason: str) -> bool:
    """Remove the ticket's timer for `reason` (in either member form); True if there was one."""
    return bool(await _cancel_many(store, workspace, ticket, [reason]))


@guarded
async def _cancel_many(store: Store, workspace: str, ticket: str, reasons: Any) -> int:
    """Remove the ticket's timers for `reasons` in one transaction; how many there were. The
    workspace's index entry stays (a lower bound): the next firing round at that time fixes it."""
    members = sorted({m for reason in reasons for m in _members(workspace, ticket, reason)})
    if not members:
        return 0
    n = _partition(store, workspace, ticket)
    async with store.redis.pipeline(transaction=True) as p:
        p.zrem(K.timers_of(n, workspace), *members)
        p.zrem(K.timers(n), *members)
        p.hdel(K.timer_data(n), *members)
        removed, old, _ = await p.execute()
    return int(removed) + int(old)


@guarded
async def get(store: Store, workspace: str, ticket: str, reason: str) -> Timer | None:
    n = _partition(store, workspace, ticket)
    member, legacy = _members(workspace, ticket, reason)
    async with store.redis.pipeline(transaction=False) as p:
        for key in (K.timers_of(n, workspace), K.timers(n)):
            p.zscore(key, member)
            p.zscore(key, legacy)
        p.hmget(K.timer_data(n), [member, legacy])
        *scores, (data, old_data) = await p.execute()
    for (m, d), score in zip([(member, data), (legacy, old_data)] * 2, scores, strict=True):
        if score is not None:
            return timer_of(m, score, d)
    return None


@guarded
async def next_due(store: Store, partitions: list[int]) -> datetime | None:
    """The earliest due time among these partitions' timers (to sleep exactly until then); may be
    early (a cancelled timer's index entry), never late."""
    best: int | None = None
    for n in partitions:
        async with store.redis.pipeline(transaction=False) as p:
            p.zrange(K.timer_index(n), 0, 0, withscores=True)
            p.zrange(K.timers(n), 0, 0, withscores=True)
            for first in map(scored, await p.execute()):
                if first and (best is None or first[0][1] < best):
                    best = int(first[0][1])
    return datetime.fromtimestamp(best / 1000, UTC) if best is not None else None


@guarded
async def pending(store: Store, n: int) -> int:
    """How many timers partition n holds (both layouts)."""
    workspaces = await store.redis.zrange(K.timer_index(n), 0, -1)
    async with store.redis.pipeline(transaction=False) as p:
        p.zcard(K.timers(n))
        for w in workspaces:
            p.zcard(K.timers_of(n, text(w)))
        return sum(int(c) for c in await p.execute())


async def count(store: Store) -> int:
    total = 0
    for n in range(store.settings.partitions):
        total += await pending(store, n)
    return total


# -- a ticket's timer plan: what the worker records under the ticket's `automation.timers` ------

Plan = dict[str, Any]  # reason -> [due time (RFC 3339), data]


def _plan_items(workspace: str, ticket: str, plan: Plan,
                keep: Any = None) -> list[tuple[str, str, str, datetime, dict[str, Any] | None]]:
    items = []
    for reason, spec in plan.items():
        if keep is not None and not keep(reason, spec):
            continue
        when = parse_timestamp(spec[0]) if isinstance(spec, list) and len(spec) == 2 else None
        if when is not None:
            items.append((workspace, ticket, reason, when, spec[1]))
    return items


async def apply_plan(store: Store, workspace: str, ticket: str, old: Plan, new: Plan) -> None:
    """Set the timers `new` adds or moves since `old` and cancel those it drops."""
    await _cancel_many(store, workspace, ticket, old.keys() - new.keys())
    items = _plan_items(workspace, ticket, new, lambda reason, spec: old.get(reason) != spec)
    if items:
        await schedule_many(store, items)


async def restore_plan(store: Store, workspace: str, ticket: str, plan: Plan, reasons: Any) -> None:
    """Set every timer of `plan` again and cancel those of `reasons` it lacks: after a crash between
    a ticket's apply and its timer writes. Idempotent (the same member at the same due)."""
    items = _plan_items(workspace, ticket, plan)
    if items:
        await schedule_many(store, items)
    await _cancel_many(store, workspace, ticket, [r for r in reasons if r not in plan])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _exact_ms(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(milliseconds=1)


def stale(event: dict[str, Any], ticket: dict[str, Any] | None) -> str | None:
    """Why a timer-generated event no longer stands (None if it does): the ticket's plan no longer
    holds its timer at that due time -- a cancel or a move lost in a crash between an apply and its
    timer writes, or a timer moved by an event applied after it fired. A ticket stored before plans
    were recorded cannot tell: the event stands."""
    timer = event.get("timer")
    if not isinstance(timer, dict):
        return None
    if ticket is None:
        return "no such ticket"
    plan = (ticket.get("automation") or {}).get("timers")
    if not isinstance(plan, dict):
        return None
    due = parse_timestamp(timer.get("due_at"))
    spec = plan.get(timer.get("reason"))
    if not isinstance(spec, list) or not spec:
        return f"the ticket has no {timer.get('reason')!r} timer now"
    planned = parse_timestamp(spec[0])
    if due is None or planned is None:
        return f"the ticket has no {timer.get('reason')!r} timer now"
    if abs(_exact_ms(due) - _exact_ms(planned)) > 1:  # 1 ms: older installs rounded through a float
        return f"the ticket's {timer.get('reason')!r} timer is now due at {spec[0]}"
    return None
