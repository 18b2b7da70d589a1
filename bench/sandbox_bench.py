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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()

    bare_exec = summary("bare exec (in-process)", bench_bare_exec(args.runs))
    bare_pipe = summary("bare pipe round trip (blocking)", bench_bare_pipe(args.runs))
    apipe = summary("asyncio pipe round trip", asyncio.run(bench_asyncio_pipe(args.runs)))
    warm_s, rate, spawn, refill = asyncio.run(bench_pool(args.runs, args.seconds))
    warm = summary("warm ScriptPool.run (trivial script)", warm_s)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs each\n")
    print("| measurement | p50 µs | p99 µs | mean µs |\n| --- | ---: | ---: | ---: |")
    for row in (bare_exec, bare_pipe, apipe, warm):
        print(f"| {row['name']} | {row['p50']:.0f} | {row['p99']:.0f} | {row['mean']:.0f} |")
    floor = bare_exec["p50"] + bare_pipe["p50"]
    ratio = warm["p50"] / floor
    print(f"\nwarm overhead p50 / (bare exec + bare pipe) p50 = {warm['p50']:.0f} / {floor:.0f} = {ratio:.2f}x "
          f"(target <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    afloor = bare_exec["p50"] + apipe["p50"]
    print(f"warm overhead p50 / (bare exec + asyncio pipe) p50 = {warm['p50']:.0f} / {afloor:.0f} = "
          f"{warm['p50'] / afloor:.2f}x (the same floor for a parent that must not block its event loop)")
    print(f"warm p99 = {warm['p99'] / 1000:.2f} ms (target <= 5 ms: {'met' if warm['p99'] <= 5000 else 'NOT met'})")
    print(f"throughput, 2 workers, 8 callers: {rate:.0f} runs/s")
    print(f"worker start (spawn to ready): p50 {statistics.median(spawn) * 1000:.0f} ms, max {max(spawn) * 1000:.0f} ms")
    print(f"killed worker -> replaced and serving: p50 {statistics.median(refill) * 1000:.0f} ms, "
          f"max {max(refill) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
