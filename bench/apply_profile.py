"""Where one worker's time and Redis traffic go per event (issue 14): the apply benchmark's events,
applied by a `Worker(burst=True)` in this process, with every Redis reply and round trip counted.

    python bench/apply_profile.py                 # 1,500 events over 150 tickets, 100 rules
    python bench/apply_profile.py --cprofile 25   # also the 25 costliest functions (cumulative)
    python bench/apply_profile.py --cpu           # the worker's CPU per event, nothing counted

Needs the real Redis (DESKFLOW_APPLY_BENCH_REDIS_URL, default redis://127.0.0.1:6379/14, flushed
before and after). Counts are client-side (redis-py's connection: one `read_response` per reply,
one `send_packed_command` per round trip, commands by name as packed), so other users of the same
Redis server do not disturb them. `DESKFLOW_BENCH_ROOT=<tree>` profiles another checkout.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import collections
import io
import os
import pstats
import resource
import sys
import time
from typing import Any

import apply_bench as ab

# ingest_bench (imported by apply_bench) puts this checkout first on the path: the tree profiled
# is DESKFLOW_BENCH_ROOT's
sys.path.insert(0, str(ab.ROOT))
COUNTS: collections.Counter[str] = collections.Counter()
CPU: list[float] = []   # the process's CPU seconds during the worker's run
LOOP: list[float] = []  # of which the event loop's thread (the rest: the pass threads)
SWITCHES: list[tuple[int, int]] = []   # the process's context switches: voluntary, involuntary


def _count_traffic() -> None:
    """Wrap redis-py's asyncio connection so every reply, round trip and command is counted (the
    replies at the hiredis parser, which store/rawpipe.py reads from directly too, and its round
    trips, which do not go through send_packed_command)."""
    from redis._parsers.hiredis import _AsyncHiredisParser
    from redis.asyncio.connection import AbstractConnection

    read, send, pack = (_AsyncHiredisParser.read_response, AbstractConnection.send_packed_command,
                        AbstractConnection.pack_command)

    async def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["replies"] += 1
        return await read(self, *args, **kwargs)

    async def send_packed_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["round trips"] += 1
        return await send(self, *args, **kwargs)

    try:
        from server.store import rawpipe
    except ImportError:   # a tree before it
        rawpipe = None  # type: ignore[assignment]
    if rawpipe is not None:
        round_trip = rawpipe._round_trip

        async def counted_round_trip(*args: Any) -> Any:
            COUNTS["round trips"] += 1
            return await round_trip(*args)
        rawpipe._round_trip = counted_round_trip  # type: ignore[assignment]

    def pack_command(self: Any, *args: Any) -> Any:
        name = args[0] if isinstance(args[0], str) else bytes(args[0]).decode()
        COUNTS["cmd " + name.upper()] += 1
        return pack(self, *args)

    _AsyncHiredisParser.read_response = read_response  # type: ignore[method-assign]
    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    AbstractConnection.pack_command = pack_command  # type: ignore[method-assign]


async def _apply(n_events: int, tickets: int, profile: cProfile.Profile | None) -> tuple[int, float]:
    from server.scripting import Scripting
    from server.settings import Settings
    from server.store.connect import close_store, open_store
    from server.worker import Worker

    await ab._queue(ab._events(n_events, tickets))
    settings = Settings(redis_url=ab.URL, partitions=ab.PARTITIONS)
    store = await open_store(settings)
    scripting = Scripting(store, settings)
    try:
        COUNTS.clear()
        started = time.perf_counter()
        if profile:
            profile.enable()
        worker = Worker(store=store, burst=True, scripting=scripting)
        cpu, loop, was = time.process_time(), time.thread_time(), resource.getrusage(resource.RUSAGE_SELF)
        done = await worker.run()
        CPU.append(time.process_time() - cpu)
        LOOP.append(time.thread_time() - loop)
        now = resource.getrusage(resource.RUSAGE_SELF)
        SWITCHES.append((now.ru_nvcsw - was.ru_nvcsw, now.ru_nivcsw - was.ru_nivcsw))
        if profile:
            profile.disable()
        return done, time.perf_counter() - started
    finally:
        await scripting.close() if hasattr(scripting, "close") else None
        await close_store(store)
        await ab._flush()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1500)
    ap.add_argument("--tickets", type=int, default=150)
    ap.add_argument("--cprofile", type=int, default=0, metavar="N")
    ap.add_argument("--cpu", action="store_true",
                    help="no traffic counting (its wrappers cost CPU): the CPU per event only")
    args = ap.parse_args()
    if not args.cpu:
        _count_traffic()
    profile = cProfile.Profile() if args.cprofile else None
    done, seconds = asyncio.run(_apply(args.events, args.tickets, profile))
    print(f"{done} events applied in {seconds:.2f} s ({done / seconds:,.0f} events/s in-process"
          f"{', under cProfile' if profile else ''}); {CPU[0] * 1000 / max(done, 1):.3f} CPU ms/event "
          f"(this process, all its threads; the event loop's thread {LOOP[0] * 1000 / max(done, 1):.3f}), "
          f"load average {os.getloadavg()[0]:.1f}; context switches/event {SWITCHES[0][0] / max(done, 1):.2f} "
          f"voluntary, {SWITCHES[0][1] / max(done, 1):.2f} involuntary")
    if args.cpu:
        return 0
    per = max(done, 1)
    print(f"replies/event: {COUNTS['replies'] / per:.2f}   round trips/event: "
          f"{COUNTS['round trips'] / per:.2f}")
    for name, n in sorted(COUNTS.items(), key=lambda kv: -kv[1]):
        if name.startswith("cmd "):
            print(f"  {name[4:]:<14} {n / per:6.2f}/event")
    if profile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.cprofile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
