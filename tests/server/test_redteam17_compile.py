"""Red team, session 17: one workspace's rule compiles felt by another (server/rulecache.py).

A rule filed in the value index under a key of N values (`subject in [N values]`, at most 1,000)
had its whole condition body written into each of the N values' functions of its bucket's
generated source (rules/codegen.py `_emit`): a 64 KiB rule of one 1,000-value `in` and ~1,100
short conditions was ~22-24 MB of source (~8 s of CPython's compile, ~2 GB), and three of them
(~72 MB) were over the compile process's input limit (MAX_SOURCE_BYTES, 64 MiB), so the rule cache
compiled them in the worker: one C call holding the GIL ~20 s, another workspace's p99 9,279 /
1,643 / 9,053 ms in three runs, serve's RSS at 7.2 GB. Now a rule is filed under at most
MAX_FILED places and a long test checked under several values is written once
(tests/rules/test_codegen_bounds.py): the three rules are ~230 KB of source. The attacker uses its
own admin key only.
"""
from __future__ import annotations

from typing import Any

import orjson
import pytest
from test_tenant_isolation import Attack, Served, _assert_unfelt, _event, _victim, served  # noqa: F401

from server.store.rule_size import MAX_RULE_BYTES


WINDOWS = 6   # of test_tenant_isolation's measurement (100 requests, 5 events): ~10 s


def _fat_rule(i: int, conds: int | None = None) -> dict[str, Any]:
    """A rule of a 1,000-value `in` with as many short conditions as MAX_RULE_BYTES allows (or
    `conds`)."""
    base = [{"field": "subject", "op": "in", "value": [f"r{i}v{j}" for j in range(1000)]}]
    leaf = {"field": "subject", "op": "starts_with", "value": "a"}
    rule = {"id": f"f{i}", "name": f"fat {i}", "enabled": True, "triggers": ["ticket.updated"],
            "conditions": {"all": base}, "actions": [{"type": "add_tags", "tags": ["f"]}]}
    n = conds if conds is not None else (MAX_RULE_BYTES - 400 - len(orjson.dumps(rule))) // (
        len(orjson.dumps(leaf)) + 1)
    rule["conditions"]["all"] = base + [leaf] * n
    return rule


@pytest.mark.timeout(600)
def test_rules_filed_under_many_values_do_not_stall_another(served: Served) -> None:  # noqa: F811
    """Three such rules at the byte limit, their number of conditions changed on every other step
    (a new bucket source each time), events between."""
    a, b = served.workspace("attacker", timeout=300), _victim(served)
    a.ok("POST", "/v1/import", json={"deskflow": 1, "rules": [_fat_rule(i) for i in range(3)]})

    def step(n: int) -> None:
        if n % 2:
            k = n % 3
            r = a.call("PATCH", f"/v1/rules/f{k}",
                       json={"conditions": _fat_rule(k, 1100 - n % 20)["conditions"]})
        else:
            r = a.call("POST", "/v1/events", json=_event(f"a{n}", "A-fat", "ticket.updated", subject="s"))
        assert r.status_code < 300, r.text[:300]

    with Attack(step, 2) as attack:
        # windows back to back: the attacker's first compile (seconds of generating, before) must
        # fall inside one of them
        for window in range(WINDOWS):
            _assert_unfelt(b, f"filed under many values {window}", attack)
