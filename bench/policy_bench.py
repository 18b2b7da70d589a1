"""The per-event policy read: specs + text-keyed cache (before) vs revision counter + PolicyCache.

    python bench/policy_bench.py              # 0, 5, 20 and 100 policies; a few minutes
    python bench/policy_bench.py --quick      # smoke run

Needs the real Redis (DESKFLOW_POLICY_BENCH_REDIS_URL, default redis://127.0.0.1:6379/13; only
this benchmark's workspace keys are written, and deleted after).

What one event's load does for its SLA policies and guard limits, both ways, on one store:

* **old** -- what server/store/tickets.load and server/apply.Applier did before the policy
  revision (kept here as `_TextCache`, a copy of the removed Applier._policies/_limits): the
  load's round trip (MGET marker, ticket, rules revision) also carried HGETALL sla-policies and GET
  guards; every spec was parsed and sorted, then looked up by its stored text (orjson, sorted
  keys), and the limits by theirs.
* **new** -- the same round trip's MGET names the policy revision as a fourth key (no HGETALL, no
  GET), then PolicyCache.get(store, workspace, revision) answers from memory.

A third line, **new, own trip**, reads the counter in a round trip of its own (GET) before the
cache: the cost if the counter did not ride in the load.

Each workspace has n policies with business hours (so the specs are not trivially small) and
guard limits set. Runs are interleaved: old, new, new-own-trip, repeated `--rounds` times, each
round `--events` sequential loads; the table gives the median over rounds of microseconds per
load and events/s, and new's speed-up over old measured in the same rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rules import RuleError  # noqa: E402
from rules.sla import SlaPolicy, compile_policy  # noqa: E402
from server.guards import DEFAULT_LIMITS, GuardLimits  # noqa: E402
from server.policy_cache import PolicyCache  # noqa: E402
from server.settings import Settings  # noqa: E402
from server.store import guards as G  # noqa: E402
from server.store import keys as K  # noqa: E402
from server.store import sla as S  # noqa: E402
from server.store.connect import Store, close_store, open_store  # noqa: E402

URL = os.environ.get("DESKFLOW_POLICY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
HOURS = {"timezone": "Europe/Oslo", "week": {d: [["08:00", "12:00"], ["13:00", "17:00"]]
                                             for d in ("mon", "tue", "wed", "thu", "fri")},
         "holidays": ["2026-12-24", "2026-12-25", "2026-12-26", "2026-12-31", "2027-01-01"]}
GUARDS = {"send_caps": [{"count": 10, "per": "10m"}, {"count": 25, "per": "1h"}],
          "generated_per_minute": 20}


def _policy(i: int) -> dict[str, Any]:
    return {"name": f"policy-{i}", "position": i + 1, "revision": 1,
            "created_at": "2026-12-01T09:00:00.000Z", "updated_at": "2026-12-01T09:00:00.000Z",
            "conditions": {"all": [{"field": "priority", "op": "is", "value": "urgent"},
                                   {"field": "tags", "op": "includes", "value": f"tier-{i}"}]},
            "targets": {"first_response": "1h", "next_response": "4h", "resolution": "2d"},
            "warn_before": "15m", "business_hours": HOURS}


async def _seed(store: Store, ws: str, n: int) -> None:
    for i in range(n):
        await S.put_policy(store, ws, _policy(i))
    await G.put_spec(store, ws, GUARDS)
    await store.redis.set(K.rules_rev(ws), 7)
    await store.redis.set(K.ticket(ws, "T-1"), orjson.dumps({"id": "T-1", "version": 3}))


class _TextCache:
    """The per-event policy read before the policy revision (server/apply.py until then)."""

    def __init__(self) -> None:
        self._policy_cache: dict[bytes, SlaPolicy] = {}
        self._limits_cache: dict[str, GuardLimits] = {}

    def _policies(self, specs: list[dict[str, Any]]) -> list[SlaPolicy]:
        out = []
        for spec in specs:
            key = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
            policy = self._policy_cache.get(key)
            if policy is None:
                try:
                    policy = compile_policy(S.definition(spec))
                except RuleError:
                    continue
                if len(self._policy_cache) > 1000:
                    self._policy_cache.clear()
                self._policy_cache[key] = policy
            out.append(policy)
        return out

    def _limits(self, raw: str | None) -> GuardLimits:
        if raw is None:
            return DEFAULT_LIMITS
        limits = self._limits_cache.get(raw)
        if limits is None:
            parsed, _ = GuardLimits.from_spec(orjson.loads(raw))
            limits = parsed or DEFAULT_LIMITS
            if len(self._limits_cache) > 1000:
                self._limits_cache.clear()
            self._limits_cache[raw] = limits
        return limits


def _old(store: Store, ws: str, applier: _TextCache) -> Callable[[], Awaitable[Any]]:
    keys = [K.event_marker(ws, "E-1"), K.ticket(ws, "T-1"), K.rules_rev(ws)]

    async def load() -> Any:
        async with store.redis.pipeline(transaction=False) as p:   # as tickets.load does
            p.mget(keys)
            p.hgetall(K.sla_policies(ws))
            p.get(K.guards(ws))
            _, policies, guard_spec = await p.execute()
        specs = sorted((orjson.loads(v) for v in policies.values()),
                       key=lambda s: (s.get("position", 0), s["name"]))
        return applier._policies(specs), applier._limits(guard_spec)

    return load


def _new(store: Store, ws: str, cache: PolicyCache) -> Callable[[], Awaitable[Any]]:
    keys = [K.event_marker(ws, "E-1"), K.ticket(ws, "T-1"), K.rules_rev(ws), K.policy_rev(ws)]

    async def load() -> Any:
        async with store.redis.pipeline(transaction=False) as p:   # the counter rides the MGET
            p.mget(keys)
            (raws,) = await p.execute()
        return await cache.get(store, ws, int(raws[3] or 0))

    return load


def _new_own_trip(store: Store, ws: str, cache: PolicyCache) -> Callable[[], Awaitable[Any]]:
    keys = [K.event_marker(ws, "E-1"), K.ticket(ws, "T-1"), K.rules_rev(ws)]

    async def load() -> Any:
        async with store.redis.pipeline(transaction=False) as p:
            p.mget(keys)
            await p.execute()
        rev = await store.redis.get(K.policy_rev(ws))
        return await cache.get(store, ws, int(rev or 0))

    return load


async def _time(fn: Callable[[], Awaitable[Any]], events: int) -> float:
    """Microseconds per call over `events` sequential calls."""
    t0 = time.perf_counter()
    for _ in range(events):
        await fn()
    return (time.perf_counter() - t0) / events * 1e6


async def run(sizes: list[int], rounds: int, events: int) -> list[dict[str, Any]]:
    store = await open_store(Settings(redis_url=URL, data_file=None))
    applier = _TextCache()
    rows = []
    try:
        for n in sizes:
            ws = f"policy-bench-{n}"
            await _clear(store, ws)
            await _seed(store, ws, n)
            cache = PolicyCache()
            ways = {"old": _old(store, ws, applier), "new": _new(store, ws, cache),
                    "new, own trip": _new_own_trip(store, ws, cache)}
            old, new = await ways["old"](), await ways["new"]()   # warm both caches
            assert [p.name for p in old[0]] == [p.name for p in new[0]] and old[1] == new[1]
            assert len(new[0]) == n, "every seeded policy compiles"
            times: dict[str, list[float]] = {w: [] for w in ways}
            for _ in range(rounds):
                for way, fn in ways.items():
                    times[way].append(await _time(fn, events))
            ratios = [o / w for o, w in zip(times["old"], times["new"], strict=True)]
            for way, ts in times.items():
                us = statistics.median(ts)
                rows.append({"policies": n, "way": way, "us": us, "rate": 1e6 / us,
                             "ratio": statistics.median(ratios) if way == "new" else None})
            await _clear(store, ws)
    finally:
        await close_store(store)
    return rows


async def _clear(store: Store, ws: str) -> None:
    await store.redis.delete(K.sla_policies(ws), K.guards(ws), K.policy_rev(ws), K.rules_rev(ws),
                             K.ticket(ws, "T-1"))


def _table(rows: list[dict[str, Any]]) -> str:
    out = ["| policies | way | µs per load (median) | loads/s | old / new (same rounds) |",
           "| --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}×" if r["ratio"] is not None else ""
        out.append(f"| {r['policies']} | {r['way']} | {r['us']:.0f} | {r['rate']:,.0f} | {ratio} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--events", type=int, default=None)
    args = ap.parse_args()
    sizes = [0, 20] if args.quick else [0, 5, 20, 100]
    rounds = args.rounds or (3 if args.quick else 5)
    events = args.events or (300 if args.quick else 1000)
    print(f"{rounds} interleaved rounds of {events} sequential loads per way, Redis {URL}")
    print(_table(asyncio.run(run(sizes, rounds, events))))


if __name__ == "__main__":
    main()
