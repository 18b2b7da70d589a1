"""Old engine vs this one, interleaved in one process, on both workloads (a development aid).

    python bench/engine_compare.py OLD_PARENT_DIR [--events N] [--rounds R]

OLD_PARENT_DIR holds a copy of an earlier `rules` package renamed `rules_old` (e.g.
`git archive <rev> rules | tar -x -C DIR && mv DIR/rules DIR/rules_old`). Prints per-event
medians of `evaluate` (actions applied, `.matched`/`.changes`/`.ticket` read) and of evaluate +
`.explain`, and of evaluate + the run record's entries (`rule_entries()`), for the existing workload (bench/_rulegen.py) and the many-fires one (bench/_firesgen.py).
Not a `*_bench.py`: `./dev bench` does not run it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import _firesgen  # noqa: E402
import _rulegen  # noqa: E402

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone.utc)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("old")
    p.add_argument("--events", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000, 10000])
    args = p.parse_args(argv)
    sys.path.insert(0, args.old)
    engines = {"old": importlib.import_module("rules_old"), "new": importlib.import_module("rules")}
    vocab = _rulegen.build_vocab(random.Random("1-vocab"))
    workloads = []
    for n in args.sizes:
        workloads.append((f"existing {n:,}", _rulegen.make_rules(random.Random(f"1-rules-{n}"), vocab, n)[0],
                          _rulegen.make_events(random.Random("1-events"), vocab, args.events)))
        workloads.append((f"many-fires {n:,}", _firesgen.make_rules(random.Random(f"1-fires-{n}-False"), n, False),
                          _firesgen.make_events(random.Random("1-fires-events"), args.events)))
    for label, rules, events in workloads:
        sets = {k: m.compile_rules(rules) for k, m in engines.items()}
        times: dict[str, list[float]] = {f"{k} {w}": [] for k in sets for w in ("evaluate", "+explain", "+record")}
        for _ in range(args.rounds):
            for k, rs in sets.items():
                for what in ("evaluate", "+explain", "+record"):
                    gc.collect()
                    out = times[f"{k} {what}"]
                    for e, t in events:
                        t0 = time.process_time_ns()
                        ev = rs.evaluate(e, t, None, NOW)
                        ev.changes, ev.ticket  # noqa: B018
                        if what == "+explain":
                            ev.explain  # noqa: B018
                        elif what == "+record":
                            ev.rule_entries()  # the worker's run-record entries
                        out.append((time.process_time_ns() - t0) / 1000)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{label:>18}: " + ", ".join(f"{k} {v:,.1f} µs" for k, v in med.items())
              + f"; new/old evaluate {med['new evaluate'] / med['old evaluate']:.2f}"
              + f", +record {med['new +record'] / med['old +record']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
