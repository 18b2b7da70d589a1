"""Each rule's usage -- fires and checks over 1 h / 24 h / 7 d / 30 d, when it last fired, its last
error -- for GET /v1/rules, at a cost a request that follows the rules it shows, not their hashes.

Why: a rule's stats hash (keys.rule_stats) holds up to 744 hourly fire buckets and as many check
buckets. Read whole (HGETALL) and summed on every request, a busy rule was ~2 ms of the event loop
every workspace shares: ~2 s for `?unused_for=30d` (every rule) or `?limit=500` at 1,000 busy
rules, and the managers' page asks for `?unused_for=30d` on every visit.

How: the hours before the last two are settled (the worker writes a fire or a check to the hour it
happened in, a batch at most one round trip late), so their sums are kept in this process per
(workspace, rule) and moved on when the hour does by the buckets that enter and leave each window
(a few fields a rule an hour). A request reads only what can still change: the current and the
previous hour's buckets, "last" and "error" (6 fields a rule). A rule is read whole once: on its
first read here, after ROLL_MAX_H hours unread, or when it was deleted and made again (another
`created_at`); that read sums the hash in the store (a script, two hashes a call, each call
followed by as long idle: the store and the cores are shared). What that costs: a count written to
an hour more than an hour late (a worker cut off from the store for that long) joins the sums at
the rule's next whole read. And while no counter of the workspace was written (every writer bumps
keys.rule_fires_version), a request's answers are the ones kept: one MGET.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import Any

import orjson

from server.store import keys as K
from server.store.kept import Kept
from server.store.connect import Store
from server.store.errors import guarded
from server.store.replies import text_map, text_or_none

__all__ = ["USAGE_WINDOWS", "rule_stats", "unused"]

# Usage windows in hour buckets: "1h" is the current hour, "24h" the current hour and the 23
# before it, and so on (the apply transaction drops the bucket 31 days back on each write).
USAGE_WINDOWS = {"1h": 1, "24h": 24, "7d": 7 * 24, "30d": 30 * 24}
_SPANS = tuple(USAGE_WINDOWS.values())
FRESH_H = 2            # the current and the previous hour: read on every request
ROLL_MAX_H = 24        # hours a kept entry may be moved on by; longer unread, it is read whole
WHOLE_PER_TRIP = 2     # rules summed whole in one call (~0.3 ms of the store's time each: its other clients wait that long)
FRESH_PER_TRIP = 250   # rules whose fresh fields are read in one round trip (~1 ms of the store's time)
MAX_WORKSPACES = 64    # workspaces whose settled sums one process keeps (least recently read go)


@dataclass(slots=True)
class _Settled:
    """One rule's sums over the settled hours of each window (USAGE_WINDOWS' order), at `hour`."""

    hour: int
    created: Any
    fired: list[int]
    checked: list[int]
    has_checks: bool   # a check bucket was seen ("checked" is null until the first one)


_kept: Kept[str, tuple[dict[str, _Settled], asyncio.Lock]] = Kept(MAX_WORKSPACES)


def _settled(now: int, span: int) -> range:
    """The settled hours of a window ending at hour `now`."""
    return range(now - span + 1, now - FRESH_H + 1)


def _num(v: Any) -> int:
    """A bucket's count (HINCRBY's integers; a missing one is 0, anything else too)."""
    if v is None:
        return 0
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _whole(stats: dict[str, str], now: int) -> list[int]:
    """What _WHOLE answers of a hash, for the in-process store: [fields, fires over the settled
    hours of 24 h, 7 d, 30 d, the same of checks, 1 if a check bucket exists]."""
    out = [len(stats), 0, 0, 0, 0, 0, 0, 0]
    for key, value in stats.items():
        kind = key[:2]
        if kind != "h:" and kind != "c:":
            continue
        try:
            age, n = now - int(key[2:]), int(value)
        except ValueError:
            continue
        at = 1 if kind == "h:" else 4
        if kind == "c:":
            out[7] = 1
        if FRESH_H <= age < 720:
            out[at + 2] += n
            if age < 168:
                out[at + 1] += n
                if age < 24:
                    out[at] += n
    return out


# A stats hash summed where it is (its ~1,500 fields never cross to this process): per key, the
# reply _whole gives. KEYS = stats hashes; ARGV = the hour now, the fresh hours. The windows are
# USAGE_WINDOWS' (24 h, 7 d, 30 d nest; a settled hour is never in 1 h).
_WHOLE = """
local now, fresh = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
  local flat = redis.call('HGETALL', KEYS[i])
  local r = {#flat / 2, 0, 0, 0, 0, 0, 0, 0}
  for j = 1, #flat, 2 do
    local k = flat[j]
    local kind = string.sub(k, 1, 2)
    if kind == 'h:' or kind == 'c:' then
      local hour, n = tonumber(string.sub(k, 3)), tonumber(flat[j + 1])
      if hour and n then
        local at = 2
        if kind == 'c:' then at = 5; r[8] = 1 end
        local age = now - hour
        if age >= fresh and age < 720 then
          r[at + 2] = r[at + 2] + n
          if age < 168 then
            r[at + 1] = r[at + 1] + n
            if age < 24 then r[at] = r[at] + n end
          end
        end
      end
    end
  end
  out[i] = r
end
return out
"""


@functools.lru_cache(maxsize=64)
def _moves(then: int, now: int) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """Per window, the hours that enter its settled part and those that leave it between hour
    `then` and hour `now` (the same for every rule kept at `then`: worked out once)."""
    out = []
    for span in _SPANS:
        old, new = set(_settled(then, span)), set(_settled(now, span))
        out.append((tuple(sorted(new - old)), tuple(sorted(old - new))))
    return tuple(out)


def _roll_hours(entry: _Settled, now: int) -> list[int]:
    """The hours whose buckets move `entry` from its hour to `now`."""
    return sorted({h for enter, leave in _moves(entry.hour, now) for h in (*enter, *leave)})


def _roll(entry: _Settled, now: int, hours: list[int], values: list[Any]) -> None:
    n = len(hours)
    fired = dict(zip(hours, map(_num, values[:n]), strict=True))
    checks = dict(zip(hours, map(_num, values[n:]), strict=True))
    for w, (enter, leave) in enumerate(_moves(entry.hour, now)):
        entry.fired[w] += sum(fired[h] for h in enter) - sum(fired[h] for h in leave)
        entry.checked[w] += sum(checks[h] for h in enter) - sum(checks[h] for h in leave)
    entry.has_checks = entry.has_checks or any(v is not None for v in values[n:])
    entry.hour = now


def _kept_for(store: Store, workspace: str) -> tuple[dict[str, _Settled], asyncio.Lock]:
    rules, lock = _kept.get(store, workspace) or ({}, asyncio.Lock())
    if len(rules) > 2 * store.settings.max_rules:   # (ids of deleted rules pile up)
        rules = {}
    _kept.put(store, workspace, (rules, lock))
    return rules, lock


def _shown(entry: _Settled, fresh: list[Any]) -> dict[str, Any]:
    """The rule's stats as answered: the settled sums plus the fresh hours (the current one is
    in every window, the previous one in all but 1 h)."""
    h_now, h_prev, c_now, c_prev, last, error = fresh
    now, both = _num(h_now), _num(h_now) + _num(h_prev)
    f = entry.fired
    fired = {"1h": f[0] + now, "24h": f[1] + both, "7d": f[2] + both, "30d": f[3] + both}
    checked: dict[str, int] | None = None
    if entry.has_checks or c_now is not None or c_prev is not None:
        now, both, c = _num(c_now), _num(c_now) + _num(c_prev), entry.checked
        checked = {"1h": c[0] + now, "24h": c[1] + both, "7d": c[2] + both, "30d": c[3] + both}
    last_fired = text_or_none(last)
    err = orjson.loads(text) if (text := text_or_none(error)) else None
    return {"last_fired_at": last_fired, "fired_24h": fired["24h"],
            "usage": {"fired": fired, "last_fired_at": last_fired, "checked": checked,
                      "last_error": err}}


@guarded
async def rule_stats(store: Store, workspace: str, rules: list[dict[str, Any]],
                     now_hour: int) -> dict[str, dict[str, Any]]:
    """{rule id: {"last_fired_at", "fired_24h", "usage"}} for `rules` (dicts with "id" and
    "created_at"). `usage`: {"fired": {"1h", "24h", "7d", "30d"}, "last_fired_at", "checked",
    "last_error"}; `checked` comes from the hourly "c:<hour>" buckets (workers add them in
    batches, catalog.add_rule_checks) and `last_error` from "error" (JSON {at, message}, written
    by the apply transaction); each is null until there is a first one."""
    made_of = (*(text_or_none(v) for v in await store.redis.mget(
        [K.rules_rev(workspace), K.rule_fires_version(workspace)])), now_hour)
    kept_answer = _answers.get(store, workspace)
    if kept_answer is None or kept_answer[0] != made_of:   # (read before the hashes: a write
        kept_answer = (made_of, {})                         # after this moves it for the next)
        _answers.put(store, workspace, kept_answer)
    shown: dict[str, dict[str, Any]] = kept_answer[1]
    missing = [r for r in rules if str(r["id"]) not in shown]
    if missing:
        shown.update(await _read(store, workspace, missing, now_hour))
    return {rid: shown[rid] for rid in dict.fromkeys(str(r["id"]) for r in rules)}


# Answers kept per workspace while nothing they are made of moved (keys.rule_fires_version, the
# rules revision, the hour): a listing of a workspace whose rules neither fired nor were checked
# since reads one MGET. (Shared dicts: callers copy before changing one.)
_answers: Kept[str, tuple[Any, dict[str, dict[str, Any]]]] = Kept(MAX_WORKSPACES)


async def _read(store: Store, workspace: str, rules: list[dict[str, Any]],
                now_hour: int) -> dict[str, dict[str, Any]]:
    """The stats of `rules` from the store: the kept settled sums brought to `now_hour`, plus
    the fresh fields."""
    kept, lock = _kept_for(store, workspace)
    async with lock:   # concurrent first reads of a workspace read its hashes whole once
        await _settle(store, workspace, kept, rules, now_hour)
    fields = [f"h:{now_hour}", f"h:{now_hour - 1}", f"c:{now_hour}", f"c:{now_hour - 1}", "last", "error"]
    out: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(str(r["id"]) for r in rules))
    for start in range(0, len(unique), FRESH_PER_TRIP):
        chunk = unique[start:start + FRESH_PER_TRIP]
        keys = [K.rule_stats(workspace, rid) for rid in chunk]
        if store.embedded:   # (the in-process store runs no Lua)
            async with store.redis.pipeline(transaction=False) as p:
                for key in keys:
                    p.hmget(key, fields)
                replies = await p.execute()
        else:
            replies = await store.redis.eval(_FRESH, len(keys), *keys, *fields[:4])
        for rid, fresh in zip(chunk, replies, strict=True):
            out[rid] = _shown(kept.get(rid) or _EMPTY, fresh)
    return out


# Every rule's fresh fields in one reply (one command, not one a rule: redis-py's cost of a
# command was most of the read). KEYS = the rules' stats hashes; ARGV = the four bucket names.
_FRESH = """
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HMGET', KEYS[i], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'last', 'error')
end
return out
"""


_EMPTY = _Settled(0, None, [0] * len(_SPANS), [0] * len(_SPANS), False)


def unused() -> dict[str, Any]:
    """The stats of a rule just made (a new id: nothing can have counted it yet), unread."""
    return _shown(_EMPTY, [None] * 6)


async def _settle(store: Store, workspace: str, kept: dict[str, _Settled],
                  rules: list[dict[str, Any]], now_hour: int) -> None:
    """Bring the kept sums of `rules` to `now_hour`: moved on by the hours passed, or read whole."""
    ids = [str(r["id"]) for r in rules]
    created = {str(r["id"]): r.get("created_at") for r in rules}
    whole, rolled = [], []
    for rid in dict.fromkeys(ids):
        entry = kept.get(rid)
        if entry is None or entry.created != created[rid] or not 0 <= now_hour - entry.hour <= ROLL_MAX_H:
            whole.append(rid)
        elif entry.hour != now_hour:
            rolled.append(rid)
    for start in range(0, len(whole), WHOLE_PER_TRIP):
        chunk = whole[start:start + WHOLE_PER_TRIP]
        keys = [K.rule_stats(workspace, rid) for rid in chunk]
        if store.embedded:   # (the in-process store runs no Lua: the hashes come here whole)
            async with store.redis.pipeline(transaction=False) as p:
                for key in keys:
                    p.hgetall(key)
                sums = [_whole(text_map(raw), now_hour) for raw in await p.execute()]
        else:
            began = time.monotonic()
            sums = [[_num(v) for v in row] for row in
                    await store.redis.eval(_WHOLE, len(keys), *keys, now_hour, FRESH_H)]
            # paced: as long again idle as the call took, so a cold listing of 1,000 busy rules
            # (1-2 s of the store's script time) is at most half of what the store, and the
            # cores it shares, do meanwhile for every other workspace
            await asyncio.sleep(time.monotonic() - began)
        for rid, (_, d1, d7, d30, c1, c7, c30, has_checks) in zip(chunk, sums, strict=True):
            kept[rid] = _Settled(now_hour, created[rid], [0, d1, d7, d30], [0, c1, c7, c30],
                                 bool(has_checks))
    for start in range(0, len(rolled), FRESH_PER_TRIP):
        chunk = rolled[start:start + FRESH_PER_TRIP]
        async with store.redis.pipeline(transaction=False) as p:
            plans = []
            for rid in chunk:
                hours = _roll_hours(kept[rid], now_hour)
                plans.append((rid, hours))
                p.hmget(K.rule_stats(workspace, rid), [f"h:{h}" for h in hours] + [f"c:{h}" for h in hours])
            for (rid, hours), values in zip(plans, await p.execute(), strict=True):
                _roll(kept[rid], now_hour, hours, values)
