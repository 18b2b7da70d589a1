"""Red team, session 17, round 2: rules filed under the most values the value index allows.

1,000 rules of `subject in [64 values]` (MAX_FILED, rules/ruleset.py), 1.1 MB of JSON, make a
bucket of 64,000 generated functions. Nested in one `_make`, CPython compiled them in O(n^2)
(192 s for this set, offline): past the compile process's 10 s of CPU (CHECK_TIMEOUT_S) the rule
cache compiled the source in the worker, one C call holding the GIL for minutes, and another
workspace's next request timed out at 10 s (2 of 2 runs, ~74 s into the attack). The functions
are module-level now (rules/codegen.py `_module_level`): 1.9 s of compile, in the process. The
offline bound is tests/rules/test_codegen_bounds.py; this is the two-workspace measurement.
"""
from __future__ import annotations

from typing import Any

import pytest
from test_tenant_isolation import Attack, Served, _assert_unfelt, _event, _victim, served  # noqa: F401

WINDOWS = 6   # test_tenant_isolation's measurement, back to back: the attacker's compile inside


def _filed_rule(i: int) -> dict[str, Any]:
    return {"id": f"m{i:04d}", "name": f"filed {i}", "enabled": True, "triggers": ["ticket.updated"],
            "conditions": {"all": [{"field": "subject", "op": "in",
                                    "value": [f"{i}.{j}" for j in range(64)]}]},
            "actions": [{"type": "add_tags", "tags": ["x"]}]}


@pytest.mark.timeout(600)
def test_rules_filed_under_the_most_values_do_not_stall_another(served: Served) -> None:  # noqa: F811
    a, b = served.workspace("attacker", timeout=300), _victim(served)
    a.ok("POST", "/v1/import", json={"deskflow": 1, "rules": [_filed_rule(i) for i in range(1000)]})

    def step(n: int) -> None:
        if n % 4 == 3:   # a new revision now and then: the set compiled again
            r = a.call("PATCH", f"/v1/rules/m{n % 1000:04d}", json={"name": f"filed {n}"})
        else:
            r = a.call("POST", "/v1/events", json=_event(f"a{n}", "A-filed", "ticket.updated", subject="7.3"))
        assert r.status_code < 300, r.text[:300]

    with Attack(step, 2, pace_s=0.2) as attack:
        for window in range(WINDOWS):
            _assert_unfelt(b, f"filed under the most values {window}", attack)
