"""A workspace's rule set compiled again after a one-rule edit: all of it (before) vs with the
workspace's CompileCache (rules/compile_cache.py, what server/rulecache.py does now).

    python bench/recompile_bench.py            # 100 and 1,000 rules, 3 rounds; a few minutes
    python bench/recompile_bench.py --quick    # 100 rules, 1 round

What the worker's rule cache runs (server/rulecache.py `compile_stored_rules`) when a tenant
renames one rule, on two rule shapes at the limits:

* **regex** -- each rule a 1,000-character `matches` (an alternation of 60 words, distinct per
  rule) and a `tags includes` conjunct: per rule, re's compile of the pattern dominates.
* **dense** -- each rule 56 `subject contains` conditions (~4 KB; 1,000 of them fill a workspace's
  4 MiB: tests/server/test_tenant_isolation.py's `_dense_rule`): per rule compiling is cheap, the
  trigger bucket's generated code (rules/codegen.py: one module for the bucket, compiled by
  CPython's `compile`) is most of it.

**full**: compile_stored_rules(rules) with no cache, main's way; measured after one full compile
of the same rules in the process (as in a running worker, whose `_shape` lru_cache of regex parse
trees is warm). **rules kept**: with a cache that keeps the compiled rules but compiles every
bucket's generated source again (the first step alone). **incremental**: the workspace's
CompileCache as server/rulecache.py uses it, rules and bucket codes kept, warm from the revision
before. Each round makes one edit -- **rename** the middle rule, or **move** it to the end and back
(the bucket's source numbers the rules by position, so it changes) -- then runs the three,
interleaved; the table gives the
median CPU seconds (`time.process_time`, this process: the GIL-holding time another workspace
waits for), the rules and bucket sources compiled in the incremental (counted:
CompileCache.compiles, code_compiles; full compiles every rule and every bucket), and full /
incremental in the same rounds.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rules.codegen import compile_bucket  # noqa: E402
from rules.compile_cache import CompileCache  # noqa: E402
from server.rulecache import compile_stored_rules  # noqa: E402


def regex_rule(i: int) -> dict[str, Any]:
    words = "|".join(f"w{i}o{j:02d}[a-z]{{2,3}}x" for j in range(60))
    pattern = f"({words})"[:999].rsplit("|", 1)[0] + ")"
    return {"id": f"r{i:04d}", "name": f"regex {i:04d}", "enabled": True, "position": i,
            "triggers": ["ticket.updated", "message.received"],
            "conditions": {"all": [{"field": "subject", "op": "matches", "value": pattern},
                                   {"field": "tags", "op": "includes", "value": f"t{i % 50}"}]},
            "actions": [{"type": "add_tags", "tags": ["d"]}]}


def dense_rule(i: int, n: int = 56) -> dict[str, Any]:
    """Rule i of n `subject contains` conditions (bench/compile_stall_bench.py varies n)."""
    return {"id": f"d{i:04d}", "name": f"dense {i:04d}", "enabled": True, "position": i,
            "triggers": ["ticket.updated"],
            "conditions": {"all": [{"field": "subject", "op": "contains", "value": f"w{i}x{j:02d}"}
                                   for j in range(n)]},
            "actions": [{"type": "add_tags", "tags": ["d"]}]}


class RulesOnly(CompileCache):
    """Keeps compiled rules, not the buckets' code."""

    def code(self, source: str) -> Any:
        return compile_bucket(source)


def cpu(fn: Any) -> tuple[float, Any]:
    gc.collect()
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def rename(rules: list[dict[str, Any]], k: int) -> None:
    mid = len(rules) // 2
    rules[mid] = {**rules[mid], "name": f"renamed {k}"}


def move(rules: list[dict[str, Any]], k: int) -> None:
    """The middle rule moved to the end (and back): every later rule's number in the bucket's
    generated source moves, so the buckets compile again (the rules do not)."""
    if k % 2 == 0:
        rules.append(rules.pop(len(rules) // 2))
    else:
        rules.insert(len(rules) // 2, rules.pop())


EDITS = {"rename": rename, "move": move}


def measure(make: Any, n: int, rounds: int, edit: Any = rename) -> dict[str, Any]:
    rules = [make(i) for i in range(n)]
    compile_stored_rules(rules)   # (the worker's state: one compile of these rules before)
    cache, rules_only = CompileCache(), RulesOnly()
    compile_stored_rules(rules, None, cache)
    compile_stored_rules(rules, None, rules_only)
    full_s, kept_s, inc_s, compiled, codes = [], [], [], [], []
    for k in range(rounds):
        edit(rules, k)
        t, _ = cpu(lambda: compile_stored_rules(rules))
        full_s.append(t)
        t, _ = cpu(lambda: compile_stored_rules(rules, None, rules_only))
        kept_s.append(t)
        before, code_before = cache.compiles, cache.code_compiles
        t, _ = cpu(lambda: compile_stored_rules(rules, None, cache))
        inc_s.append(t)
        compiled.append(cache.compiles - before)
        codes.append(cache.code_compiles - code_before)
    ratios = [f / i for f, i in zip(full_s, inc_s, strict=True)]
    return {"full": statistics.median(full_s), "kept": statistics.median(kept_s),
            "inc": statistics.median(inc_s), "compiled": max(compiled), "codes": max(codes),
            "ratio": statistics.median(ratios)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sizes = [100] if args.quick else [100, 1000]
    rounds = 1 if args.quick else args.rounds
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python {platform.python_version()}, "
          f"load {Path('/proc/loadavg').read_text().split()[0] if Path('/proc/loadavg').exists() else '?'}, "
          f"{rounds} rounds")
    print("| rules | shape | edit | full: CPU s | rules kept: CPU s | incremental: CPU s | incremental: rules / "
          "bucket sources compiled | full / incremental |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        for shape, make in (("regex", regex_rule), ("dense", dense_rule)):
            for name, edit in EDITS.items():
                m = measure(make, n, rounds, edit)
                print(f"| {n:,} | {shape} | {name} | {m['full']:.3f} | {m['kept']:.3f} | {m['inc']:.3f} | "
                      f"{m['compiled']} / {m['codes']} | {m['ratio']:.1f}× |", flush=True)


if __name__ == "__main__":
    main()
