"""Where one worker's time and Redis traffic go per event (issue 14): the apply benchmark's events,
applied by a `Worker(burst=True)` in this process, with every Redis reply and round trip counted.

    python bench/apply_profile.py                 # 1,500 events over 150 tickets, 100 rules
    python bench/apply_profile.py --cprofile 25   # also the 25 costliest functions (cumulative)

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
import pstats
import sys
import time
from typing import Any

import apply_bench as ab

# ingest_bench (imported by apply_bench) puts this checkout first on the path: the tree profiled
# is DESKFLOW_BENCH_ROOT's
sys.path.insert(0, str(ab.ROOT))
COUNTS: collections.Counter[str] = collections.Counter()


def _count_traffic() -> None:
    """Wrap redis-py's asyncio connection so every reply, round trip and command is counted."""
    from redis.asyncio.connection import AbstractConnection

    read, send, pack = (AbstractConnection.read_response, AbstractConnection.send_packed_command,
                        AbstractConnection.pack_command)

    async def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["replies"] += 1
        return await read(self, *args, **kwargs)

    async def send_packed_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["round trips"] += 1
        return await send(self, *args, **kwargs)

    def pack_command(self: Any, *args: Any) -> Any:
        name = args[0] if isinstance(args[0], str) else bytes(args[0]).decode()
        COUNTS["cmd " + name.upper()] += 1
        return pack(self, *args)

    AbstractConnection.read_response = read_response  # type: ignore[method-assign]
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
        done = await worker.run()
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
    args = ap.parse_args()
    _count_traffic()
    profile = cProfile.Profile() if args.cprofile else None
    done, seconds = asyncio.run(_apply(args.events, args.tickets, profile))
    print(f"{done} events applied in {seconds:.2f} s ({done / seconds:,.0f} events/s in-process"
          f"{', under cProfile' if profile else ''})")
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
