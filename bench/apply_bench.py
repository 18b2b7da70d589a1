"""Apply benchmark (issue 14 item 3): one `deskflow worker` process against the bare consumer floor,
on the same queued events and the same rules engine, in one invocation.

    python bench/apply_bench.py              # 6,000 events over 600 tickets, 100 rules
    python bench/apply_bench.py --quick      # 1,500 events
    python bench/apply_bench.py --record     # also rewrite our section of bench/RESULTS.md

Needs the real Redis (DESKFLOW_APPLY_BENCH_REDIS_URL, default redis://127.0.0.1:6379/14, flushed
before and after). The events are queued before either consumer starts; each consumer runs in a
process of its own, and its rate is measured from its feed entries' Redis timestamps (first to
last), so process start-up is outside the figure.

The floor is what the same engine does with minimal I/O: one asyncio task per partition; per
entry WATCH + MGET of marker and ticket, merge, the same `compile_rules` ruleset's `evaluate`, one
MULTI of SET ticket / SET marker / SET run / LPUSH ticket-runs / XADD feed; XACK per batch.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

URL = os.environ.get("DESKFLOW_APPLY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ["DESKFLOW_BENCH_REDIS_URL"] = URL
HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("DESKFLOW_BENCH_ROOT", HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import ingest_bench as ib  # noqa: E402
import orjson  # noqa: E402

SECTION = "## Apply: worker vs floor (bench/apply_bench.py)"
PARTITIONS = 16


def _events(n: int, tickets: int) -> list[dict[str, Any]]:
    rnd = random.Random(14)
    out = []
    for i in range(n):
        e = ib.make_event(i, rnd, "ap")
        e["ticket"]["id"] = f"T-{rnd.randrange(tickets)}"
        out.append(e)
    return out


async def _queue(events: list[dict[str, Any]]) -> str:
    from server.settings import Settings
    from server.store import events as ev
    from server.store.connect import close_store, open_store

    ws, _, _ = await ib._setup(100)
    store = await open_store(Settings(redis_url=URL, partitions=PARTITIONS))
    try:
        await ev.ensure_groups(store)
        for i in range(0, len(events), 500):
            await ev.append_events(store, ws, events[i:i + 500])
    finally:
        await close_store(store)
    return ws


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _rate(ws: str, n: int, proc: subprocess.Popen[bytes], timeout: float
                ) -> tuple[float, float]:
    """(events/s from the feed's first to last entry, the consumer's CPU ms per event between
    its first and its last applied event). CPU per event is the steadier figure on a shared
    machine: it does not count the time the process waited for a core."""
    import redis.asyncio as aioredis

    from server.store import keys as K

    r = aioredis.Redis.from_url(URL, decode_responses=True)
    try:
        deadline = time.monotonic() + timeout
        samples: list[tuple[int, float]] = []   # (events applied, CPU s) while it runs
        while True:
            done = await r.xlen(K.feed(ws))
            try:
                cpu = _cpu_s(proc.pid)
                if done and proc.poll() is None:
                    samples.append((done, cpu))
            except (OSError, IndexError):
                pass   # it exited: the last sample stands
            if done >= n:
                break
            if proc.poll() not in (None, 0) or time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {n} applied")
            await asyncio.sleep(0.02)
        first = (await r.xrange(K.feed(ws), count=1))[0][0]
        last = (await r.xrevrange(K.feed(ws), count=1))[0][0]
        span = (int(last.split("-")[0]) - int(first.split("-")[0])) / 1000
        (d0, c0), (d1, c1) = (samples[0], samples[-1]) if samples else ((0, 0.0), (0, 0.0))
        cpu_ms = (c1 - c0) * 1000 / (d1 - d0) if d1 > d0 else float("nan")
        return (n - 1) / max(span, 1e-3), cpu_ms
    finally:
        await r.aclose()


async def measure(kind: str, events: list[dict[str, Any]]) -> tuple[float, float]:
    ws = await _queue(events)
    # a long lease: trees before d49df2c dropped every partition at half its TTL when the lanes
    # renewed it at once, and a burst worker then quit with entries pending
    env = {**os.environ, "DESKFLOW_REDIS_URL": URL, "DESKFLOW_PARTITIONS": str(PARTITIONS),
           "DESKFLOW_LOG_LEVEL": "warning",
           # the tree measured first; the rest of ours after it (e.g. a directory with hiredis)
           "PYTHONPATH": os.pathsep.join([str(ROOT), *os.environ.get("PYTHONPATH", "").split(
               os.pathsep)]).rstrip(os.pathsep),
           "DESKFLOW_RECLAIM_IDLE_MS": "600000"}
    cmd = ([sys.executable, "-m", "server.cli", "worker", "--burst"] if kind == "worker"
           else [sys.executable, str(Path(__file__).resolve()), "--floor-consumer", ws])
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        return await _rate(ws, len(events), proc, 600)
    finally:
        try:
            proc.wait(120)   # both exit once the streams are drained
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(30)


# -- the floor ----------------------------------------------------------------------------------


async def floor_consumer(ws: str) -> None:
    import redis.asyncio as aioredis
    from redis.exceptions import WatchError

    from rules import compile_rules
    from server.automation import merge_event
    from server.store import catalog
    from server.store import keys as K
    from server.store.connect import close_store, open_store
    from server.settings import Settings

    store = await open_store(Settings(redis_url=URL, partitions=PARTITIONS))
    stored = await catalog.list_rules(store, ws)
    await close_store(store)
    ruleset = compile_rules(stored)
    r = aioredis.Redis.from_url(URL, decode_responses=True, max_connections=64)

    async def partition(n: int) -> None:
        stream = K.stream(n)
        while True:
            got = await r.xreadgroup(K.GROUP, "floor", {stream: ">"}, count=100)
            entries = [(i, f) for _, batch in got or [] for i, f in batch]
            if not entries:
                return
            for entry_id, fields in entries:
                event = orjson.loads(fields["e"])
                tid = event["ticket"]["id"]
                mk, tk = K.event_marker(ws, event["id"]), K.ticket(ws, tid)
                async with r.pipeline(transaction=True) as p:
                    while True:
                        try:
                            await p.watch(mk, tk)
                            raw_m, raw_t = await p.mget([mk, tk])
                            previous = orjson.loads(raw_t) if raw_t else None
                            merged = merge_event(previous, event)
                            ev = ruleset.evaluate(event, merged, previous=previous)
                            ticket = dict(ev.ticket, version=int((previous or {}).get("version", 0)) + 1)
                            run_id = f"run_{entry_id}"
                            run = {"id": run_id, "event_id": event["id"], "matched": list(ev.matched),
                                   "changes": ev.changes, "effects": ev.effects}
                            p.multi()
                            p.set(tk, orjson.dumps(ticket))
                            p.set(mk, orjson.dumps({"status": "processed", "run_id": run_id}))
                            p.set(K.run(ws, run_id), orjson.dumps(run))
                            p.lpush(K.ticket_runs(ws, tid), run_id)
                            p.xadd(K.feed(ws), {"d": orjson.dumps({"event_id": event["id"],
                                                                  "changes": ev.changes})})
                            await p.execute()
                            break
                        except WatchError:
                            continue
            await r.xack(stream, K.GROUP, *[i for i, _ in entries])

    await asyncio.gather(*(partition(n) for n in range(PARTITIONS)))
    await r.aclose()


# -- main -------------------------------------------------------------------------------------


async def run(quick: bool, repeat: int = 1) -> list[str]:
    n, tickets = (1500, 150) if quick else (6000, 600)
    events = _events(n, tickets)
    runs: dict[str, list[tuple[float, float]]] = {"worker": [], "floor": []}
    for _ in range(repeat):   # alternating; the best of each (the run least disturbed)
        for kind in ("worker", "floor"):
            runs[kind].append(await measure(kind, events))
    (worker, _), (floor, _) = max(runs["worker"]), max(runs["floor"])
    worker_cpu = min(cpu for _, cpu in runs["worker"])
    floor_cpu = min(cpu for _, cpu in runs["floor"])
    await _flush()
    best = (f"; best of {repeat} alternating runs each (CPU ms/event of every run: worker "
            + ", ".join(f"{c:.2f}" for _, c in runs["worker"]) + "; floor "
            + ", ".join(f"{c:.2f}" for _, c in runs["floor"]) + ")") if repeat > 1 else ""
    return [f"- {n:,} events over {tickets} tickets, 100 rules, {PARTITIONS} partitions, "
            f"queued before each consumer starts ({platform.python_version()}, redis-py "
            f"{_parser()} for both, "
            f"{os.cpu_count()} cores, shared machine, load average {os.getloadavg()[0]:.1f}"
            f"{best}):",
            f"  - one `deskflow worker --burst` process: **{worker:,.0f} events/s**, "
            f"{worker_cpu:.2f} CPU ms/event",
            f"  - bare consumer floor (same engine, minimal I/O): **{floor:,.0f} events/s**, "
            f"{floor_cpu:.2f} CPU ms/event",
            f"  - ratio worker / floor: **{worker / floor:.2f}×** by rate, "
            f"**{floor_cpu / worker_cpu:.2f}×** by CPU per event (floor ÷ worker)"]


def _parser() -> str:
    """Which reply parser redis-py uses here (and so in both consumers, started with this path),
    and which command packer the tree measured gives its asyncio connections (both consumers open
    their store through its server/store/connect.py)."""
    from redis.utils import HIREDIS_AVAILABLE

    # (the consumers run ROOT's tree: a tree before server/store/packing.py packs in Python)
    packer = "hiredis" if HIREDIS_AVAILABLE and (ROOT / "server/store/packing.py").exists() else "Python"
    return ("with hiredis" if HIREDIS_AVAILABLE else "pure Python") + f", commands packed by {packer}"


async def _flush() -> None:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(URL)
    await r.flushdb()
    await r.aclose()


def record(lines: list[str]) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text()
    block = "\n".join([SECTION, "", "`python bench/apply_bench.py`", "", *lines, ""]) + "\n"
    if SECTION in text:
        head, rest = text.split(SECTION, 1)
        tail = rest.split("\n## ", 1)
        text = head + block + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="run each consumer N times, alternating, and give the best of each")
    ap.add_argument("--floor-consumer", metavar="WORKSPACE")
    args = ap.parse_args()
    if args.floor_consumer:
        asyncio.run(floor_consumer(args.floor_consumer))
        return 0
    lines = asyncio.run(run(args.quick, args.repeat))
    print("\n".join(lines))
    if args.record:
        record(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
