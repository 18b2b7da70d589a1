"""The fired rules' usage -- hourly fire counters, when each last fired, its recent runs -- kept
by the worker in memory and written in batches (store/keys.py `rule_stats`, `rule_runs`).

Why not in each event's commit: an event fires about a dozen rules of a hundred, and each fire
was five commands inside the commit's script (LPUSH, LTRIM, HINCRBY, HSET, HDEL) on keys of
their own. Batched, a rule that fired k times since the last write costs those five commands
once. The worker writes a batch with its next round trip to the store (store/coalesce.py), so
the counters trail the commits by one round trip: a worker killed in between loses that batch of
usage counts, never an event (the run records, written by the commit, are exact and complete).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from server.store import keys as K

__all__ = ["RuleUsage", "Usage", "queue_writes", "SCRIPT_RULES"]

# Hourly fire counters are kept 31 days (rule_usage.USAGE_WINDOWS reads up to 30 days back).
KEEP_HOURS = 31 * 24
# Daily fire counters ("d:<day>"), kept 32 days, beside the hourly ones: GET /v1/stats/rules
# reads 30 fields a rule, not 720 (at 1,000 rules the hours were 720,000 fields, ~0.3-0.8 s of
# the event loop every workspace shares, a request). "dsince" is the first day whose fires all
# went to the daily counter: 0 for a hash this code made, else the day after its first write to
# the hash (no backfill: the days before are read from the hours, only in hashes from before).
# A hash without it predates the daily counters. A hash of an old rule first touched by the
# checks counter (catalog.add_rule_checks, plain commands) gets 0: its fires from before the
# daily counters leave the chart (not the usage windows) for at most 30 days after the upgrade.
KEEP_DAYS = 32
DAY_FIELD = "d:"
SINCE_FIELD = "dsince"


@dataclass
class RuleUsage:
    hours: collections.Counter[int] = field(default_factory=collections.Counter)
    last: str = ""                                   # RFC 3339 time of the latest fire
    runs: list[str] = field(default_factory=list)    # run ids, oldest first


class Usage:
    """Fires not yet written, per (workspace, rule id)."""

    def __init__(self, runs_kept: int) -> None:
        self.runs_kept = max(1, runs_kept)
        self._rules: dict[tuple[str, str], RuleUsage] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def add(self, workspace: str, run_id: str, at: str, hour: int, fired: list[Any]) -> None:
        rules, kept = self._rules, self.runs_kept   # (about a dozen fires an event)
        for rule_id in fired:
            key = (workspace, str(rule_id))
            u = rules.get(key)
            if u is None:
                u = rules[key] = RuleUsage()
            u.hours[hour] += 1
            if at > u.last:
                u.last = at
            runs = u.runs
            runs.append(run_id)
            if len(runs) > kept:
                del runs[:-kept]

    def take(self) -> dict[tuple[str, str], RuleUsage]:
        taken, self._rules = self._rules, {}
        return taken

    def put_back(self, taken: dict[tuple[str, str], RuleUsage]) -> None:
        """A batch that could not be written joins the next one (older fires first)."""
        for key, old in taken.items():
            new = self._rules.get(key)
            if new is None:
                self._rules[key] = old
                continue
            new.hours.update(old.hours)
            new.last = max(new.last, old.last)
            new.runs[:0] = old.runs
            if len(new.runs) > self.runs_kept:
                del new.runs[:-self.runs_kept]


# Rules written by one script call. Redis runs a script alone: a workspace of 1,000 rules that
# all fire on every event made one batch a script of ~8,000 commands, 10-57 ms during which no
# other workspace's command ran (124 of them in 50 s, SLOWLOG; tests/server/test_attack_usage.py).
# In calls of this many rules, other clients' commands go between them; still one round trip.
SCRIPT_RULES = 32

# A workspace's batch in script calls of at most SCRIPT_RULES rules each.
# KEYS = for each rule: its run list, its stats hash ('d:' and 'dsince' are DAY_FIELD, SINCE_FIELD);
#   then the workspace's keys.rule_fires_since, keys.rule_fires_version and, for each day the
#   batch touches, its keys.rule_fires_day (the packed day counters GET /v1/stats/rules reads)
# ARGV[1] = the last run-list index kept, ARGV[2] = hours kept, ARGV[3] = days kept, ARGV[4] = the
#   number of rules R, ARGV[5] = the number of days D, ARGV[6..5+D] = those days, in the order of
#   their keys; then for each rule: its id, the number of run ids N, the N ids (oldest first), the
#   number of hours H, H pairs (hour, fires), last fired. Every call of a batch names all the
#   batch's days (the start day is the day after the batch's last, whichever call sets it).
_WRITE = """
local r_n, d_n = tonumber(ARGV[4]), tonumber(ARGV[5])
local packed, last_day = {}, 0
for j = 1, d_n do
  local day = tonumber(ARGV[5 + j])
  packed[day] = KEYS[2 * r_n + 2 + j]
  if day > last_day then last_day = day end
end
local i = 6 + d_n
for r = 1, r_n do
  local runs, stats = KEYS[2 * r - 1], KEYS[2 * r]
  local id = ARGV[i]
  local nr = tonumber(ARGV[i + 1])
  i = i + 1
  if nr > 0 then
    redis.call('LPUSH', runs, unpack(ARGV, i + 1, i + nr))
    redis.call('LTRIM', runs, 0, tonumber(ARGV[1]))
  end
  i = i + nr + 1
  local nh = tonumber(ARGV[i])
  local fresh = redis.call('EXISTS', stats) == 0   -- no hours from before the daily counters
  for h = 1, nh do
    local hour = tonumber(ARGV[i + 2 * h - 1])
    local day = math.floor(hour / 24)
    redis.call('HINCRBY', stats, 'h:' .. hour, ARGV[i + 2 * h])
    redis.call('HDEL', stats, 'h:' .. (hour - tonumber(ARGV[2])))
    redis.call('HINCRBY', stats, 'd:' .. day, ARGV[i + 2 * h])
    redis.call('HDEL', stats, 'd:' .. (day - tonumber(ARGV[3])))
    redis.call('HSETNX', stats, 'dsince', fresh and 0 or day + 1)
    redis.call('HINCRBY', packed[day], id, ARGV[i + 2 * h])
  end
  i = i + 2 * nh + 1
  redis.call('HSET', stats, 'last', ARGV[i])
  i = i + 1
end
for day, key in pairs(packed) do
  redis.call('EXPIRE', key, tonumber(ARGV[3]) * 86400)
end
if d_n > 0 then   -- a workspace from before the packed counters: complete from the next day on
  redis.call('SETNX', KEYS[2 * r_n + 1], last_day + 1)
end
redis.call('INCR', KEYS[2 * r_n + 2])
return 1
"""


def queue_writes(p: Any, taken: dict[tuple[str, str], RuleUsage], runs_kept: int, *,
                 scripted: bool = True) -> None:
    """Queue a batch's writes on pipeline `p`: script calls of at most SCRIPT_RULES rules of
    one workspace each (a workspace's keys share a slot), or with `scripted=False` (the
    in-process store, which runs no Lua) plain commands. Beside each rule's own counters, its
    fires go to the workspace's packed day counters (keys.rule_fires_day); a workspace whose
    packed counters have no start yet (one from before them) starts them the day after the
    batch's last; the workspace's keys.rule_fires_version moves (a chart answer kept by an API
    process is one of before)."""
    by_ws: dict[str, list[tuple[str, RuleUsage]]] = collections.defaultdict(list)
    for (workspace, rule_id), u in taken.items():
        by_ws[workspace].append((rule_id, u))
    for workspace, rules in by_ws.items():
        days = sorted({hour // 24 for _, u in rules for hour in u.hours})
        if scripted:
            for start in range(0, len(rules), SCRIPT_RULES):
                _queue_script(p, workspace, rules[start:start + SCRIPT_RULES], runs_kept, days)
            continue
        for rule_id, u in rules:
            runs, stats = K.rule_runs(workspace, rule_id), K.rule_stats(workspace, rule_id)
            if u.runs:
                p.lpush(runs, *u.runs)   # the newest ends at the head, as one LPUSH a fire left it
                p.ltrim(runs, 0, runs_kept - 1)
            for hour, n in sorted(u.hours.items()):
                p.hincrby(stats, f"h:{hour}", n)
                p.hdel(stats, f"h:{hour - KEEP_HOURS}")
                p.hincrby(stats, f"{DAY_FIELD}{hour // 24}", n)
                p.hdel(stats, f"{DAY_FIELD}{hour // 24 - KEEP_DAYS}")
                p.hsetnx(stats, SINCE_FIELD, 0)   # (the in-process store: nothing from before)
                p.hincrby(K.rule_fires_day(workspace, hour // 24), rule_id, n)
            p.hset(stats, "last", u.last)
        for day in days:
            p.expire(K.rule_fires_day(workspace, day), KEEP_DAYS * 86400)
        if days:
            p.setnx(K.rule_fires_since(workspace), days[-1] + 1)
        p.incr(K.rule_fires_version(workspace))


def _queue_script(p: Any, workspace: str, rules: list[tuple[str, RuleUsage]], runs_kept: int,
                  days: list[int]) -> None:
    keys: list[str] = []
    args: list[Any] = [runs_kept - 1, KEEP_HOURS, KEEP_DAYS, len(rules), len(days), *days]
    for rule_id, u in rules:
        keys += [K.rule_runs(workspace, rule_id), K.rule_stats(workspace, rule_id)]
        args += [rule_id, len(u.runs), *u.runs, len(u.hours)]
        for hour, n in sorted(u.hours.items()):
            args += [hour, n]
        args.append(u.last)
    keys += [K.rule_fires_since(workspace), K.rule_fires_version(workspace),
             *(K.rule_fires_day(workspace, d) for d in days)]
    p.eval(_WRITE, len(keys), *keys, *args)
