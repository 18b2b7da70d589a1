"""A worker freezes each rule compile's objects out of the collector's reach (server/gcpolicy.py):
workspaces' compiled rules are never walked again by it, and a rule set that is replaced is still
freed -- the frozen objects do not grow with each recompile of the same rules.

Run in a process of its own: freezing is for the whole process, and the figures must not mix
with the test process's other objects."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent('''
    import asyncio, gc, sys
    from datetime import datetime, timezone
    import orjson
    from rules.packed import pack
    from server import rulecache
    from server.gcpolicy import tune_gc
    from server.settings import Settings
    from server.store import catalog
    from server.store.connect import close_store, open_store

    def rule(i, n):
        conds = [{"field": "subject", "op": "contains", "value": f"w{i}x{j}"} for j in range(n)]
        conds.append({"field": "subject", "op": "matches", "value": f"re(fund|bate)s? {i}"})
        conds.append({"any": [{"field": "tags", "op": "includes", "value": f"t{i}"},
                              {"field": "created_at", "op": "older_than_business", "value": "2h",
                               "calendar": {"week": {"mon": ["09:00", "17:00"]}}}]})
        return {"id": f"r{i:03d}", "name": f"rule {i}", "enabled": True, "triggers": ["ticket.updated"],
                "conditions": {"all": conds}, "actions": [{"type": "add_tags", "tags": [f"x{i}"]}]}

    async def main():
        tune_gc()
        store = await open_store(Settings(redis_url=None, data_file=None, root_token="probe-root"))
        ws = (await catalog.create_workspace(store, "probe"))[0]["id"]
        for i in range(RULES):
            await catalog.put_rule(store, ws, rule(i, 12))
        cache = rulecache.RuleCache(store)
        counts = []
        for r in range(ROUNDS):
            await catalog.put_rule(store, ws, rule(r % RULES, 12 - r % 2))   # a new bucket source
            ruleset, revisions = await cache.get_with_revisions(ws)
            for k in range(20):
                ticket = {"id": "T", "subject": f"w{k}x3 refunds {k}", "tags": [f"t{k}"],
                          "created_at": "2026-01-05T08:00:00Z"}
                ev = ruleset.evaluate({"type": "ticket.updated", "ticket": ticket}, ticket,
                                      now=datetime.now(timezone.utc), record=True)
                pack(ev, revisions)
                ev.rule_entries()
                len(ev.explain)
            del ruleset, ev
            counts.append(gc.get_freeze_count())
        await cache.aclose()
        await close_store(store)
        print(orjson.dumps({"counts": counts}).decode())

    asyncio.run(main())
''')


def _frozen(rules: int, rounds: int) -> list[int]:
    script = f"RULES, ROUNDS = {rules}, {rounds}\n" + PROBE
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    counts: list[int] = orjson.loads(out.stdout.strip().splitlines()[-1])["counts"]
    return counts


def test_a_recompiled_rule_set_is_freed_though_frozen() -> None:
    counts = _frozen(rules=150, rounds=8)
    # the first rounds freeze the process's first compile and what it set up; after that, each
    # round's new rule set replaces the last one, which must be freed: no growth per round but
    # what other objects happened to be alive (a few hundred at most)
    grown = counts[-1] - counts[2]
    assert counts[0] > 150 * 20, counts   # (what one compile of these rules freezes, at least)
    assert grown < 2_000, f"frozen objects grew by {grown} over {len(counts) - 3} recompiles: {counts}"


def test_the_applier_keeps_no_replaced_rule_set_alive() -> None:
    """The applier's facts per rule set (whether its passes call handlers, how many skip the loop)
    hold it weakly: keyed by id and holding it, they kept up to 1,024 replaced rule sets alive."""
    import gc
    import weakref
    from datetime import UTC, datetime

    from types import SimpleNamespace

    from rules import compile_rules
    from server.apply import Applier
    from server.settings import Settings

    store = SimpleNamespace(settings=Settings(redis_url=None, data_file=None, root_token="t"), redis=None)
    applier = Applier(store=store, handlers=None, scripting=None, clock=lambda: datetime.now(UTC))  # type: ignore[arg-type]
    try:
        gone = []
        for n in range(3):
            ruleset = compile_rules([{"id": f"r{n}", "name": "r", "triggers": ["ticket.created"],
                                      "actions": [{"type": "add_tags", "tags": ["x"]}]}])
            assert applier._facts_of(ruleset).needs_handlers is False
            assert applier._facts_of(ruleset) is applier._facts_of(ruleset)
            gone.append(weakref.ref(ruleset))
            del ruleset
        gc.collect()
        assert [ref() for ref in gone] == [None, None, None]
        assert applier._facts_of(None).needs_handlers is False   # (a workspace with no rules)
    finally:
        applier.rules.close()
