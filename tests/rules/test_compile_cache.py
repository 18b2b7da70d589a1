"""A rule set compiled with a CompileCache (rules/compile_cache.py) across a random sequence of
edits -- create, change conditions, rename, reorder, delete, disable, change a calendar -- is the
rule set `compile_rules` makes afresh from the same rules: every event evaluates the same (matched,
changes, effects, ticket, vars, explain, the run record's entries), and its regexes share their
answers as a fresh set's do."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

import rules as engine
from rules.compile_cache import CompileCache
from rules.conditions import leaves
from ruletools import NOW
from test_property import (CALENDARS, HANDLERS, Picker, gen_event, gen_node, gen_previous, gen_rule,
                           gen_ticket, small_conditions, summary)

# a few patterns many rules repeat: sharing (RegexBudget.answers) comes and goes with the edits
PATTERNS = ["refund(s|ed)?", "^vip", "invoice [0-9]+", "urgent|asap"]


ALL_WEEK = {d: ["00:00", "24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _conditions(p: Picker) -> dict[str, Any] | None:
    if p.chance(0.15):   # business time on a calendar the edits change
        return {"field": p.choice(["created_at", "updated_at"]), "op": p.choice(["older_than_business",
                "newer_than_business"]), "value": p.choice(["30m", "2h", "1d"]), "calendar": "oslo"}
    if p.chance(0.35):
        leaf = {"field": p.choice(["subject", "message.body", "description"]), "op": "matches",
                "value": p.choice(PATTERNS)}
        other = small_conditions(p)
        return {"all": [leaf, other]} if other else leaf
    return small_conditions(p)


class _Edits:
    def __init__(self, rng: random.Random) -> None:
        self.rng, self.p = rng, Picker(rng=rng)
        self.made = 0
        self.rules: list[dict[str, Any]] = []
        self.calendars = copy.deepcopy(CALENDARS)
        for _ in range(rng.randint(5, 30)):
            self.create()

    def new_rule(self) -> dict[str, Any]:
        i = self.made
        self.made += 1
        rule = gen_rule(self.p, i, self.p.choice(["ticket.updated", "message.received", "time.reached"]),
                        _conditions)
        if self.p.chance(0.8):   # (the service's rules all have ids; the engine's need not)
            rule["id"] = f"id-{i}"
        return rule

    def create(self) -> None:
        self.rules.insert(self.rng.randint(0, len(self.rules)), self.new_rule())

    def step(self) -> str:
        rng, rules = self.rng, self.rules
        kind = rng.choice(["create", "conditions", "name", "reorder", "delete", "disable", "calendar",
                           "actions", "same"])
        if kind == "create" or len(rules) < 2:
            self.create()
            return "create"
        i = rng.randrange(len(rules))
        rule = dict(rules[i])
        if kind == "conditions":
            rule["conditions"] = _conditions(self.p) or gen_node(self.p, 2)
        elif kind == "name":
            rule["name"] = f"{rule['name']}'"
        elif kind == "reorder":
            rules.pop(i)
            rules.insert(rng.randint(0, len(rules)), rule)
            return kind
        elif kind == "delete":
            rules.pop(i)
            return kind
        elif kind == "disable":
            rule["enabled"] = not rule.get("enabled", True)
        elif kind == "actions":
            rule["actions"] = self.new_rule()["actions"]
        elif kind == "calendar":   # an SLA policy's hours changed
            week = self.calendars["oslo"]["week"]
            self.calendars["oslo"]["week"] = CALENDARS["oslo"]["week"] if week == ALL_WEEK else ALL_WEEK
            return kind
        rules[i] = rule   # ("same": written back as it was, a new dict)
        return kind


def _sharing(ruleset: Any) -> list[bool]:
    return [leaf.pred.matcher._shared for r in ruleset.rules for leaf in leaves(r.conditions)
            if hasattr(leaf.pred, "matcher")]


def _agree(fresh: Any, built: Any, rules: list[dict[str, Any]], p: Picker) -> None:
    assert [r.label for r in built.rules] == [r.label for r in fresh.rules]
    assert [r.position for r in built.rules] == [r.position for r in fresh.rules]
    assert _sharing(built) == _sharing(fresh)
    assert built.time_rules == fresh.time_rules and built.needs_thread == fresh.needs_thread
    for _ in range(6):
        event, ticket = gen_event(p), gen_ticket(p)
        if p.chance(0.3):
            event["type"] = "time.reached"
        previous = gen_previous(p, ticket)
        handlers = p.choice(HANDLERS) if p.chance(0.4) else None
        for record in (False, True):
            want = fresh.evaluate(event, ticket, previous=previous, now=NOW, handlers=handlers, record=record)
            got = built.evaluate(event, ticket, previous=previous, now=NOW, handlers=handlers, record=record)
            a, b = summary(want, rules), summary(got, rules)
            for key in a:
                assert b[key] == a[key], key
            assert got.rule_entries() == want.rule_entries()
        assert built.next_check(ticket, NOW, previous) == fresh.next_check(ticket, NOW, previous)


@pytest.mark.parametrize("seed", range(8))
def test_a_cached_compile_across_edits_is_a_fresh_compile(seed: int) -> None:
    rng = random.Random(f"compile-cache-{seed}")
    edits, cache = _Edits(rng), CompileCache()
    done = []
    for _ in range(25):
        fresh = engine.compile_rules(edits.rules, edits.calendars)
        before, codes = cache.compiles, cache.code_compiles
        built = engine.compile_rules(edits.rules, edits.calendars, cache=cache)
        cache.sweep()
        changed = cache.compiles - before
        _agree(fresh, built, edits.rules, Picker(rng=random.Random(f"{seed}-{len(done)}")))
        assert len(cache) <= len(edits.rules)   # only the rules of the last set are kept
        if done and done[-1] in ("name", "conditions", "actions", "disable", "create"):
            assert changed <= 1, (done[-1], changed)
        if done and done[-1] in ("reorder", "delete", "same"):
            assert changed == 0, (done[-1], changed)
        if done and done[-1] in ("name", "same"):   # no bucket's generated source changed
            assert cache.code_compiles == codes, done[-1]
        done.append(edits.step())


def test_refused_rules_are_kept_by_their_position() -> None:
    """A rule naming a calendar no policy has (its policy deleted) is refused at every compile of
    its set; its errors name its position, so they are kept per position, and the others compile
    once."""
    good = {"id": "a", "name": "a", "triggers": ["ticket.updated"], "actions": [{"type": "close"}]}
    bad = {"id": "b", "name": "b", "triggers": ["time.reached"], "actions": [{"type": "close"}],
           "conditions": {"field": "created_at", "op": "older_than_business", "value": "1h",
                          "calendar": "gone"}}
    cache = CompileCache()
    for _ in range(2):
        with pytest.raises(engine.RuleError) as first:
            engine.compile_rules([good, bad], cache=cache)
        assert first.value.index == 1
        with pytest.raises(engine.RuleError) as alone:
            engine.compile_rules([bad], cache=cache)
        assert alone.value.index == 0
        cache.sweep()
    assert cache.compiles == 3   # a, b at 1, b at 0: once each
    # the calendar is back: the rule it names compiles (its key names the calendar it names)
    ruleset = engine.compile_rules([good, bad], calendars={"gone": CALENDARS["oslo"]}, cache=cache)
    assert [r.label for r in ruleset.rules] == ["a", "b"] and cache.compiles == 4
