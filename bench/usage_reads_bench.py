"""What GET /v1/stats/rules and GET /v1/rules' usage cost the event loop at 1,000 busy rules.

Each rule's stats hash as a month of fires leaves it (744 hourly fire buckets, 744 check buckets,
32 daily counters) and the workspace's packed day counters; then the reads behind
`GET /v1/stats/rules?days=30` (the rule ids, then every rule's 30 days) and behind
`GET /v1/rules?unused_for=30d` (every rule's usage windows), timed in this process: CPU ms a
request (what the loop every workspace shares spends), median of `--rounds`. Runs on either tree
(the reads of main and of the branch are called by what each tree names them), so
`PYTHONPATH=<tree>` picks the side:

    PYTHONPATH=$PWD python bench/usage_reads_bench.py --db 11 [--rules 1000] [--rounds 7] [--moving]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

import orjson

from server.settings import Settings
from server.store import catalog, stats
from server.store import keys as K
from server.store.connect import close_store, open_store

WS = "ws_usage_bench"


async def _setup(store: Any, n: int, now_hour: int) -> None:
    r, today = store.redis, now_hour // 24
    await r.delete(*[k async for k in r.scan_iter(match=f"df:{{ws:{WS}}}*", count=1000)] or ["-"])
    for start in range(0, n, 50):
        async with r.pipeline(transaction=False) as p:
            for i in range(start, min(n, start + 50)):
                rid = f"r{i:04d}"
                p.hset(K.rules(WS), rid, orjson.dumps({
                    "id": rid, "name": rid, "position": i, "created_at": "2026-10-01T00:00:00Z",
                    "enabled": True, "triggers": ["ticket.updated"],
                    "actions": [{"type": "add_tags", "tags": ["x"]}]}).decode())
                m: dict[str, Any] = {f"h:{h}": 3 for h in range(now_hour - 743, now_hour + 1)}
                m.update({f"c:{h}": 9 for h in range(now_hour - 743, now_hour + 1)})
                m.update({f"d:{d}": 72 for d in range(today - 31, today + 1)})
                m.update({"dsince": 0, "last": "2026-12-03T12:00:00Z"})
                p.hset(K.rule_stats(WS, rid), mapping=m)
                for d in range(today - 31, today + 1):   # (main has no such keys: unread there)
                    p.hset(f"df:{{ws:{WS}}}:rule-fires:{d}", rid, 72)
            await p.execute()
    await r.set(f"df:{{ws:{WS}}}:rule-fires:since", 0)


async def _cpu_ms(fn: Any, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        c0 = time.process_time()
        await fn()
        out.append((time.process_time() - c0) * 1000)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=int, default=11)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--moving", action="store_true",
                    help="the workspace's counters move before every request (nothing kept holds)")
    args = ap.parse_args()
    os.chdir(tempfile.mkdtemp())   # (a secrets key file the store may write goes there)
    store = await open_store(Settings.from_env({"DESKFLOW_REDIS_URL": f"redis://127.0.0.1:6379/{args.db}"}))
    # the tests' DB lock (tests/testkit.claim_redis_db takes DBs 1-11): a test run would flush
    # this DB under the benchmark, and the benchmark's keys are no test's
    token = f"usage-bench-{os.getpid()}"
    while not await store.redis.set(_TEST_LOCK, token, nx=True, ex=600):
        await asyncio.sleep(0.5)
    try:
        await _run(store, args)
    finally:
        if await store.redis.get(_TEST_LOCK) == token:
            await store.redis.delete(_TEST_LOCK)
        await close_store(store)


_TEST_LOCK = "deskflow-test:db-lock"


async def _run(store: Any, args: argparse.Namespace) -> None:
    now_hour = int(time.time() // 3600)
    await _setup(store, args.rules, now_hour)
    branch = hasattr(stats, "rules_chart")

    async def stats_rules() -> None:
        if branch:
            if args.moving:   # (a batch of fires written before each request: nothing kept holds)
                await store.redis.incr(f"df:{{ws:{WS}}}:rule-fires:v")
            ids, rows = await stats.rules_chart(store, WS, now_hour, 30)
        else:
            ids = [str(r["id"]) for r in await catalog.list_rules(store, WS)]
            rows = await stats.rules_per_day(store, WS, ids, now_hour, 30)
        orjson.dumps({"rules": dict(zip(ids, rows, strict=True))})
        assert sum(map(sum, rows)) == 72 * 30 * args.rules

    async def unused() -> None:
        rules = await catalog.list_rules(store, WS)
        if branch:
            from server.store import rule_usage
            if args.moving:
                await store.redis.incr(f"df:{{ws:{WS}}}:rule-fires:v")
            got = await rule_usage.rule_stats(store, WS, rules, now_hour)
        else:
            got = await catalog.rule_stats(store, WS, [r["id"] for r in rules], now_hour)  # type: ignore[attr-defined]
        assert all(v["usage"]["fired"]["30d"] == 3 * 720 for v in got.values())

    side = "branch" if branch else "main"
    for name, fn in (("GET /v1/stats/rules?days=30", stats_rules),
                     ("GET /v1/rules?unused_for=30d (usage)", unused)):
        first = await _cpu_ms(fn, 1)
        rest = await _cpu_ms(fn, args.rounds)
        print(f"{side:6} {name:40} first {first[0]:8.1f} ms CPU, then median "
              f"{statistics.median(rest):7.1f} ms (min {min(rest):.1f}, max {max(rest):.1f})")


if __name__ == "__main__":
    asyncio.run(main())
