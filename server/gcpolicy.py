"""The worker process's garbage collector: tuned once at start, and each rule compile's objects
moved out of its reach when the compile is done.

Why: CPython's collector walks every object of the generations it collects, holding the
interpreter's lock; nothing else in the process runs meanwhile, every workspace's requests and
events included. A workspace at the rule limits compiles to ~355,000 tracked objects (closures,
cells, leaves: 1,000 rules of 56 conditions), which live until its rules change. Left to the
collector, they were walked again and again: a middle-generation collection during another
workspace's compile took 74-121 ms and a full one 1.1 s with 5 such workspaces alive (red team,
session 18, tests/server/test_redteam18.py). Frozen (`gc.freeze`, one constant-time step), they are
never walked; they are still freed when their last reference goes, because a compiled rule set
holds no reference cycle (rules/ruleset.py, rules/slots.py, rules/packed.py and rules/regexes.py
break theirs; tests/rules/test_no_cycles.py holds random rule sets of every op to that, and
tests/server/test_gcpolicy.py counts the frozen objects over recompiles). What a freeze also
catches is whatever cyclic garbage other threads had dropped and the collector not yet freed at
that moment: that is never freed, a few objects a compile at most."""

from __future__ import annotations

import gc

__all__ = ["GC_MIDDLE", "GC_YOUNG", "freeze_compiled", "tune_gc"]

# Allocations between two collections of the young generation (CPython's default: 700). A pass
# allocates thousands of short-lived objects (the run record, the explain of every rule), so at
# 700 the collector ran several times per event and, every tenth and hundredth time, walked the
# older generations too: about 11% of a worker's CPU (bench/RESULTS.md), and pauses of tens of ms
# for whoever shares the process (serve's API).
GC_YOUNG = 20_000
# Young collections between two of the middle generation (CPython's default: 10). A compile at the
# limits allocates ~18 young generations' worth that survive; at 10, one middle collection walked
# ~200,000 of them mid-compile (~100 ms) before the compile's end froze them.
GC_MIDDLE = 50


def tune_gc() -> None:
    """Once per process, when a worker starts: everything that exists by then (modules, settings)
    is frozen out of the collector's reach, the young generation is collected every GC_YOUNG
    allocations and the middle one every GC_MIDDLE young collections. Cycles are still collected,
    only later; memory grows by at most the young generation's few MiB."""
    if gc.get_threshold()[0] >= GC_YOUNG:
        return
    gc.collect()
    gc.freeze()
    oldest = gc.get_threshold()[2]
    gc.set_threshold(GC_YOUNG, GC_MIDDLE, oldest)


def freeze_compiled() -> None:
    """After a rule compile, in a process tune_gc tuned (a worker): what the compile made, and
    everything else alive, out of the collector's reach (see the module doc)."""
    if gc.get_threshold()[0] >= GC_YOUNG:
        gc.freeze()
