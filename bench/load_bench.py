"""Load benchmark (issue 7 part 7): sustained events/s end to end and POST-to-applied latency,
with 1 and then 2 `deskflow worker` processes beside one `deskflow api` process, 100 rules.

    python bench/load_bench.py            # full run (~3 min on 2 cores)
    python bench/load_bench.py --quick    # smoke run
    python bench/load_bench.py --record   # also rewrite our section of bench/RESULTS.md

Needs the real Redis (DESKFLOW_LOAD_REDIS_URL, default redis://127.0.0.1:6379/15, flushed before
and after). Everything runs on this machine: the API process, the workers, Redis and the load
generator share its cores, which is the deployment issue 7 asks about (2 cores).

- Sustained: N events posted as fast as the API takes them (closed loop, 32 keep-alive
  connections) while the workers apply them; events/s = N / (last event applied - first event
  posted), so ingest and apply are both inside the figure.
- Latency: events posted open-loop at half the sustained rate for a while; POST-to-applied = the
  feed entry's Redis timestamp (written in the apply transaction) - the client's send time.
- The baseline is the same system with one worker, measured in the same run: the ratio says what
  the second worker process buys on this machine.
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

os.environ.setdefault("DESKFLOW_BENCH_REDIS_URL",
                      os.environ.get("DESKFLOW_LOAD_REDIS_URL", "redis://127.0.0.1:6379/15"))

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import ingest_bench as ib  # noqa: E402
import orjson  # noqa: E402

SECTION = "## Load (bench/load_bench.py)"


async def one_config(workers: int, n_sustained: int, lat_seconds: float) -> dict[str, float]:
    ws, key, url = await ib._setup(100)
    port = ib._free_port()
    env = {**os.environ, "DESKFLOW_REDIS_URL": url, "DESKFLOW_RATE_LIMIT": "0",
           "DESKFLOW_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "server.cli"]
    procs = [subprocess.Popen([*cmd, "api", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        ib._wait_http(port)
        procs += [subprocess.Popen([*cmd, "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL) for _ in range(workers)]
        rnd = random.Random(workers)
        warm = [ib.make_event(i, rnd, "warm") for i in range(300)]
        await ib.closed_loop(port, "/v1/events", key, [orjson.dumps(e) for e in warm], 32)
        await ib._wait_applied(ws, len(warm), 120)
        events = [ib.make_event(i, rnd, "s") for i in range(n_sustained)]
        t0 = time.time()
        await ib.closed_loop(port, "/v1/events", key, [orjson.dumps(e) for e in events], 32)
        await ib._wait_applied(ws, len(warm) + n_sustained, 600)
        done = await ib._feed_times(ws)
        last = max(done[e["id"]] for e in events)
        sustained = n_sustained / (last - t0)
        rate = sustained / 2
        lat_events = [ib.make_event(i, rnd, "lat") for i in range(int(rate * lat_seconds))]
        sent = await ib.open_loop(port, key, lat_events, rate)
        await ib._wait_applied(ws, len(warm) + n_sustained + len(lat_events), 300)
        done = await ib._feed_times(ws)
        lat = [(done[i] - t) * 1000 for i, t in sent.items()]
        return {"workers": workers, "sustained": sustained, "rate": rate, "n_lat": len(lat),
                "p50": ib._pct(lat, 0.5), "p99": ib._pct(lat, 0.99)}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(30)
        await ib._flush()


async def run(quick: bool) -> list[str]:
    n = 1500 if quick else 8000
    secs = 4.0 if quick else 15.0
    results = [await one_config(w, n, secs) for w in (1, 2)]
    one, two = results
    load = os.getloadavg()
    lines = [
        SECTION, "",
        f"Command: `python bench/load_bench.py{' --quick' if quick else ''}` — run "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores "
        f"({platform.machine()}), Python {platform.python_version()}; one `deskflow api` process, "
        f"1 then 2 `deskflow worker` processes, real Redis on localhost, 100 rules, 16 partitions, "
        f"events spread over 2,000 tickets; load generator on the same machine; load average at "
        f"the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.", "",
        "| workers | sustained events/s | latency test rate | POST-to-applied p50 | p99 |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(f"| {r['workers']} | {r['sustained']:,.0f} | {r['rate']:,.0f}/s "
                     f"({r['n_lat']:,} events) | {r['p50']:.1f} ms | {r['p99']:.1f} ms |")
    lines += [
        "",
        f"2 workers vs 1 (same run): throughput **{two['sustained'] / one['sustained']:.2f}×**, "
        f"p50 latency {two['p50'] / one['p50']:.2f}×, p99 {two['p99'] / one['p99']:.2f}×.",
        "",
        "What the figures mean: with 2 cores, the API process, the workers, Redis and the load "
        "generator compete for the same CPU, so a second worker helps only as far as a core is "
        "idle; on a machine with more cores (or workers on other machines) partitions spread "
        "over workers and throughput grows with them (per-ticket order is kept by the partition "
        "lease, tests/server/test_scale_out.py).",
        "",
    ]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--record", action="store_true")
    args = p.parse_args()
    import redis

    try:
        redis.Redis.from_url(ib.REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        print(f"load bench skipped: no Redis at {ib.REDIS_URL}")
        return 0
    lines = asyncio.run(run(args.quick))
    print("\n".join(lines))
    if args.record:
        ib.SECTION = SECTION
        ib.record(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
