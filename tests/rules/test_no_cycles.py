"""A compiled rule set, and everything a pass and its record make of it, holds no reference cycle:
dropped, it is freed by reference counting alone.

Why it matters: a worker freezes each compile's objects out of the garbage collector's reach
(server/gcpolicy.py), so that another workspace's compiles are not walked by the collector while
every workspace waits. A frozen cycle is never freed: a cycle in what a compile makes would leak
that workspace's rules on every change (2.8 million objects after 40 s of the red team's shape
changes, before the generated code's namespaces, its slot readers and the record's tables broke
theirs). Checked on the property test's random rule sets (every op, business time, `any` groups,
scripts and HTTP handlers), through the worker's steps: compile with a compile cache, a pass for
the record, its entries, explain and the stored (packed) form."""

from __future__ import annotations

import gc
import random
from typing import Any

import pytest
from ruletools import NOW, stored_entries
from test_property import CALENDARS, Picker, gen_case, gen_event, gen_ticket, indexed_conditions, small_conditions

import rules as engine
from rules.codegen import compile_bucket
from rules.compile_cache import CompileCache


def _from_rules(obj: Any) -> bool:
    """Whether an object was made by the engine: an instance of one of its classes, or a function
    of its modules or of its generated code."""
    if type(obj).__module__.split(".")[0] == "rules":
        return True
    code = getattr(obj, "__code__", None)
    return code is not None and ("/rules/" in code.co_filename or code.co_filename.startswith("<rules"))


def _work(seed: int) -> None:
    """The worker's steps over one random rule set, twice (the second compile uses the cache's
    rules and codes, as a recompile after an edit does), then everything dropped."""
    p = Picker(rng=random.Random(seed))
    case = gen_case(p, (20, 120), indexed_conditions if seed % 2 else small_conditions)
    rules, event, ticket, previous, handlers = case
    rules = [{**r, "id": f"r{i}"} for i, r in enumerate(rules)]   # (every rule packed: ids)
    cache = CompileCache(compile_bucket)
    for round_ in range(2):
        ruleset = engine.compile_rules(rules, CALENDARS, cache=cache)
        cache.sweep()
        for _ in range(3):
            ev = ruleset.evaluate(event, ticket, previous=previous, now=NOW, handlers=handlers, record=True)
            ev.rule_entries()
            assert isinstance(ev.explain, list)
            revisions = {str(r["id"]): 1 for r in rules if "id" in r}
            stored_entries(ev, rules, revisions)
            event, ticket = gen_event(p), gen_ticket(p)
        rules = rules[1:] + rules[:1] if round_ == 0 else rules   # (a change: a new bucket source)


@pytest.mark.parametrize("seed", range(8))
def test_what_a_compile_and_its_passes_make_is_freed_without_the_collector(seed: int) -> None:
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        _work(seed)
        gc.collect()
        leaked = [o for o in gc.garbage if _from_rules(o)]
        kinds = sorted({type(o).__qualname__ + (f" {o.__qualname__}" if hasattr(o, "__code__") else "")
                        for o in leaked})
        assert not leaked, f"{len(leaked)} objects of the engine freed only by the collector: {kinds[:12]}"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


def test_the_check_sees_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a bucket's generated namespace left uncleared is found."""
    from rules import ruleset

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        with monkeypatch.context() as m:
            m.setattr(ruleset.weakref, "finalize", lambda *a, **k: None)
            _work(0)
        gc.collect()
        assert any(_from_rules(o) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
