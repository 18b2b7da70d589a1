"""The one-time contact index build (issue 19, store/directory.py): what a workspace with many
contacts from an older version, listing them for the first time, costs another workspace.

    python bench/contact_index_bench.py                # embedded store, 50,000 old contacts
    python bench/contact_index_bench.py --redis        # real Redis (DESKFLOW_INDEX_BENCH_REDIS_URL,
                                                       #  default redis://127.0.0.1:6379/13; only
                                                       #  this run's keys are deleted after)

Workspace A holds --contacts contacts written as an older version wrote them (record and
keys.contacts, no index). Workspace B (the victim) has 50 contacts in `vip`; its listing
(directory.list_group_contacts, what GET /v1/contacts?group=vip reads) is timed in rounds that
alternate, in the same run: `alone` (nothing else running) and `build` (A's background build,
IndexBuilds' own task, running; stopped at the round's end, its cursor kept in the store, so the
next build round continues it). The peer row, `inline`, is the same victim beside the old way: A's
whole backfill run as one call (what the first listing did before), repeated each build round.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.settings import Settings  # noqa: E402
from server.store import directory  # noqa: E402
from server.store import keys as K  # noqa: E402
from server.store.connect import close_store, open_store  # noqa: E402

URL = os.environ.get("DESKFLOW_INDEX_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


async def _seed(store: Any, ws: str, n: int) -> None:
    for start in range(0, n, 5000):
        async with store.redis.pipeline(transaction=False) as p:
            for i in range(start, min(n, start + 5000)):
                cid = f"C-{i:07d}"
                p.set(K.contact(ws, cid), orjson.dumps({"id": cid, "groups": ["vip"] if i % 3 == 0
                                                        else ["trial"], "custom": {}}))
                p.sadd(K.contacts(ws), cid)
            await p.execute()


async def _old_backfill(store: Any, ws: str) -> None:
    """The backfill as the first listing ran it before: the whole set in one call."""
    chunk: list[str] = []

    async def flush() -> None:
        raws = await store.redis.mget([K.contact(ws, c) for c in chunk])
        async with store.redis.pipeline(transaction=False) as p:
            for cid, raw in zip(chunk, raws, strict=True):
                if raw:
                    p.zadd(K.contacts_by_id(ws), {cid: 0})
                for g in (orjson.loads(raw).get("groups") or []) if raw else []:
                    p.zadd(K.group_members(ws, "contact", g), {cid: 0})
            await p.execute()
        chunk.clear()

    async for raw_id in store.redis.sscan_iter(K.contacts(ws), count=500):
        chunk.append(raw_id)
        if len(chunk) >= 500:
            await flush()
    if chunk:
        await flush()


async def _victim(store: Any, ws: str, seconds: float) -> list[float]:
    took: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        items, _ = await directory.list_group_contacts(store, ws, "vip", 50, 0)
        took.append((time.perf_counter() - t) * 1000)
        assert len(items) == 50
        await asyncio.sleep(0.005)
    return took


def _p(ms: list[float], q: float) -> float:
    ms = sorted(ms)
    return ms[min(len(ms) - 1, int(len(ms) * q))]


async def main(args: argparse.Namespace) -> None:
    store = await open_store(Settings(redis_url=URL if args.redis else None, data_file=None))
    a, b, old = "wsbench-idx-a", "wsbench-idx-b", "wsbench-idx-old"
    try:
        await _seed(store, a, args.contacts)
        await _seed(store, old, args.contacts)
        async with store.redis.pipeline(transaction=False) as p:
            for i in range(50):
                p.set(K.contact(b, f"B-{i}"), orjson.dumps({"id": f"B-{i}", "groups": ["vip"]}))
                p.zadd(K.group_members(b, "contact", "vip"), {f"B-{i}": 0})
            await p.execute()
        rows: dict[str, list[float]] = {"alone": [], "build": [], "inline": []}
        builds = directory.IndexBuilds(store)
        steps_s = 0.0
        for _ in range(args.rounds):
            rows["alone"] += await _victim(store, b, args.seconds)
            await store.redis.set(K.index_build_lease(a), "bench", px=60_000)
            task = asyncio.create_task(builds._run(a, "bench"))
            t0 = time.perf_counter()
            rows["build"] += await _victim(store, b, args.seconds)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            steps_s += time.perf_counter() - t0
            await store.redis.delete(K.index_build_lease(a))
            backfill = asyncio.create_task(_old_backfill(store, old))
            rows["inline"] += await _victim(store, b, args.seconds)
            await backfill
        progress = await directory.build_progress(store, a)
        print(f"{args.contacts} old contacts, {'Redis' if args.redis else 'embedded'}, "
              f"{args.rounds} rounds of {args.seconds}s per mode, victim = one page of 50 of B's vip")
        print("| mode | requests | p50 ms | p99 ms | p99 / alone p99 |")
        print("| --- | --- | --- | --- | --- |")
        base = _p(rows["alone"], 0.99)
        for mode, ms in rows.items():
            print(f"| {mode} | {len(ms)} | {statistics.median(ms):.1f} | {_p(ms, 0.99):.1f} | "
                  f"{_p(ms, 0.99) / base:.2f} |")
        print(f"build: {progress['indexed']} contacts indexed in {steps_s:.1f}s of build rounds "
              f"({progress['indexed'] / max(steps_s, 1e-9):.0f}/s), done={progress['done']}")
    finally:
        for ws in (a, b, old):
            async for key in store.redis.scan_iter(match=f"df:{{ws:{ws}}}:*", count=1000):
                await store.redis.delete(key)
        await close_store(store)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    asyncio.run(main(parser.parse_args()))
