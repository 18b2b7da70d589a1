"""rules/revision_plan.py `rule_plan`, the plan a reader makes of one stored rule revision to expand the
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
from rules.revision_plan import rule_plan

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
    regexes of 1,000 characters took 3.0-6.4 s (5 MB kept), an `all` of 20,000 leaves 0.32 s
    (3.8 MB kept), an `any` of 20,000 leaves 0.15 s (1.7 MB kept), per revision read."""
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


def test_what_pack_stores_of_the_fields_grows_with_what_the_entries_read() -> None:
    """pack's `seen` table held every field of the bucket at every ticket version an entry sits
    at: one rule of 20,000 leaves (20,000 fields) after 999 rules that each set a field and fire
    (1,000 versions) made each event's pack 3.0 s (its pass: 4 ms) and its record 437 KB, though
    no entry read one of those fields (the wide rule's entry is stored whole)."""
    import orjson

    from rules.packed import pack, unpack

    setters = [{"id": f"s{i}", "name": f"s{i}", "triggers": ["ticket.updated"],
                "actions": [{"type": "set", "field": f"custom.c{i}", "value": "v"}]} for i in range(999)]
    wide = {"id": "wide", "name": "wide", "triggers": ["ticket.updated"],
            "conditions": {"all": [{"field": f"custom.k{k}", "op": "is", "value": "no"} for k in range(20_000)]},
            "actions": [{"type": "add_tags", "tags": ["x"]}]}
    # and one rule after them that does read one of those fields, the last
    reader = _rule({"all": [{"field": "custom.k19999", "op": "is", "value": "no"}]}, id="reader")
    ruleset = engine.compile_rules([*setters, wide, reader])
    ticket = {"id": "T", "custom": {"k19999": "yes"}}
    ev = ruleset.evaluate({"id": "E", "type": "ticket.updated", "ticket": ticket}, ticket, previous=None)
    assert len(ev._timeline) == 1000
    t0 = time.process_time()
    packed = pack(ev, {})
    spent = time.process_time() - t0
    assert packed is not None
    size = len(orjson.dumps(packed))
    assert spent < 0.1, f"pack took {spent:.3f} s of CPU"
    assert size < 40_000, f"the packed record is {size} bytes"
    assert packed["seen"]["fields"] == ["custom.k19999"]
    plan = ev._bucket.record
    read_back = unpack(orjson.loads(orjson.dumps(packed)), lambda i: (plan, i))
    assert [{k: v for k, v in e.items() if k != "revision"} for e in read_back] == ev.rule_entries()
    assert read_back[-1]["failed"]["seen"] == "yes" and read_back[-1]["id"] == "reader"
