"""What the event loop feels while the worker recompiles a workspace's rules after a shape change:
the bucket's source compiled in the compile thread (before) vs in a compile process (now,
server/rulecache.py), and the loop with no compile at all (the floor).

    python bench/compile_stall_bench.py            # 1,000 dense rules, 5 rounds
    python bench/compile_stall_bench.py --quick    # 300 rules, 2 rounds

The worker's RuleCache on the embedded store, as in `serve`: 1,000 rules of 56 `subject contains`
conditions (tests/server/test_tenant_isolation.py `_dense_rule`: they fill a workspace's 4 MiB).
Each round drops one condition from another rule (a new bucket source: CPython compiles it again,
a rename would not) and asks the cache for the rules, while a ticker on the same event loop
sleeps 1 ms at a time and records how late each wake-up is: its longest lateness is the longest
time every other workspace's requests and events on that loop waited. **in thread** is the cache
with INLINE_SOURCE_BYTES raised past any source (every compile in its thread, holding the GIL
through CPython's one C call); **in process** is the cache as it ships. Rounds alternate the two;
the table gives the medians and each mode's worst. The collector is tuned as the worker's
(server/gcpolicy.py `tune_gc`): what is left in process is mostly its collections of the compile's
new objects (20-50 ms each at GC_YOUNG, one C call too), and `marshal.loads` (~10 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import server.rulecache as rulecache  # noqa: E402
from recompile_bench import dense_rule  # noqa: E402
from server.settings import Settings  # noqa: E402
from server.store import catalog  # noqa: E402
from server.store import revisions as R  # noqa: E402
from server.store.connect import close_store, open_store  # noqa: E402


async def _put_all(store: Any, ws: str, rules: list[dict[str, Any]]) -> None:
    def compute(current: dict[str, dict[str, Any]]) -> list[Any]:
        return [R.Change(r["id"], dict(r), current.get(r["id"]),
                         "update" if r["id"] in current else "create") for r in rules]
    await R.write(store, ws, R.RULE, {"key_id": None, "key_name": "bench"}, compute)


async def _felt(work: Any) -> tuple[float, float]:
    """(wall seconds of `work`, the ticker's longest lateness in ms meanwhile)."""
    late: list[float] = [0.0]
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            late[0] = max(late[0], time.perf_counter() - t - 0.001)

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    await work()
    wall = time.perf_counter() - t0
    done.set()
    await tick
    return wall, late[0] * 1000


async def run(n_rules: int, rounds: int) -> list[str]:
    from server.gcpolicy import tune_gc

    tune_gc()   # as the worker's start does: the collector's young generation at GC_YOUNG
    store = await open_store(Settings(redis_url=None, data_file=None, root_token="bench-root"))
    try:
        rules = [dense_rule(i) for i in range(n_rules)]
        caches: dict[str, rulecache.RuleCache] = {}
        wss: dict[str, str] = {}
        for mode in ("in thread", "in process"):
            ws, _ = await catalog.create_workspace(store, mode)
            wss[mode] = ws["id"]
            await _put_all(store, ws["id"], rules)
            caches[mode] = rulecache.RuleCache(store)
        inline = rulecache.INLINE_SOURCE_BYTES
        figures: dict[str, list[tuple[float, float]]] = {m: [] for m in ("floor", *caches)}
        for mode, cache in caches.items():   # the first compile (and the process's start): not measured
            rulecache.INLINE_SOURCE_BYTES = 1 << 40 if mode == "in thread" else inline
            await cache.get(wss[mode])
        for r in range(rounds):
            figures["floor"].append(await _felt(lambda: asyncio.sleep(0.5)))
            for mode, cache in caches.items():
                rulecache.INLINE_SOURCE_BYTES = 1 << 40 if mode == "in thread" else inline
                k = (r * 7 + 3) % n_rules
                await catalog.put_rule(store, wss[mode], dense_rule(k, 55 - r % 40))
                figures[mode].append(await _felt(lambda c=cache, w=wss[mode]: c.get(w)))
                await catalog.put_rule(store, wss[mode], dense_rule(k))
                await cache.get(wss[mode])   # back as it was (not measured)
        rulecache.INLINE_SOURCE_BYTES = inline
        for cache in caches.values():
            await cache.aclose()
    finally:
        await close_store(store)
    med = {m: (statistics.median(w for w, _ in f), statistics.median(s for _, s in f),
               max(s for _, s in f)) for m, f in figures.items()}
    lines = [f"- {n_rules} dense rules (56 `subject contains` each), one condition dropped from "
             f"another rule each round, {rounds} rounds alternating; Python "
             f"{platform.python_version()}, {platform.machine()}",
             "",
             "| compile | wall s (median) | longest loop stall, ms (median) | worst |",
             "| --- | ---: | ---: | ---: |"]
    for mode in ("in thread", "in process", "floor"):
        wall, stall, worst = med[mode]
        lines.append(f"| {mode if mode != 'floor' else 'none (floor: 0.5 s of sleep)'} | "
                     f"{wall:.2f} | {stall:.1f} | {worst:.1f} |")
    lines += ["", f"in thread / in process, longest stall: **{med['in thread'][1] / med['in process'][1]:.0f}×**"]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    lines = asyncio.run(run(300 if args.quick else 1000, 2 if args.quick else 5))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
