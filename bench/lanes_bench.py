"""Lanes benchmark: what one partition's lane bookkeeping costs while one workspace floods it.

    python bench/lanes_bench.py [--flood 5000] [--victims 50] [--rounds 3]

One partition's Lanes (server/lanes.py) with the worker's bounds (8 lanes, 4 per workspace)
holds `flood` entries of one workspace, each its own ticket (the partition's MAX_HELD), plus
`victims` entries of another workspace; every apply is a no-op that yields once, so what is
timed is the bookkeeping alone: starting lanes, `ready` and `backlog` asked once per finished
entry (as the partition loop's settle does). Measured against the same class as it was before
its counts were kept as they change (server/lanes.py at commit b447425, read from git) in the same run,
interleaved, and a bare floor (an asyncio.Semaphore(8) over the same no-op applies, no per-ticket
order, no share). Prints per-event µs for each, and the victim's last entry's finish time.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from server import lanes as lanes_now  # noqa: E402

BEFORE = "b447425"   # the last commit whose Lanes recounted its queues on every ask


def _lanes_before() -> type | None:
    """Lanes as it was at BEFORE, from git (None outside a clone with that history)."""
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE}:server/lanes.py"],
                             capture_output=True, check=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType("lanes_before")
    exec(compile(src, f"{BEFORE}:server/lanes.py", "exec"), mod.__dict__)
    return mod.Lanes  # type: ignore[no-any-return]


def _entries(flood: int, victims: int) -> list[tuple[str, dict[str, str]]]:
    out = []
    for i in range(flood):
        out.append((f"{i}-0", {"w": "attacker", "e": orjson.dumps({"ticket": {"id": f"A-{i}"}}).decode()}))
    for j in range(victims):   # the victim's entries arrive after the flood
        out.append((f"{flood + j}-0", {"w": "victim", "e": orjson.dumps({"ticket": {"id": f"V-{j}"}}).decode()}))
    return out


async def _run(cls: type, entries: list[tuple[str, dict[str, str]]]) -> tuple[float, float]:
    victim_done = 0.0
    t0 = time.perf_counter()

    async def apply(entry_id: str, fields: dict[str, str]) -> None:
        nonlocal victim_done
        await asyncio.sleep(0)
        if fields["w"] == "victim":
            victim_done = time.perf_counter() - t0

    lanes = cls(apply, lanes=8, share=4)
    lanes.add(entries)
    while lanes.busy:
        await lanes.next(None)
        _ = lanes.ready, lanes.backlog   # what the partition loop asks each round
    return time.perf_counter() - t0, victim_done


async def _floor(entries: list[tuple[str, dict[str, str]]]) -> tuple[float, float]:
    sem = asyncio.Semaphore(8)
    victim_done = 0.0
    t0 = time.perf_counter()

    async def one(fields: dict[str, str]) -> None:
        nonlocal victim_done
        async with sem:
            await asyncio.sleep(0)
            if fields["w"] == "victim":
                victim_done = time.perf_counter() - t0
    await asyncio.gather(*(one(f) for _, f in entries))
    return time.perf_counter() - t0, victim_done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flood", type=int, default=lanes_now.MAX_HELD)
    ap.add_argument("--victims", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    entries = _entries(args.flood, args.victims)
    n = len(entries)
    before = _lanes_before()
    results: dict[str, list[tuple[float, float]]] = {"lanes (now)": [], f"lanes ({BEFORE})": [], "floor": []}
    if before is None:
        print(f"(no git history with {BEFORE}: the before row is left out)")
        del results[f"lanes ({BEFORE})"]
    for _ in range(args.rounds):
        results["lanes (now)"].append(asyncio.run(_run(lanes_now.Lanes, entries)))
        if before is not None:
            results[f"lanes ({BEFORE})"].append(asyncio.run(_run(before, entries)))
        results["floor"].append(asyncio.run(_floor(entries)))
    now = statistics.median(t for t, _ in results["lanes (now)"])
    print(f"{args.flood:,} entries of one workspace + {args.victims} of another, one partition, "
          f"median of {args.rounds} rounds")
    print("| lanes | µs per entry | victim's last entry done (s) | × now |")
    print("| --- | ---: | ---: | ---: |")
    for name, rs in results.items():
        total = statistics.median(t for t, _ in rs)
        victim = statistics.median(v for _, v in rs)
        print(f"| {name} | {total / n * 1e6:,.1f} | {victim:.3f} | {total / now:.2f} |")


if __name__ == "__main__":
    main()
