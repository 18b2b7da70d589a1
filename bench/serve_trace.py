"""Where one event's POST-to-applied time goes in `deskflow serve`, stage by stage (issue 14).

    python bench/serve_trace.py                      # 20, 50 and 150 events/s, 10 s each
    python bench/serve_trace.py --rates 50 --secs 20

`serve` (API and worker in one process, the embedded store's managed redis-server) runs in a
child process of this script with timers wrapped around the stages of the path, by patching
module attributes from outside (the service's code is not changed): the request handler's start
(the body read), the ingest round trip (`store.events.append_events`), the worker's load
(`store.tickets.load`, first attempt), the pure pass (`Applier._process`, thread hand-off
included) and the commit (`store.tickets.commit`, last attempt). The workload is
bench/serve_bench.py's: ingest_bench's 100 rules (about 14 fire per event, some `matches`, so
every pass goes to a pass thread), 300 warm-up events, then events posted open loop at a fixed
rate. Each stage's p50 / p90 / p99 over the events of the rate, plus serve's and redis-server's
CPU per event (/proc) and the Redis commands per event (INFO commandstats, commands run inside
scripts included).

Stages (all on this machine's clock; the feed entry's time is redis-server's, in ms):
  http_in     send -> the handler reads the body (the client's write, uvicorn, the middleware and
              the key lookup's round trip)
  ingest      validation, then the XADD + SET NX round trip, to the 202's return
  queued      the 202's return -> the worker's load starts (the partition read, the lanes)
  load        the load round trip (marker, ticket, contact, revisions)
  pass        the pure pass, with the hand-off to a pass thread and back
  commit      the commit round trip
  total       send -> the feed entry (the bench's POST-to-applied)
"""
from __future__ import annotations

import argparse
import asyncio
import contextvars
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

SELF = str(Path(__file__).resolve())
STAGES = ("http_in", "ingest", "queued", "load", "pass", "commit", "total")


# -- the child: serve, with the stages timed -----------------------------------------------------


def child(port: int, out: str) -> None:
    import server.api.events as api_events
    from server import apply
    from server.cli import loops, service
    from server.settings import Settings
    from server.store import events, tickets

    seen: dict[str, dict[str, float]] = {}
    began: contextvars.ContextVar[float] = contextvars.ContextVar("began", default=0.0)

    def mark(event: Any, stage: str, first: bool = True) -> None:
        eid = event.get("id") if isinstance(event, dict) else None
        if eid:
            row = seen.setdefault(eid, {})
            if not first or stage not in row:
                row[stage] = time.time()

    read_json = api_events.read_json

    async def timed_read(request: Any) -> Any:
        began.set(time.time())
        return await read_json(request)

    append = events.append_events

    async def timed_append(store: Any, workspace: str, evs: list[dict[str, Any]]) -> Any:
        got = await append(store, workspace, evs)
        now = time.time()
        for e in evs:
            seen.setdefault(e["id"], {}).update(handler=began.get(), acked=now)
        return got

    load = tickets.load

    async def timed_load(store: Any, workspace: str, event: Any, *a: Any, **k: Any) -> Any:
        mark(event, "load0")
        got = await load(store, workspace, event, *a, **k)
        mark(event, "load1")
        return got

    commit = tickets.commit

    async def timed_commit(*a: Any, **k: Any) -> Any:
        mark(a[5], "commit0", first=False)
        got = await commit(*a, **k)
        mark(a[5], "commit1", first=False)
        return got

    process = apply.Applier._process

    async def timed_process(self: Any, recorder: Any, snap: Any, event: Any, *a: Any) -> Any:
        mark(event, "pass0", first=False)
        got = await process(self, recorder, snap, event, *a)
        mark(event, "pass1", first=False)
        return got

    api_events.read_json = timed_read
    api_events.events.append_events = timed_append   # (the name post_events calls)
    tickets.load, tickets.commit = timed_load, timed_commit
    apply.Applier._process = timed_process           # type: ignore[method-assign]
    settings = Settings.from_env()
    try:
        loops.run(service._serve(settings, "127.0.0.1", port, False, None))
    finally:
        Path(out).write_bytes(orjson.dumps(seen))


# -- the parent: load, then the table ------------------------------------------------------------


def _cpu(pid: int) -> float:
    t = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(t[11]) + int(t[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p))
            except (OSError, ValueError, IndexError):
                continue
    return out


def _read(out: str) -> dict[str, dict[str, float]]:
    got: dict[str, dict[str, float]] = orjson.loads(Path(out).read_bytes())
    return got


def _q(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


async def one_rate(rate: float, secs: float, seed: int) -> list[str]:
    import ingest_bench as ib
    import redis.asyncio as aioredis
    import serve_bench as sb

    tmp = tempfile.mkdtemp(prefix="st-")   # (Served's own directory goes with its stop)
    out = f"{tmp}/trace.json"
    served = sb.Served(ROOT, [sys.executable, SELF, "--child", "{port}", out])
    try:
        port = served.port
        ws, key = served.setup()
        rnd = random.Random(seed)
        warm = [ib.make_event(i, rnd, "warm") for i in range(300)]
        await ib.closed_loop(port, "/v1/events", key, [orjson.dumps(e) for e in warm], 32)
        await served.wait_applied(ws, len(warm), 300)
        events = [ib.make_event(i, rnd, "t") for i in range(int(rate * secs))]
        r = aioredis.Redis.from_url(served.redis_url, decode_responses=True)
        pids = [served.proc.pid] + _children(served.proc.pid)
        stats0, cpu0 = await r.info("commandstats"), [_cpu(p) for p in pids]
        sent = await ib.open_loop(port, key, events, rate)
        await served.wait_applied(ws, len(warm) + len(events), 300)
        stats1, cpu1 = await r.info("commandstats"), [_cpu(p) for p in pids]
        await r.aclose()
        done = await served.feed_times(ws)
    finally:
        served.stop()   # SIGTERM: the child writes `out` as it exits
    seen = _read(out)
    shutil.rmtree(tmp, ignore_errors=True)
    rows: dict[str, list[float]] = {s: [] for s in STAGES}
    for eid, t in sent.items():
        m = seen.get(eid, {})
        if not all(k in m for k in ("handler", "acked", "load0", "load1", "pass0", "pass1",
                                    "commit0", "commit1")) or eid not in done:
            continue
        for stage, (a, b) in {"http_in": (t, m["handler"]), "ingest": (m["handler"], m["acked"]),
                              "queued": (m["acked"], m["load0"]), "load": (m["load0"], m["load1"]),
                              "pass": (m["pass0"], m["pass1"]),
                              "commit": (m["commit0"], m["commit1"]),
                              "total": (t, done[eid])}.items():
            rows[stage].append((b - a) * 1000)
    n = len(events)
    calls = sum(v["calls"] - stats0.get(k, {"calls": 0})["calls"] for k, v in stats1.items())
    lines = [f"| {rate:,.0f}/s | {stage} | {_q(v, .5):.2f} | {_q(v, .9):.2f} | {_q(v, .99):.2f} |"
             for stage, v in rows.items() if v]
    lines.append(f"| {rate:,.0f}/s | CPU ms an event: serve {(cpu1[0] - cpu0[0]) / n * 1000:.2f}, "
                 f"redis-server {sum(b - a for a, b in zip(cpu0[1:], cpu1[1:], strict=True)) / n * 1000:.2f}; "
                 f"Redis commands an event {calls / n:.0f}; traced {len(rows['total'])} of {n} | | | |")
    return lines


async def run(rates: list[float], secs: float) -> None:
    print(f"serve, stage by stage; {os.cpu_count()} cores, load average at the start "
          f"{os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| rate | stage | p50 ms | p90 ms | p99 ms |\n| --- | --- | ---: | ---: | ---: |")
    for i, rate in enumerate(rates):
        for line in await one_rate(rate, secs, seed=i):
            print(line, flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[20.0, 50.0, 150.0])
    ap.add_argument("--secs", type=float, default=10.0)
    args = ap.parse_args()
    asyncio.run(run(args.rates, args.secs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
