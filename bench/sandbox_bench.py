"""Sandbox overhead benchmark (issue 4): warm script runs against their floor, throughput, refill.

    .venv/bin/python bench/sandbox_bench.py [--runs 3000] [--seconds 3]

Measured in one process, one after another, on the same machine:
  bare exec      the precompiled trivial script exec'd + run() called in-process with fresh
                 guarded globals (what a worker does, minus the pipe)
  bare pipe      one 4-byte-length + orjson frame to a persistent echo child and back, blocking
                 os.read/os.write (the transport floor)
  asyncio pipe   the same echo driven by asyncio streams, as the pool drives its workers
  warm run       ScriptPool.run() of the trivial script: frame out, rlimits, exec, convert, frame back
Target: warm run p50 <= 2 x (bare exec + bare pipe) p50, warm run p99 <= 5 ms.
Also: runs/s with 2 workers (8 callers), and the time to replace a killed worker.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import Limits, ScriptPool, compile_script  # noqa: E402
from sandbox.guards import script_globals  # noqa: E402
from sandbox.pool import _Worker  # noqa: E402
from sandbox.protocol import encode, read_frame, read_frame_async, write_frame  # noqa: E402

TRIVIAL = "def run(event, ticket, ctx):\n    return {'add_tags': ['bench']}\n"
EVENT = {"id": "evt-1", "type": "ticket.created"}
TICKET = {"id": "T-1", "subject": "Refund please", "status": "new", "priority": "normal", "tags": ["billing"],
          "custom": {"plan": "pro"}, "contact": {"id": "C-1", "email": "ann@example.com", "groups": ["vip"]}}
ECHO = ("import sys; sys.path.insert(0, sys.argv[1]);\n"
        "from sandbox.protocol import read_frame, write_frame\n"
        "while True:\n    write_frame(1, read_frame(0))\n")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, samples_s: list[float]) -> dict[str, float | str]:
    us = [s * 1e6 for s in samples_s]
    return {"name": name, "p50": statistics.median(us), "p99": pct(us, 0.99), "mean": statistics.fmean(us)}


def bench_bare_exec(n: int) -> list[float]:
    code = compile_script(TRIVIAL).code
    out = []
    for _ in range(n):
        t = time.perf_counter()
        g = script_globals(lambda *a: None)
        exec(code, g)
        g["run"](dict(EVENT), dict(TICKET), None)
        out.append(time.perf_counter() - t)
    return out


def message() -> dict:
    return {"op": "run", "script": "bench", "version": 1, "source": TRIVIAL, "event": EVENT,
            "ticket": TICKET, "ctx": {"workspace": "bench", "vars": {}}, "limits": Limits().as_dict()}


def bench_bare_pipe(n: int) -> list[float]:
    proc = subprocess.Popen([sys.executable, "-I", "-c", ECHO, str(ROOT)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    wfd, rfd = proc.stdin.fileno(), proc.stdout.fileno()
    msg = message()
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            write_frame(wfd, msg)
            read_frame(rfd)
            out.append(time.perf_counter() - t)
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    return out


async def bench_asyncio_pipe(n: int) -> list[float]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-I", "-c", ECHO, str(ROOT),
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin and proc.stdout
    frame = encode(message())
    out = []
    for _ in range(n):
        t = time.perf_counter()
        proc.stdin.write(frame)
        await proc.stdin.drain()
        await read_frame_async(proc.stdout)
        out.append(time.perf_counter() - t)
    proc.kill()
    proc.stdin.close()
    await proc.wait()
    return out


async def bench_pool(n: int, seconds: float) -> tuple[list[float], float, list[float], list[float]]:
    async with ScriptPool(2) as pool:
        for _ in range(200):   # warm: code cached in both workers
            await pool.run("bench", 1, TRIVIAL, EVENT, TICKET)
        warm = []
        for _ in range(n):
            t = time.perf_counter()
            r = await pool.run("bench", 1, TRIVIAL, EVENT, TICKET)
            warm.append(time.perf_counter() - t)
            assert r.error is None, r.error

        done = 0
        stop = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await pool.run("bench", 1, TRIVIAL, EVENT, TICKET)
                done += 1
        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(8)))
        rate = done / (time.perf_counter() - started)

        spawn = []
        for _ in range(5):
            t = time.perf_counter()
            w = await _Worker.spawn(sys.executable, 30)
            spawn.append(time.perf_counter() - t)
            await w.kill()

        # end to end: kill a worker mid-flight (by its pid), time until a run succeeds on a fresh one
        refill = []
        for _ in range(5):
            victim = pool.pids[0]
            t = time.perf_counter()
            os.kill(victim, signal.SIGKILL)
            while True:
                r = await pool.run("bench", 1, TRIVIAL, EVENT, TICKET)
                if r.error is None and victim not in pool.pids and len(pool.pids) == 2:
                    break
                await asyncio.sleep(0.001)
            refill.append(time.perf_counter() - t)
    return warm, rate, spawn, refill


SECTION = "## Sandbox (bench/sandbox_bench.py)"

NOTES = """
What the figures mean:

- **bare exec** is the floor for running the script at all; **bare pipe** the floor for reaching
  another process (blocking `os.read`/`os.write`, the transport of the issue's ~32 µs figure).
- **warm run** is `ScriptPool.run` as the service calls it: acquire an idle worker, one
  orjson frame out (source, event, ticket, ctx, limits), in the worker: code from the per-version
  cache, per-run RLIMIT_AS/RLIMIT_CPU, fresh guarded globals and proxy modules, exec, `run()`,
  exact-type conversion and size check of the result, frame back; in the parent: vocabulary check
  through `rules.apply_updates` and the `ScriptResult`. The worker's share is ~17-30 µs.
- The parent drives workers from the service's asyncio loop. An asyncio pipe round trip alone costs
  ~90 µs here (epoll wake-up, the transport's read callback, the task wake-up: two loop
  callbacks per run, checked), so the ≤ 2× target measured against a *blocking* pipe is out of
  reach for an asyncio parent; the ratio against the asyncio floor is given beside it (1.7-2.3×
  across our runs, depending on machine load).
  A spin-wait (blocking `select` for up to 0.5 ms after each send) measured ~65 µs vs ~118 µs for a
  raw-fd asyncio reader in a side experiment; it was not adopted because it stalls the event loop
  that also serves the API and the broker.
- Worker start is Python start-up plus importing RestrictedPython and warming every lazy import
  before the rlimits close the door; refills happen in the background while other workers serve.
"""


def record(lines: list[str]) -> None:
    """Replace our section of bench/RESULTS.md, keeping everything else. Our section ends at the
    next heading of any level: our own text has none, so a block someone placed after it (a
    `### Notes` of another section, say) is never taken for ours."""
    path = Path(__file__).resolve().parent / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    body = SECTION + "\n\n" + "\n".join(lines).rstrip() + "\n" + NOTES
    parts = text.split("\n")
    if SECTION in parts:
        start = parts.index(SECTION)
        end = next((i for i in range(start + 1, len(parts)) if parts[i].startswith("#")), len(parts))
        tail = "\n".join(parts[end:]).strip("\n")
        text = "\n".join(parts[:start]) + "\n" + body + ("\n" + tail + "\n" if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--record", action="store_true", help="rewrite our section of bench/RESULTS.md")
    args = ap.parse_args()

    started = time.time()
    bare_exec = summary("bare exec (in-process)", bench_bare_exec(args.runs))
    bare_pipe = summary("bare pipe round trip (blocking)", bench_bare_pipe(args.runs))
    apipe = summary("asyncio pipe round trip", asyncio.run(bench_asyncio_pipe(args.runs)))
    warm_s, rate, spawn, refill = asyncio.run(bench_pool(args.runs, args.seconds))
    warm = summary("warm ScriptPool.run (trivial script)", warm_s)

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out = [f"Command: `python bench/sandbox_bench.py --record` — run "
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, {time.time() - started:.0f} s. "
           f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average at the end {load} "
           f"(other engineers' test runs share the machine). {args.runs} runs per row.", ""]
    out += ["| measurement | p50 µs | p99 µs | mean µs |", "| --- | ---: | ---: | ---: |"]
    for row in (bare_exec, bare_pipe, apipe, warm):
        out.append(f"| {row['name']} | {row['p50']:.0f} | {row['p99']:.0f} | {row['mean']:.0f} |")
    floor = bare_exec["p50"] + bare_pipe["p50"]
    ratio = warm["p50"] / floor
    afloor = bare_exec["p50"] + apipe["p50"]
    out += ["", "Targets (issue 4):", "",
            f"- warm overhead ≤ 2× (bare exec + one pipe round trip): **{'met' if ratio <= 2 else 'NOT met'}** — "
            f"p50 {warm['p50']:.0f} µs vs {floor:.0f} µs = {ratio:.2f}× "
            f"(against bare exec + an asyncio pipe round trip, {afloor:.0f} µs: {warm['p50'] / afloor:.2f}×)",
            f"- warm p99 ≤ 5 ms: **{'met' if warm['p99'] <= 5000 else 'NOT met'}** — {warm['p99'] / 1000:.2f} ms",
            "", "Other figures:", "",
            f"- throughput, 2 workers, 8 concurrent callers, trivial script: {rate:,.0f} runs/s",
            f"- worker start (spawn to ready): p50 {statistics.median(spawn) * 1000:.0f} ms, "
            f"max {max(spawn) * 1000:.0f} ms (5 starts)",
            f"- killed worker (SIGKILL) → replaced and the pool back to 2 serving workers: "
            f"p50 {statistics.median(refill) * 1000:.0f} ms, max {max(refill) * 1000:.0f} ms (5 kills)"]
    print("\n".join(out))
    if args.record:
        record(out)


if __name__ == "__main__":
    main()
