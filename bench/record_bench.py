"""The run record's cost on the worker's own workload: `evaluate` alone against `evaluate` plus
what the worker stores for the event (bench/fires_bench.py's `deskflow_record`: the packed
rules, the record's size check and its bytes), per event, CPU time, for this tree and a base
tree, each in a process of its own, alternated.

    python bench/record_bench.py --base /tmp/base      # 3 rounds
    python bench/record_bench.py --base /tmp/base --rounds 5

The workload is bench/apply_bench.py's (ingest_bench's 100 rules and events): rules that set the
priority and the department and add tags that other rules read, so ~10 of them fire an event and
rules are checked again after fires -- the case fires_bench's workload (each rule adds a tag no
rule reads) never shows. Why: on this workload the record cost 1.7-2.7x the pass it records, the
largest part of the worker's CPU after its I/O (bench/RESULTS.md, session 18).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EVENTS = 2_000


def measure(root: Path) -> dict[str, Any]:
    """In this process, with `root`'s engine: the best of 5 passes over the events of each way."""
    sys.path[:0] = [str(root), str(HERE)]
    import random

    # root's engine and record first: the bench modules below put this tree on sys.path too, and
    # what is imported already stays
    import rules
    import server.runrecord
    from rules import compile_rules
    assert Path(rules.__file__).is_relative_to(root) and Path(server.runrecord.__file__).is_relative_to(root)

    import ingest_bench as ib
    from fires_bench import NOW, deskflow_record

    rules = ib.make_rules(100)
    for i, r in enumerate(rules):
        r.setdefault("id", f"r{i}")
    ruleset = compile_rules(rules)
    revisions = {str(r["id"]): 1 for r in rules}
    rnd = random.Random(14)
    events = [ib.make_event(i, rnd, "rb") for i in range(EVENTS)]

    def evaluate(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        ev = ruleset.evaluate(event, ticket, None, NOW, record=True)
        ev.changes, ev.ticket  # noqa: B018 -- what a caller reads
        return ev.matched  # type: ignore[no-any-return]

    ways = {"evaluate": evaluate, "evaluate + run record": deskflow_record(ruleset, revisions)}
    for fn in ways.values():
        for e in events[:200]:
            fn(e, e["ticket"])
    best = {name: float("inf") for name in ways}
    for _ in range(5):
        for name, fn in ways.items():
            t = time.process_time()
            for e in events:
                fn(e, e["ticket"])
            best[name] = min(best[name], (time.process_time() - t) / EVENTS * 1e6)
    fires = sum(len(evaluate(e, e["ticket"])) for e in events) / EVENTS
    return {"us": best, "fires": fires}


def _run(root: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--measure", str(root)], check=True,
                         capture_output=True, text=True, cwd=root, env={**os.environ, "PYTHONHASHSEED": "0"})
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, help="the tree to compare against")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    trees = {"this tree": HERE.parent} | ({"base": args.base.resolve()} if args.base else {})
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, root in trees.items():
            got[name].append(_run(root))
    load = os.getloadavg()[0]
    print(f"- {EVENTS:,} events, ingest_bench's 100 rules ({platform.python_version()}, CPU time per "
          f"event, best of 5 passes a process, {args.rounds} rounds alternating; load average {load:.1f})")
    print("\n| tree | fires/event | evaluate µs | evaluate + run record µs | record ÷ evaluate |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in got.items():
        ev = min(r["us"]["evaluate"] for r in runs)
        rec = min(r["us"]["evaluate + run record"] for r in runs)
        print(f"| {name} | {runs[0]['fires']:.1f} | {ev:.1f} | {rec:.1f} | {rec / ev:.2f} |")
    if args.base:
        mine = min(r["us"]["evaluate + run record"] for r in got["this tree"])
        base = min(r["us"]["evaluate + run record"] for r in got["base"])
        print(f"\nevaluate + run record, this tree ÷ base: **{mine / base:.2f}×**")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
