"""What a backtest costs its own workspace, and what it costs another one.

One `deskflow serve` (embedded store, one stream partition). Workspace A gets EVENTS processed
events (tickets with a long subject and description, most of them customer messages). Then, in
interleaved rounds, workspace B (the victim) times ordinary requests -- `POST /v1/events` (202) and
`GET /v1/rules` -- once with A quiet and once while A runs backtests back to back (limit 1000, the
costliest rule it may send: `changed_to`, and 60 regexes on subject, description and message body,
so every event loads its history entry and its previous run). The table gives B's median and p99
per state and the ratio loud / quiet from the same run; and A's backtest wall time per limit.

    python bench/backtest_bench.py [--rounds 3] [--events 1000] [--attackers 1]

`--attackers N`: N workspaces like A, each backtesting back to back in its own thread (a refused
one, 429 backtest_busy, waits 0.2 s): what the per-process cap on backtests at once costs B.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from testkit import free_port, wait_answering  # noqa: E402 -- the tests' own start-up wait

ROOT = "bench-root"
HEAVY = {"name": "heavy", "triggers": ["ticket.created", "message.received"],
         "conditions": {"all": [
             {"field": "status", "op": "changed_to", "value": "open"},
             {"any": [{"field": f, "op": "matches", "value": rf"(refund|money)\s+(\w+\s+){{1,8}}x{i}"}
                      for i in range(20) for f in ("subject", "description", "message.body")]}]},
         "actions": [{"type": "set", "field": "priority", "value": "low"}]}


def _serve(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKFLOW_")}
    env.update(DESKFLOW_DATA_FILE=f"{tmp}/data.json", DESKFLOW_ROOT_TOKEN=ROOT,
               DESKFLOW_SECRETS_KEY_FILE=f"{tmp}/secrets.key", DESKFLOW_RATE_LIMIT="0",
               DESKFLOW_PARTITIONS="1", DESKFLOW_LOG_LEVEL="warning")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
                            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_answering(url, path="/readyz", proc=proc, timeout=60, what="serve")
    return proc, url


def _workspace(url: str, name: str) -> httpx.Client:
    r = httpx.post(f"{url}/v1/workspaces", json={"name": name},
                   headers={"Authorization": f"Bearer {ROOT}"}, timeout=10)
    r.raise_for_status()
    return httpx.Client(base_url=url, timeout=60,
                        headers={"Authorization": f"Bearer {r.json()['admin_key']}"})


def _fill(a: httpx.Client, events: int) -> None:
    tickets = max(1, events // 5)
    batch: list[dict[str, Any]] = []
    for i in range(events):
        first = i < tickets
        ev: dict[str, Any] = {"id": f"f-{i}", "type": "ticket.created" if first else "message.received",
                              "ticket": {"id": f"A-{i % tickets}", "subject": "refund " * 30,
                                         "description": "lorem ipsum " * 100}}
        if not first:
            ev["message"] = {"author": "customer", "body": "where is my refund " * 20}
        batch.append(ev)
        if len(batch) == 500 or i == events - 1:
            a.post("/v1/events", json={"events": batch}).raise_for_status()
            batch = []
    deadline = time.monotonic() + 300
    while not a.get("/v1/runs", params={"limit": 1, "cursor": _cursor(events - 1)}).json()["items"]:
        if time.monotonic() > deadline:
            raise SystemExit("the events were not processed")
        time.sleep(0.5)


def _cursor(offset: int) -> str:
    sys.path.insert(0, os.getcwd())
    from server.api.query import encode_cursor

    return encode_cursor(offset)


def _victim(b: httpx.Client, tag: str, n: int = 60) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"POST /v1/events": [], "GET /v1/rules": []}
    for i in range(n):
        t0 = time.perf_counter()
        b.post("/v1/events", json={"id": f"{tag}-{i}", "type": "ticket.created",
                                   "ticket": {"id": f"B-{tag}-{i}", "subject": "invoice"}}).raise_for_status()
        out["POST /v1/events"].append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        b.get("/v1/rules").raise_for_status()
        out["GET /v1/rules"].append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    return out


def _attack(a: httpx.Client, stop: threading.Event, runs: list[int]) -> None:
    while not stop.is_set():
        r = a.post("/v1/rules/backtest", json={"rule": HEAVY, "limit": 1000})
        if r.status_code == 429:
            runs[1] += 1
            time.sleep(0.2)
        else:
            runs[0] += 1


def _p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--attackers", type=int, default=1)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="deskflow-backtest-bench-")
    proc, url = _serve(tmp)
    try:
        attackers = [_workspace(url, f"attacker{i}") for i in range(args.attackers)]
        a, b = attackers[0], _workspace(url, "victim")
        b.post("/v1/rules", json={"name": "tag", "enabled": True, "triggers": ["ticket.created"],
                                  "actions": [{"type": "add_tags", "tags": ["x"]}]}).raise_for_status()
        for one in attackers:
            _fill(one, args.events)
        walls: dict[int, list[float]] = {100: [], 500: [], 1000: []}
        for limit in walls:
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                r = a.post("/v1/rules/backtest", json={"rule": HEAVY, "limit": limit})
                r.raise_for_status()
                walls[limit].append(time.perf_counter() - t0)
        quiet: dict[str, list[float]] = {}
        runs = [0, 0]   # attackers' backtests run, refused (429)
        loud: dict[str, list[float]] = {}
        for rnd in range(args.rounds):
            for k, v in _victim(b, f"q{rnd}").items():
                quiet.setdefault(k, []).extend(v)
            stop = threading.Event()
            threads = [threading.Thread(target=_attack, args=(one, stop, runs), daemon=True)
                       for one in attackers]
            for t in threads:
                t.start()
            time.sleep(1.0)
            for k, v in _victim(b, f"l{rnd}").items():
                loud.setdefault(k, []).extend(v)
            stop.set()
            for t in threads:
                t.join(timeout=30)
        print(f"\nworkspace B while {args.attackers} workspace(s) like A backtest (limit 1000, "
              f"{args.events} events each, {args.rounds} interleaved rounds; attackers' backtests "
              f"run {runs[0]}, refused 429 {runs[1]})\n")
        print("| B's request | quiet median ms | quiet p99 ms | during median ms | during p99 ms | p99 × quiet |")
        print("|---|---:|---:|---:|---:|---:|")
        for k in quiet:
            print(f"| {k} | {statistics.median(quiet[k]):.1f} | {_p99(quiet[k]):.1f} | "
                  f"{statistics.median(loud[k]):.1f} | {_p99(loud[k]):.1f} | "
                  f"{_p99(loud[k]) / _p99(quiet[k]):.2f} |")
        print("\n| A's backtest limit | runs | wall s (median) | each |")
        print("|---:|---:|---:|---|")
        for limit, ws in walls.items():
            print(f"| {limit} | {len(ws)} | {statistics.median(ws):.2f} | "
                  f"{', '.join(f'{w:.2f}' for w in ws)} |")
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
