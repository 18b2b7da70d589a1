"""`deskflow serve`'s store round trips an event, by caller, at a fixed open-loop rate (issue 14).

    python bench/serve_trips.py --base /tmp/serve-base             # 250 events/s for 6 s
    python bench/serve_trips.py --base /tmp/serve-base --rate 300 --secs 5

For the base tree, then this tree: serve_bench's set-up (a workspace, ingest_bench's 100 rules,
300 warm-up events), then events posted open loop at `--rate`. The serve process runs under this
file (`--child`), which counts every round trip its store client makes -- redis-py's
`send_packed_command` (one a command, or one a pipeline) and the coalesced round trips read by
server/store/rawpipe.py -- by the project code that asked, and the requests the coalescer carried.
The counts are read just before and after the timed events (SIGUSR1), so set-up and warm-up are
not in them. Counting walks the stack on every round trip: it slows the process, so the latency
and CPU figures printed beside are not the service's (bench/serve_bench.py measures those); the
round trips an event are what to compare.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _child() -> None:
    """The serve process: count round trips by caller, dump the counts on SIGUSR1."""
    sys.path.insert(0, os.environ.get("PYTHONPATH", str(HERE.parent)))
    counts: collections.Counter[str] = collections.Counter()

    def caller() -> str:
        frame, names = sys._getframe(2), []
        while frame is not None and len(names) < 3:
            name = frame.f_code.co_filename
            if "/server/" in name and not name.endswith(("rawpipe.py", "coalesce.py", "errors.py")):
                names.append(f"{os.path.basename(name)}:{frame.f_code.co_name}")
            frame = frame.f_back
        return " < ".join(names)

    import redis.asyncio.connection as conn

    send = conn.AbstractConnection.send_packed_command

    async def counted_send(self: object, command: object, check_health: bool = True) -> None:
        counts["redis-py " + caller()] += 1
        await send(self, command, check_health)  # type: ignore[arg-type]

    conn.AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]
    import server.store.coalesce as coalesce
    import server.store.rawpipe as rawpipe

    trip = rawpipe._round_trip

    async def counted_trip(c: object, parser: object, commands: list[object]) -> object:
        counts["coalesced " + caller()] += 1
        return await trip(c, parser, commands)

    rawpipe._round_trip = counted_trip  # type: ignore[assignment]
    carry = coalesce.Coalescer._send

    async def counted_carry(self: object, batch: list[object]) -> None:
        counts["(requests the coalescer carried)"] += len(batch)
        await carry(self, batch)  # type: ignore[arg-type]

    coalesce.Coalescer._send = counted_carry  # type: ignore[assignment,method-assign]
    dumps = [0]

    def dump(*_: object) -> None:
        dumps[0] += 1
        with open(f"{os.environ['TRIPS_OUT']}.{dumps[0]}", "w") as f:
            f.writelines(f"{v}\t{k}\n" for k, v in counts.items())

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from server.cli import main

    sys.argv = ["deskflow", *sys.argv[2:]]
    main()


def _read(path: str) -> dict[str, int]:
    out = {}
    for line in Path(path).read_text().splitlines():
        v, k = line.split("\t", 1)
        out[k] = int(v)
    return out


async def measure(tree: Path, rate: float, secs: float) -> tuple[dict[str, float], str]:
    import ingest_bench as ib
    import orjson
    import serve_bench as sb

    out = tempfile.mktemp(prefix="trips-")
    os.environ["TRIPS_OUT"] = out
    served = sb.Served(tree, [sys.executable, str(Path(__file__).resolve()), "--child", "serve",
                              "--port", "{port}"])
    try:
        ws, key = served.setup()
        rnd = random.Random(1)
        warm = [ib.make_event(i, rnd, "warm") for i in range(300)]
        await ib.closed_loop(served.port, "/v1/events", key, [orjson.dumps(e) for e in warm], 32)
        await served.wait_applied(ws, len(warm), 300)
        events = [ib.make_event(i, rnd, "trips") for i in range(int(rate * secs))]
        pid = served.proc.pid
        cpu0 = _cpu(pid)
        os.kill(pid, signal.SIGUSR1)
        sent = await ib.open_loop(served.port, key, events, rate)
        await served.wait_applied(ws, len(warm) + len(events), 300)
        cpu1 = _cpu(pid)
        os.kill(pid, signal.SIGUSR1)
        for _ in range(100):
            if os.path.exists(out + ".2"):
                break
            await asyncio.sleep(0.05)
        time.sleep(0.1)
        done = await served.feed_times(ws)
        lat = [(done[i] - t) * 1000 for i, t in sent.items()]
        before, after = _read(out + ".1"), _read(out + ".2")
        n = len(events)
        per = {k: (v - before.get(k, 0)) / n for k, v in after.items()}
        note = (f"{n:,} events at {rate:,.0f}/s: serve's CPU {(cpu1 - cpu0) / n * 1000:.2f} ms an "
                f"event, POST-to-applied p50 {ib._pct(lat, 0.5):.1f} ms (counting slows it)")
        return {k: v for k, v in per.items() if v >= 0.005}, note
    finally:
        served.stop()
        for suffix in (".1", ".2"):
            with_suffix = out + suffix
            if os.path.exists(with_suffix):
                os.unlink(with_suffix)


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(base: Path, rate: float, secs: float) -> list[str]:
    got = {}
    for name, tree in (("before", base), ("after", HERE.parent)):
        got[name] = await measure(tree, rate, secs)
        print(f"{name}: {got[name][1]}", flush=True)
    callers = sorted({k for per, _ in got.values() for k in per if not k.startswith("(")},
                     key=lambda k: -max(got[t][0].get(k, 0.0) for t in got))
    lines = [f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores; "
             f"load average {os.getloadavg()[0]:.1f}",
             f"- before: {got['before'][1]}", f"- after: {got['after'][1]}", "",
             "| round trips an event, by caller | before | after |", "| --- | ---: | ---: |"]
    lines += [f"| `{k}` | {got['before'][0].get(k, 0.0):.2f} | {got['after'][0].get(k, 0.0):.2f} |"
              for k in callers]
    total = {t: sum(v for k, v in got[t][0].items() if not k.startswith("(")) for t in got}
    carried = {t: got[t][0].get("(requests the coalescer carried)", 0.0) for t in got}
    lines += [f"| **all** | **{total['before']:.2f}** | **{total['after']:.2f}** |",
              f"| (requests the coalescer carried) | {carried['before']:.2f} | {carried['after']:.2f} |"]
    return lines


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        _child()
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, type=Path, help="the tree to compare against")
    ap.add_argument("--rate", type=float, default=250.0)
    ap.add_argument("--secs", type=float, default=6.0)
    args = ap.parse_args()
    print("\n".join(asyncio.run(run(args.base.resolve(), args.rate, args.secs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
