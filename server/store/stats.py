"""The workspace's chart counters: events applied per hour, SLA targets met and breached per day
(the managers' page draws them; GET /v1/stats/events and /v1/stats/sla read them).

Counted by the worker in memory when an event is applied and written with the fired rules' usage
(store/usage.py) at the head of the worker's next round trip (store/coalesce.py): no command is
added to an event's commit. A worker killed between the commit and that round trip loses that
batch of counts, never an event; a batch that could not be sent joins the next one.

What counts (`count_event`, pure):

* every applied event, the ones the service generates from its timers included, in the UTC hour
  it was processed;
* an SLA target **met** when this event met it in time (its clock says `met` with `met_at` the
  event's own processing time: a target met late stays `breached` and is not counted again);
* an SLA target **breached** when this event is the target's `sla.breached` event (the service
  generates exactly one per breach; clients cannot post that type) and the clock says breached.

Keys: one hash per workspace per UTC day (keys.ws_stats_day), with a TTL of KEEP_DAYS renewed on
each write, so a day's key is bounded (24 hour fields + 2 per SLA target) and old days go away
without a sweep.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rules import parse_timestamp
from server.automation import parse_time
from server.store import keys as K
from server.store.kept import Kept
from server.store.connect import Store
from server.store.errors import guarded
from server.store.replies import text_map, text_or_none
from server.store.usage import DAY_FIELD, SINCE_FIELD

__all__ = ["WorkspaceStats", "count_event", "events_per_hour", "sla_per_day", "rules_per_day",
           "rules_chart", "KEEP_DAYS",
           "MAX_HOURS", "MAX_DAYS", "SLA_TARGETS"]

KEEP_DAYS = 32            # a day's key lives this long after its last write
MAX_HOURS = 168           # GET /v1/stats/events?hours= reads at most a week of hours
MAX_DAYS = 30             # GET /v1/stats/sla?days= reads at most 30 days
SLA_TARGETS = ("first_response", "next_response", "resolution")

Fields = collections.Counter[str]


def count_event(event: dict[str, Any], ticket: dict[str, Any], at: str) -> tuple[int, Fields]:
    """(UTC day, counter fields) one applied event adds: its hour's event count and the SLA
    targets it met in time or is the breach of. `ticket` is the ticket as the event left it,
    `at` the run's processing time (RFC 3339)."""
    moment = parse_time(at) or datetime.now(UTC)   # (remembered: the commit parsed it too)
    hour = int(moment.timestamp() // 3600)
    out: Fields = collections.Counter({f"e:{hour}": 1})
    sla = ticket.get("sla")
    targets = sla.get("targets") if isinstance(sla, dict) else None
    if isinstance(targets, dict):
        timer = _t if isinstance(_t := event.get("timer"), dict) else {}
        for name, clock in targets.items():
            if name not in SLA_TARGETS or not isinstance(clock, dict):
                continue
            met = parse_timestamp(clock.get("met_at"))
            if clock.get("state") == "met" and met is not None and met == moment:
                out[f"met:{name}"] += 1
            elif (clock.get("state") == "breached" and event.get("type") == "sla.breached"
                  and timer.get("target") == name):
                out[f"breached:{name}"] += 1
    return hour // 24, out


class WorkspaceStats:
    """Counts not yet written, per (workspace, UTC day)."""

    def __init__(self) -> None:
        self._days: dict[tuple[str, int], Fields] = {}

    def __bool__(self) -> bool:
        return bool(self._days)

    def add(self, workspace: str, event: dict[str, Any], ticket: dict[str, Any], at: str) -> None:
        day, fields = count_event(event, ticket, at)
        self._days.setdefault((workspace, day), collections.Counter()).update(fields)

    def queue(self, p: Any) -> Callable[[bool], None] | None:
        """Queue the batch's writes on pipeline `p` (HINCRBY per field, one EXPIRE per day key:
        plain commands, so the in-process store runs them too); returns the callback the
        Coalescer calls with whether the round trip was sent (a lost batch joins the next)."""
        if not self._days:
            return None
        taken, self._days = self._days, {}
        for (workspace, day), fields in taken.items():
            key = K.ws_stats_day(workspace, day)
            for name, n in sorted(fields.items()):
                p.hincrby(key, name, n)
            p.expire(key, KEEP_DAYS * 86400)

        def done(sent: bool) -> None:
            if not sent:
                for k, fields in taken.items():
                    self._days.setdefault(k, collections.Counter()).update(fields)
        return done


async def _days(store: Store, workspace: str, days: list[int]) -> list[dict[str, str]]:
    async with store.redis.pipeline(transaction=False) as p:
        for day in days:
            p.hgetall(K.ws_stats_day(workspace, day))
        return [text_map(r) for r in await p.execute()]


def _int(v: str | None) -> int:
    return int(v) if v is not None and v.lstrip("-").isdigit() else 0


def _iso_hour(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H:00:00Z")


@guarded
async def events_per_hour(store: Store, workspace: str, now_hour: int,
                          hours: int) -> list[dict[str, Any]]:
    """[{"hour": "YYYY-MM-DDTHH:00:00Z", "events"}] for the last `hours` UTC hours, oldest first,
    the current (partial) hour last."""
    first = now_hour - hours + 1
    day_ids = list(range(first // 24, now_hour // 24 + 1))
    by_day = dict(zip(day_ids, await _days(store, workspace, day_ids), strict=True))
    return [{"hour": _iso_hour(h), "events": _int(by_day[h // 24].get(f"e:{h}"))}
            for h in range(first, now_hour + 1)]


@guarded
async def sla_per_day(store: Store, workspace: str, now_hour: int,
                      days: int) -> list[dict[str, Any]]:
    """[{"date", "met", "breached", "targets": {target: {"met", "breached"}}}] for the last
    `days` UTC days, oldest first, today last."""
    today = now_hour // 24
    day_ids = list(range(today - days + 1, today + 1))
    out = []
    for day, fields in zip(day_ids, await _days(store, workspace, day_ids), strict=True):
        targets = {t: {"met": _int(fields.get(f"met:{t}")),
                       "breached": _int(fields.get(f"breached:{t}"))} for t in SLA_TARGETS}
        out.append({"date": datetime.fromtimestamp(day * 86400, UTC).date().isoformat(),
                    "met": sum(v["met"] for v in targets.values()),
                    "breached": sum(v["breached"] for v in targets.values()),
                    "targets": targets})
    return out


MAX_CHARTS = 256          # rules_chart: answers one process keeps (least recently read go)
_charts: Kept[tuple[str, int], Any] = Kept(MAX_CHARTS)


@guarded
async def rules_chart(store: Store, workspace: str, now_hour: int,
                      days: int) -> tuple[list[str], list[list[int]]]:
    """(every rule id, sorted; its fires per day as rules_per_day reads them), kept in this
    process while nothing the answer is made of moves: the rules revision (a rule made or
    deleted), the packed counters' version (every batch of fires written) and start, the day.
    One MGET then, however many rules: the chart is asked for on every visit of the rule list,
    by every viewer, and re-reading 1,000 rules x 30 days each time was the request's cost."""
    made_of = tuple(text_or_none(v) for v in await store.redis.mget(
        [K.rules_rev(workspace), K.rule_fires_version(workspace), K.rule_fires_since(workspace)]))
    key = (*made_of, now_hour // 24)
    kept = _charts.get(store, (workspace, days))
    if kept is not None and kept[0] == key:
        return kept[1], kept[2]
    ids = sorted(str(k) for k in await store.redis.hkeys(K.rules(workspace)))
    rows = await rules_per_day(store, workspace, ids, now_hour, days)
    _charts.put(store, (workspace, days), (key, ids, rows))
    return ids, rows


RULES_PER_TRIP = 100      # _own_counters: rules read in one round trip (the loop is free between)
IDS_PER_READ = 500        # rules_per_day: rule ids one HMGET of a packed day asks for


@guarded
async def rules_per_day(store: Store, workspace: str, rule_ids: list[str], now_hour: int,
                        days: int) -> list[list[int]]:
    """Each rule's fires per UTC day for the last `days` days (oldest first, today last). The
    days from the workspace's keys.rule_fires_since on come from the packed day counters: one
    HMGET a day for every rule (30 commands, not 2,000: at 1,000 rules the per-rule reads were
    ~70 ms of the event loop every workspace shares, a request); a workspace from before them
    reads the days before from each rule's own counters (_own_counters) until those days pass."""
    today = now_hour // 24
    day_ids = list(range(today - days + 1, today + 1))
    since_raw = text_or_none(await store.redis.get(K.rule_fires_since(workspace)))
    since = _int(since_raw) if since_raw is not None else today + 1
    old = [d for d in day_ids if d < since]   # (a prefix: the oldest days)
    packed = day_ids[len(old):]
    columns: list[list[int]] = [[0] * len(rule_ids) for _ in old]   # (filled below)
    if packed:
        columns += [[] for _ in packed]
    for start in range(0, len(rule_ids) if packed else 0, IDS_PER_READ):
        chunk = rule_ids[start:start + IDS_PER_READ]
        async with store.redis.pipeline(transaction=False) as p:
            for day in packed:
                p.hmget(K.rule_fires_day(workspace, day), chunk)
            replies = await p.execute()
        for col, values in enumerate(replies, start=len(old)):   # (HINCRBY's own integers)
            columns[col] += [int(v) if v is not None else 0 for v in values]
    rows = [list(row) for row in zip(*columns, strict=True)] if rule_ids else []
    if old:
        for row, own in zip(rows, await _own_counters(store, workspace, rule_ids, old, today),
                            strict=True):
            row[:len(old)] = own
    return rows


async def _own_counters(store: Store, workspace: str, rule_ids: list[str], day_ids: list[int],
                        today: int) -> list[list[int]]:
    """Each rule's fires on `day_ids` from the daily "d:<day>" counters of its stats hash
    (keys.rule_stats): only the days before the hash's SINCE_FIELD (at most the day the daily
    counters began, or a whole hash from before them) are summed from the hourly buckets."""
    out: list[list[int]] = []
    for start in range(0, len(rule_ids), RULES_PER_TRIP):
        keys = [K.rule_stats(workspace, r) for r in rule_ids[start:start + RULES_PER_TRIP]]
        async with store.redis.pipeline(transaction=False) as p:
            for key in keys:
                p.exists(key)
                p.hmget(key, [SINCE_FIELD, *(f"{DAY_FIELD}{d}" for d in day_ids)])
            replies = await p.execute()
        rows = [[_int(text_or_none(v)) for v in daily[1:]] for daily in replies[1::2]]
        hourly = []   # (rule's row, index of the day): the days summed from the hourly buckets
        for j, (exists, daily) in enumerate(zip(replies[0::2], replies[1::2], strict=True)):
            since = _int(text_or_none(daily[0])) if daily[0] is not None else (today + 1 if exists else 0)
            hourly += [(j, i) for i, d in enumerate(day_ids) if d < since]
        if hourly:
            async with store.redis.pipeline(transaction=False) as p:
                for j, i in hourly:
                    p.hmget(keys[j], [f"h:{h}" for h in range(day_ids[i] * 24, day_ids[i] * 24 + 24)])
                for (j, i), hours in zip(hourly, await p.execute(), strict=True):
                    rows[j][i] = sum(_int(text_or_none(v)) for v in hours)
        out += rows
    return out
