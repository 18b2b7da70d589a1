"""`deskflow serve` end to end (issue 14): the API and the worker in one process on the embedded
store (its managed redis-server), for this tree and a baseline tree, in one invocation.

    git worktree add /tmp/serve-base 54661f6            # the tree before (once)
    python bench/serve_bench.py --base /tmp/serve-base   # 2 rounds, each tree once a round
    python bench/serve_bench.py --base /tmp/serve-base --quick
    python bench/serve_bench.py --base /tmp/serve-base --record   # rewrite our RESULTS section

Both trees are driven by this file's code, alternately (base, this, base, this ...), each round on
a fresh data directory: a workspace, an ingest key, ingest_bench's 100 rules (about 14 fire per
event) and the flood guard's send caps lifted, made through the API; 300 warm-up events; then

- sustained: N events posted as fast as the API takes them (closed loop, 32 keep-alive
  connections); events/s = N / (last event applied - first event posted), so ingest and apply
  are both inside the figure;
- latency: events posted open-loop at half that tree's sustained rate; POST-to-applied = the
  feed entry's time (the embedded server's clock, written by the apply commit) - the send time;
  this tree is also measured at the base tree's half rate of the same round (one rate for both).

The load generator runs on the same machine (it shares the cores with `serve`), as in
bench/load_bench.py; the ratio of the two trees measured in the same invocation is the figure
to compare, not the absolute rates.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import ingest_bench as ib  # noqa: E402
import orjson  # noqa: E402

SECTION = "## serve end to end, before and after (bench/serve_bench.py)"
TOKEN = "serve-bench-root"


class Served:
    """One `deskflow serve` of `tree` on a fresh data directory."""

    def __init__(self, tree: Path, argv: list[str] | None = None) -> None:
        """`argv`: the command instead of `deskflow serve` (with "{port}" for the port)."""
        self.tree = tree
        self.dir = tempfile.mkdtemp(prefix="sb-")
        self.port = ib._free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DESKFLOW_")}
        env.update({"DESKFLOW_DATA_FILE": f"{self.dir}/data.json",
                    "DESKFLOW_DATA_DIR": f"{self.dir}/data", "DESKFLOW_ROOT_TOKEN": TOKEN,
                    "DESKFLOW_SECRETS_KEY_FILE": f"{self.dir}/secrets.key",
                    "DESKFLOW_RATE_LIMIT": "0", "DESKFLOW_LOG_LEVEL": "warning",
                    "PYTHONPATH": str(tree)})
        argv = argv or [sys.executable, "-m", "server.cli", "serve", "--port", "{port}"]
        self.proc = subprocess.Popen(
            [a.replace("{port}", str(self.port)) for a in argv], env=env,
            cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ib._wait_http(self.port, 60)
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis_url = f"unix://{self.dir}/data/redis.sock"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def setup(self) -> tuple[str, str]:
        """(workspace id, ingest key), with the 100 rules and no send caps."""
        with httpx.Client(base_url=self.url, timeout=30) as c:
            r = c.post("/v1/workspaces", json={"name": "bench"},
                       headers={"Authorization": f"Bearer {TOKEN}"})
            r.raise_for_status()
            ws, admin = r.json()["id"], {"Authorization": f"Bearer {r.json()['admin_key']}"}
            r = c.post("/v1/keys", json={"role": "ingest", "name": "bench"}, headers=admin)
            r.raise_for_status()
            ingest = r.json()["key"]
            c.put("/v1/workspace/guards", json={"send_caps": []}, headers=admin).raise_for_status()
            for rule in ib.make_rules(100):
                c.post("/v1/rules", json=rule, headers=admin).raise_for_status()
        return ws, ingest

    async def feed_times(self, ws: str) -> dict[str, float]:
        import redis.asyncio as aioredis

        from server.store import keys as K

        r = aioredis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            out: dict[str, float] = {}
            last = "-"
            while True:
                rows = [x for x in await r.xrange(K.feed(ws), min=last, count=5000) if x[0] != last]
                if not rows:
                    return out
                for entry_id, fields in rows:
                    out[orjson.loads(fields["d"])["event_id"]] = int(entry_id.split("-")[0]) / 1000
                last = rows[-1][0]
        finally:
            await r.aclose()

    async def wait_applied(self, ws: str, n: int, timeout: float) -> None:
        import redis.asyncio as aioredis

        from server.store import keys as K

        r = aioredis.Redis.from_url(self.redis_url)
        try:
            deadline = time.monotonic() + timeout
            while await r.xlen(K.feed(ws)) < n:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"only {await r.xlen(K.feed(ws))} of {n} applied")
                await asyncio.sleep(0.02)
        finally:
            await r.aclose()


async def one_round(tree: Path, n: int, lat_seconds: float, seed: int,
                    also_at: float | None = None) -> dict[str, float]:
    """Sustained rate, then latency at half of it (and at `also_at` events/s when given: the
    base tree's half rate, so both trees' latency is also compared at one rate)."""
    served = Served(tree)
    try:
        ws, key = served.setup()
        rnd = random.Random(seed)
        warm = [ib.make_event(i, rnd, "warm") for i in range(300)]
        await ib.closed_loop(served.port, "/v1/events", key, [orjson.dumps(e) for e in warm], 32)
        await served.wait_applied(ws, len(warm), 300)
        events = [ib.make_event(i, rnd, "s") for i in range(n)]
        t0 = time.time()
        await ib.closed_loop(served.port, "/v1/events", key, [orjson.dumps(e) for e in events], 32)
        await served.wait_applied(ws, len(warm) + n, 900)
        done = await served.feed_times(ws)
        sustained = n / (max(done[e["id"]] for e in events) - t0)
        rate = sustained / 2
        lat_events = [ib.make_event(i, rnd, "lat") for i in range(max(50, int(rate * lat_seconds)))]
        sent = await ib.open_loop(served.port, key, lat_events, rate)
        total = len(warm) + n + len(lat_events)
        await served.wait_applied(ws, total, 300)
        done = await served.feed_times(ws)
        lat = [(done[i] - t) * 1000 for i, t in sent.items()]
        out = {"sustained": sustained, "rate": rate, "n_lat": len(lat),
               "p50": ib._pct(lat, 0.5), "p99": ib._pct(lat, 0.99)}
        if also_at:
            same = [ib.make_event(i, rnd, "same") for i in range(max(50, int(also_at * lat_seconds)))]
            sent = await ib.open_loop(served.port, key, same, also_at)
            await served.wait_applied(ws, total + len(same), 300)
            done = await served.feed_times(ws)
            lat = [(done[i] - t) * 1000 for i, t in sent.items()]
            out.update(same_rate=also_at, same_p50=ib._pct(lat, 0.5), same_p99=ib._pct(lat, 0.99))
        return out
    finally:
        served.stop()


async def run(base: Path, rounds: int, quick: bool) -> list[str]:
    n, secs = (1000, 5.0) if quick else (4000, 15.0)
    got: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for i in range(rounds):
        before_rate: float | None = None
        for name, tree in (("before", base), ("after", ROOT)):
            r = await one_round(tree, n, secs, seed=i, also_at=before_rate)
            before_rate = r["rate"]
            got[name].append(r)
            print(f"round {i + 1} {name}: {r['sustained']:,.0f} events/s; at {r['rate']:,.0f}/s "
                  f"p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms"
                  + (f"; at {r['same_rate']:,.0f}/s p50 {r['same_p50']:.1f} ms p99 "
                     f"{r['same_p99']:.1f} ms" if "same_rate" in r else ""), flush=True)
    med = {k: {f: statistics.median(r[f] for r in v) for f in v[-1]} for k, v in got.items()}
    b, a = med["before"], med["after"]
    load = os.getloadavg()
    return [
        f"- {n:,} events sustained, then open loop at half the sustained rate for {secs:.0f} s; "
        f"{rounds} rounds alternating the trees; medians; {os.cpu_count()} cores "
        f"({platform.machine()}), Python {platform.python_version()}, load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| tree | sustained events/s | latency test rate | POST-to-applied p50 | p99 |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| before ({base}) | {b['sustained']:,.0f} | {b['rate']:,.0f}/s | {b['p50']:.1f} ms | "
        f"{b['p99']:.1f} ms |",
        f"| after (this tree) | {a['sustained']:,.0f} | {a['rate']:,.0f}/s | {a['p50']:.1f} ms | "
        f"{a['p99']:.1f} ms |",
        f"| after, at the before tree's rate | | {a['same_rate']:,.0f}/s | {a['same_p50']:.1f} ms | "
        f"{a['same_p99']:.1f} ms |",
        "",
        f"after / before: sustained **{a['sustained'] / b['sustained']:.2f}×**; at half its own "
        f"sustained rate p50 {a['p50'] / b['p50']:.2f}×, p99 {a['p99'] / b['p99']:.2f}×; at the "
        f"before tree's rate p50 {a['same_p50'] / b['p50']:.2f}×, p99 "
        f"{a['same_p99'] / b['p99']:.2f}×.",
    ]


async def at_rate(tree: Path, rate: float, secs: float, seed: int) -> dict[str, float]:
    """Latency alone: warm-up, then open loop at `rate` events/s for `secs` seconds."""
    served = Served(tree)
    try:
        ws, key = served.setup()
        rnd = random.Random(seed)
        warm = [ib.make_event(i, rnd, "warm") for i in range(300)]
        await ib.closed_loop(served.port, "/v1/events", key, [orjson.dumps(e) for e in warm], 32)
        await served.wait_applied(ws, len(warm), 300)
        events = [ib.make_event(i, rnd, "lat") for i in range(int(rate * secs))]
        sent = await ib.open_loop(served.port, key, events, rate)
        await served.wait_applied(ws, len(warm) + len(events), 300)
        done = await served.feed_times(ws)
        lat = [(done[i] - t) * 1000 for i, t in sent.items()]
        return {"p50": ib._pct(lat, 0.5), "p90": ib._pct(lat, 0.9), "p99": ib._pct(lat, 0.99),
                "max": max(lat)}
    finally:
        served.stop()


async def run_at(base: Path, rounds: int, rate: float, secs: float) -> list[str]:
    lines = [f"- latency alone at {rate:,.0f} events/s for {secs:.0f} s after 300 warm-up events, "
             f"{rounds} rounds alternating the trees; load average at the start "
             f"{os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "| round | tree | p50 | p90 | p99 | max |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for i in range(rounds):
        for name, tree in (("before", base), ("after", ROOT)):
            r = await at_rate(tree, rate, secs, seed=i)
            lines.append(f"| {i + 1} | {name} | {r['p50']:.1f} ms | {r['p90']:.1f} ms | "
                         f"{r['p99']:.1f} ms | {r['max']:.1f} ms |")
            print(lines[-1], flush=True)
    return lines


def record(lines: list[str], command: str) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text()
    block = "\n".join([SECTION, "", f"`{command}`", "", *lines, ""]) + "\n"
    if SECTION in text:
        head, rest = text.split(SECTION, 1)
        tail = rest.split("\n## ", 1)
        text = head + block + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, type=Path, help="the tree to compare against")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--at", type=float, metavar="RATE",
                    help="latency alone at this rate (events/s), 10 s a round, no sustained phase")
    args = ap.parse_args()
    if args.at:
        lines = asyncio.run(run_at(args.base.resolve(), args.rounds, args.at, 10.0))
        print("\n".join(lines))
        return 0
    lines = asyncio.run(run(args.base.resolve(), args.rounds, args.quick))
    print("\n".join(lines))
    if args.record:
        record(lines, "python " + " ".join(["bench/serve_bench.py", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
