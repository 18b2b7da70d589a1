"""rules/record.py `rule_plan`, the plan a reader makes of one stored rule revision to expand the
run records that name it: the same steps and codes as the worker's bucket (what it packed with),
and a cost that does not grow with what a plan does not need (the rule's regexes, templates,
actions, the leaves under its `any` groups, the steps past FIRST_INLINE)."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest

import rules as engine
from rules.codegen import FIRST_INLINE
from rules.record import rule_plan

OSLO = {"timezone": "Europe/Oslo", "week": {"mon": ["09:00", "17:00"]}}


def _rule(conditions: Any, **extra: Any) -> dict[str, Any]:
    return {"id": "r1", "name": "the rule", "triggers": ["ticket.updated"], "conditions": conditions,
            "actions": [{"type": "add_tags", "tags": ["a"]}], **extra}


LEAF = {"field": "priority", "op": "is", "value": "urgent"}
SHAPES = {
    "no conditions": None,
    "empty": {},
    "empty all": {"all": []},
    "one leaf": LEAF,
    "top any": {"any": [LEAF, {"field": "subject", "op": "contains", "value": "x"}]},
    "nested alls": {"all": [LEAF, {"all": [{"all": [{"field": "tags", "op": "includes", "value": "v"}]},
                                           {"field": "channel", "op": "in", "value": ["a", "b"]}]}]},
    "groups": {"all": [{"any": [LEAF, {"all": [LEAF, LEAF]}]}, {"any": []},
                       {"any": [LEAF, LEAF, LEAF]}, {"field": "tags", "op": "includes_any", "value": ["a", "b"]}]},
    "matches and changed": {"all": [{"field": "subject", "op": "matches", "value": "(?i)re+fund"},
                                    {"field": "status", "op": "changed_to", "value": "open"}, LEAF]},
    "named calendar": {"all": [LEAF, {"field": "created_at", "op": "older_than_business", "value": "1h",
                                      "calendar": "oslo"}]},
    "inline calendar": {"all": [{"field": "created_at", "op": "older_than_business", "value": "1h",
                                 "calendar": OSLO}, LEAF]},
    "at the inline bound": {"all": [dict(LEAF, value=f"v{i}") for i in range(FIRST_INLINE)]},
    "past it": {"all": [dict(LEAF, value=f"v{i}") for i in range(FIRST_INLINE + 1)]},
    "past it inside": {"all": [LEAF, {"all": [dict(LEAF, value=f"v{i}") for i in range(40)]},
                               {"any": [LEAF]}]},
}


def _bucket_plan(rule: dict[str, Any]) -> Any:
    ruleset = engine.compile_rules([rule], calendars={"oslo": OSLO})
    ev = ruleset.evaluate({"id": "E", "type": "ticket.updated", "ticket": {"id": "T"}},
                          {"id": "T"}, previous=None)
    return ev._bucket.record


def _shape(plan: Any) -> Any:
    return (plan.heads, plan.ids, sorted(plan.deep),
            [[step[:6] for step in steps] for steps in plan.steps] if not plan.deep else None,
            [[(k, scale, radix, path, list(kids)) for k, _y, scale, radix, path, kids in g] for g in plan.groups]
            if not plan.deep else None)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_revisions_plan_is_the_buckets(name: str) -> None:
    rule = _rule(SHAPES[name])
    assert _shape(rule_plan(rule)) == _shape(_bucket_plan(rule))


def test_a_plan_does_not_compile_what_it_does_not_need() -> None:
    """A rule of a 1 MiB body costs a reader next to nothing whatever it holds: (before) 1,000
    regexes of 1,000 characters took 6.4 s and an `all` of 20,000 leaves 3.9 s (3.8 MB kept), an
    `any` of 20,000 leaves 2.3 s (1.7 MB kept), per revision read."""
    regexes = [f"(?:{i:04d}" + "|".join(f"w{i}x{j:03d}" for j in range(110))[:990] + ")" for i in range(1000)]
    heavy = {
        "regexes": _rule({"all": [LEAF, {"any": [{"field": "subject", "op": "matches", "value": r}
                                                 for r in regexes]}]}),
        "wide any": _rule({"all": [LEAF, {"any": [dict(LEAF, value=f"v{i}") for i in range(20_000)]}]}),
        "long all": _rule({"all": [dict(LEAF, value=f"v{i}") for i in range(20_000)]}),
        "templates": _rule(LEAF, actions=[{"type": "add_note", "body": "{{ticket.subject}} " * 800}] * 60),
    }
    for name, rule in heavy.items():
        tracemalloc.start()
        t0 = time.process_time()
        plan = rule_plan(rule)
        spent = time.process_time() - t0
        kept, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert spent < 0.05, f"{name}: {spent:.3f} s of CPU for one plan"
        assert kept < 200_000, f"{name}: {kept} bytes kept by one plan"
        assert plan.heads == [("r1", "the rule")]
