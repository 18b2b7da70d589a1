"""rules/plan.py: generated predicates answer as the closure predicates do, no tenant string ever
reaches generated source, and a fire re-checks exactly the later rules that read what it wrote."""

from __future__ import annotations

import random
from typing import Any

import pytest

import rules as engine
from rules import regexes
from rules.conditions import failure, parse
from rules.evaluation import _failed
from rules.ops import State
from rules.codegen import FIRST_BASE, generate
from rules.slots import raw_index, read_slots
from rules.plan import read_keys
from ruletools import NOW, make_ticket

HOSTILE = [
    "'); import os; os.system('echo pwned') #",
    '"""\n__import__("os").system("x")\n"""',
    "\\x00\\n}{)(][", "K[0]", "v[0]", "P[0](s)", "__builtins__", "\n    return True\n",
    "ß", "İ", "",
]


def _tree(raw: dict[str, Any]) -> Any:
    problems: list[tuple[str, str]] = []
    node = parse(raw, problems)
    assert not problems, problems
    return node


def _state(ticket: dict[str, Any], event: dict[str, Any] | None = None) -> State:
    return State(ticket, event or {"type": "ticket.updated"}, {}, {}, NOW)


def test_no_tenant_string_reaches_the_generated_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """The source depends on the rules' shape only: hostile names and values or bland ones of the
    same shape give the very same text (values live in the constants tuple)."""
    import rules.codegen as plan
    import rules.slots as slots
    seen: list[str] = []
    real = compile

    def spy(src: str, *a: Any) -> Any:
        seen.append(src)
        return real(src, *a)
    monkeypatch.setattr(plan, "compile", spy, raising=False)
    monkeypatch.setattr(slots, "compile", spy, raising=False)   # (the slot reader's)

    def trees(values: list[str]) -> list[Any]:
        out = [_tree({"all": [{"field": f"custom.{h}", "op": op, "value": h},
                              {"field": "tags", "op": "includes", "value": h},
                              {"field": "subject", "op": "in", "value": [h, "x"]}]})
               for h in values for op in ("is", "contains", "is_not")]
        return out + [_tree({"field": "subject", "op": "matches", "value": "x" + values[0].replace("(", "")
                             .replace(")", "").replace("[", "").replace("\\", "") + "x"})]
    hostile = [h for h in HOSTILE if h]
    generate(trees(hostile), [()] * (len(hostile) * 3 + 1))
    generate(trees([f"plain{i}" for i in range(len(hostile))]), [()] * (len(hostile) * 3 + 1))
    # each generate compiles the matcher and the slot reader: the same texts for both rule sets
    assert len(seen) == 4 and seen[:2] == seen[2:]
    for src in seen[:2]:
        for h in hostile:
            assert h not in src or h in ("K[0]", "v[0]", "P[0](s)"), h


def test_hostile_field_names_and_values_are_matched_as_data() -> None:
    for h in (x for x in HOSTILE if x):
        ruleset = engine.compile_rules([
            {"id": "a", "triggers": ["ticket.updated"],
             "conditions": {"all": [{"field": f"custom.{h}", "op": "is", "value": h},
                                    {"field": "tags", "op": "includes", "value": h}]},
             "actions": [{"type": "add_tags", "tags": ["hit"]}]}])
        hit = make_ticket(custom={h: h.upper() if h.isascii() else h}, tags=[h])
        miss = make_ticket(custom={h: h + "x"}, tags=[h])
        assert ruleset.evaluate({"type": "ticket.updated"}, hit, now=NOW).matched == ["a"], h
        assert ruleset.evaluate({"type": "ticket.updated"}, miss, now=NOW).matched == [], h


LEAVES = [
    ("subject", "is", "Refund please"), ("subject", "is_not", "refund PLEASE"),
    ("subject", "contains", "FUND"), ("subject", "not_contains", "fund"),
    ("subject", "starts_with", "ref"), ("subject", "ends_with", "ASE"),
    ("status", "in", ["open", "new"]), ("status", "not_in", ["Open"]),
    ("tags", "includes", "Billing"), ("tags", "excludes", "vip"),
    ("tags", "includes_any", ["x", "BILLING"]), ("tags", "includes_all", ["billing", "y"]),
    ("contact.groups", "includes", "VIP"), ("custom.plan", "is", "PRO"),
    ("custom.plan", "in", ["pro", "x"]), ("custom.seats", "gt", 5), ("custom.seats", "lte", 5),
    ("custom.seats", "is", 5), ("custom.flag", "is", True), ("priority", "gt", "low"),
    ("subject", "matches", r"ref\w+"), ("subject", "matches", r"(a|aa)+$"),
    ("tags", "is_empty", None), ("custom.plan", "contains", "r"), ("custom.seats", "in", [5, "5"]),
]
VALUES: list[Any] = ["Refund please", "pro", "PRO", 5, 5.0, 6, True, 1, "5", None, [], ["Billing"],
                     ["billing", "Y"], {"a": 1}, "open", "OPEN", "low", "urgent", "straße"]


@pytest.mark.parametrize("seed", range(4))
def test_generated_predicates_answer_as_the_closures(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Both sides run the same regexes; with the production bounds (50 ms a match, 250 ms a pass,
    # wall time) a starved process times `(a|aa)+$` out on one side only and the answers differ
    # for want of CPU. The bounds have their own tests (test_regex_bounds.py); here they are wide.
    monkeypatch.setattr(regexes, "MATCH_TIMEOUT_S", 10.0)
    monkeypatch.setattr(regexes.RegexBudget.__init__, "__defaults__", (60.0,))
    rng = random.Random(seed)
    raw = []
    for _ in range(200):
        picks = rng.sample(LEAVES, rng.randint(1, 4))
        leaves = [{"field": f, "op": op, **({} if v is None else {"value": v}),
                   **({"case_sensitive": True} if rng.random() < 0.1 and op in ("is", "contains") else {})}
                  for f, op, v in picks]
        raw.append({rng.choice(("all", "any")): leaves} if len(leaves) > 1 else leaves[0])
    trees = [_tree(r) for r in raw]
    gen = generate(trees, [()] * len(trees))
    match, slots = gen.match, gen.slots
    ruleset = engine.compile_rules([{"id": f"r{i}", "triggers": ["ticket.updated"], "conditions": r,
                                     "actions": [{"type": "notify", "target": "x", "message": "m"}]}
                                    for i, r in enumerate(raw)])
    bucket = ruleset._buckets["ticket.updated"]   # the same trees, filed in the value index
    for _ in range(60):
        ticket = make_ticket(subject=rng.choice(["Refund please", "REFUNDING", None, 3, "ab"]),
                             status=rng.choice(VALUES), priority=rng.choice(VALUES),
                             tags=rng.choice(VALUES),
                             custom={"plan": rng.choice(VALUES), "seats": rng.choice(VALUES),
                                     "flag": rng.choice(VALUES)})
        s = _state(ticket)
        want = [i for i, tree in enumerate(trees) if tree.pred(s)]
        assert match(read_slots(slots, s), s) == want, ticket
        assert bucket.match(read_slots(bucket.slots, s), s) == want, ticket
        # the eager reader's vector is the lazy one's, slot for slot (NaN for a non-number, "" for
        # a non-string, the empty set for a non-list: the kinds the templates read untested)
        assert bucket.read is not None
        eager = bucket.read(ticket, s.event, {})
        lazy = read_slots(bucket.slots, s)
        n_slots = len(bucket.slots)
        assert eager[:n_slots] == [lazy[n] for n in range(n_slots)], ticket
        # then each field's raw value, where raw_index says (the run record's quick pack reads them)
        raws = raw_index(bucket.slots)
        assert len(eager) == n_slots + len(raws)
        for field, _ in bucket.slots:
            raw = field.read(ticket, s.event, {})
            assert eager[raws[field.name]] is raw or eager[raws[field.name]] == raw, field.name
        assert bucket.match(eager, s) == want, ticket
        # the run record's `first` appends the rules that hold, in order (a pass for the record
        # matches with it), exactly those whose code says they hold
        held: list[int] = []
        codes = bucket.first(eager, s, held)
        assert held == want == [i for i, c in enumerate(codes) if c % FIRST_BASE == 0], ticket
        v = read_slots(slots, s)
        for i, tree in enumerate(trees):   # explain's first failing step, as conditions.failure
            k = gen.explainers[i](v, s)
            got = None if k < 0 else _failed(gen.steps[i][k], s)
            assert got == failure(tree, s), (raw[i], ticket)


def test_read_keys_name_items_only_for_item_tests() -> None:
    assert read_keys(_tree({"field": "tags", "op": "includes", "value": "VIP"})) == {("tags", "vip")}
    assert read_keys(_tree({"field": "tags", "op": "is_empty"})) == {("tags", None)}
    assert read_keys(_tree({"all": [{"field": "custom.x", "op": "is", "value": "a"},
                                    {"field": "contact.groups", "op": "includes_any",
                                     "value": ["A", "b"]}]})) == {
        ("custom.x", "a"), ("contact.groups", "a"), ("contact.groups", "b")}
    assert read_keys(_tree({"field": "priority", "op": "gt", "value": "low"})) == {("priority", None)}


def _rule(rid: str, conditions: dict[str, Any], actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": rid, "triggers": ["ticket.updated"], "conditions": conditions, "actions": actions}


def test_a_fire_makes_later_readers_see_its_writes_and_no_one_else_is_checked_again() -> None:
    rules = [
        _rule("tagger", {"field": "status", "op": "is", "value": "open"},
              [{"type": "add_tags", "tags": ["Escalate"]}]),
        _rule("own-tag", {"field": "status", "op": "is", "value": "open"},
              [{"type": "add_tags", "tags": ["own"]}]),
        _rule("reader", {"field": "tags", "op": "includes", "value": "escalate"},
              [{"type": "set", "field": "priority", "value": "urgent"}]),
        _rule("not-reader", {"field": "tags", "op": "excludes", "value": "escalate"},
              [{"type": "add_tags", "tags": ["calm"]}]),
        _rule("prio", {"field": "priority", "op": "is", "value": "urgent"},
              [{"type": "set", "field": "custom.seen", "value": "yes"}]),
        _rule("custom", {"field": "custom.seen", "op": "is", "value": "yes"},
              [{"type": "close"}]),
        _rule("empty", {"field": "tags", "op": "is_empty"}, [{"type": "add_tags", "tags": ["x"]}]),
    ]
    ruleset = engine.compile_rules(rules)
    ev = ruleset.evaluate({"type": "ticket.updated"}, make_ticket(tags=[], status="open"), now=NOW)
    assert ev.matched == ["tagger", "own-tag", "reader", "prio", "custom"]
    assert ev.changes["status"] == ["open", "closed"]
    explain = {e["id"]: e for e in ev.explain}
    assert explain["not-reader"]["failed"]["seen"] == ["Escalate", "own"]
    assert explain["empty"]["failed"]["seen"] == ["Escalate", "own"]
    bucket = ruleset._buckets["ticket.updated"]
    t0 = make_ticket(priority="normal", status="open")
    t1 = make_ticket(priority="urgent", status="closed")
    assert bucket.affected(1, frozenset(), t0, t0) == {6}     # only is_empty reads tags at large
    assert bucket.affected(0, frozenset(), t0, t0) == {2, 3, 6}   # `escalate` readers + is_empty
    assert bucket.affected(0, frozenset({3}), t0, t0) == {2, 6}   # excluded rules are not visited
    assert bucket.affected(2, frozenset(), t0, t1) == {4}     # priority normal -> urgent: its reader
    assert bucket.affected(2, frozenset(), t1, t1) == set()   # a set that changed nothing
    assert bucket.affected(5, frozenset(), t0, t1) == set()   # nothing after reads status


def test_a_scalar_write_concerns_the_rules_reading_its_old_or_new_value() -> None:
    rules = [_rule("up", {"field": "status", "op": "is", "value": "open"},
                   [{"type": "set", "field": "priority", "value": "high"}]),
             _rule("was-normal", {"field": "priority", "op": "is", "value": "normal"},
                   [{"type": "add_tags", "tags": ["n"]}]),
             _rule("is-high", {"field": "priority", "op": "in", "value": ["high", "urgent"]},
                   [{"type": "add_tags", "tags": ["h"]}]),
             _rule("not-low", {"field": "priority", "op": "is_not", "value": "low"},
                   [{"type": "add_tags", "tags": ["l"]}]),
             _rule("above", {"field": "priority", "op": "gt", "value": "normal"},
                   [{"type": "add_tags", "tags": ["a"]}])]
    bucket = engine.compile_rules(rules)._buckets["ticket.updated"]
    t0, t1 = make_ticket(priority="normal"), make_ticket(priority="high")
    assert bucket.affected(0, frozenset(), t0, t1) == {1, 2, 4}  # `is_not low`: neither value
    ev = engine.compile_rules(rules).evaluate({"type": "ticket.updated"}, t0, now=NOW)
    assert ev.matched == ["up", "is-high", "not-low", "above"]
