"""The batch of appends (rules/passes.py `_appends`): a pass where many rules hold, each adding
tags of its own, fires them in one batch. What it leaves (matched, changes, ticket, timeline,
explain and the stored record) must be the loop's, entry for entry; where the batch does not
apply (a tag already on the ticket, a tag two rules add, a rule that does more) the loop runs."""

from __future__ import annotations

import random
from typing import Any

import orjson

import rules as engine
from rules.passes import BATCH_AT
from ruletools import NOW, stored_entries

EVENT = {"type": "ticket.updated"}
TAGS = [f"t{i}" for i in range(10)]


def _rules(rng: random.Random, n: int, tags: Any = None) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        leaf = rng.choice([{"field": "tags", "op": "includes", "value": rng.choice(TAGS)},
                           {"field": "channel", "op": "in", "value": ["email", "chat"]},
                           {"field": "subject", "op": "contains", "value": "refund"}])
        add = tags(i) if tags else [f"r-{i}", f"R-{i}-b"][: rng.randint(1, 2)]
        out.append({"id": f"r{i}", "name": f"rule {i}", "triggers": ["ticket.updated"],
                    "conditions": {"all": [leaf, {"any": [{"field": "custom.seats", "op": "gt", "value": 3},
                                                          {"field": "channel", "op": "is", "value": "email"}]}]},
                    "actions": [{"type": "add_tags", "tags": add}]})
    return out


def _loop_only(ruleset: Any) -> Any:
    for bucket in ruleset._buckets.values():
        bucket.batch = [False] * len(bucket.batch)
    return ruleset


def _ticket(rng: random.Random, extra: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"id": "T1", "subject": rng.choice(["Refund now", "hello"]), "channel": rng.choice(["email", "chat", "web"]),
            "tags": rng.sample(TAGS, rng.randint(2, 6)) + list(extra), "custom": {"seats": rng.randint(0, 9)}}


def _same(batch: Any, loop: Any, rules: list[dict[str, Any]], ticket: dict[str, Any]) -> Any:
    for record in (False, True):
        a = batch.evaluate(EVENT, ticket, None, NOW, record=record)
        b = loop.evaluate(EVENT, ticket, None, NOW, record=record)
        assert a.matched == b.matched and a.changes == b.changes and a.ticket == b.ticket
        assert [(p, t, v, n) for p, t, v, n in a._timeline] == [(p, t, v, n) for p, t, v, n in b._timeline]
        assert a.explain == b.explain
        revisions = {r["id"]: 1 for r in rules}
        assert orjson.dumps(stored_entries(a, rules, revisions)) == orjson.dumps(stored_entries(b, rules, revisions))
    return a


def test_a_batch_of_appends_leaves_what_the_loop_leaves() -> None:
    rng = random.Random(10)
    rules = _rules(rng, 120)
    batch, loop = engine.compile_rules(rules), _loop_only(engine.compile_rules(rules))
    assert all(batch._buckets["ticket.updated"].batch)
    taken = 0
    for _ in range(40):
        ticket = _ticket(rng)
        ev = _same(batch, loop, rules, ticket)
        taken += len(ev.matched) >= BATCH_AT
    assert taken >= 10   # (the batch ran: enough events fire BATCH_AT rules or more)


def test_where_the_batch_does_not_apply_the_loop_answers() -> None:
    rng = random.Random(11)
    # a tag the ticket has already: not appended again, the loop works out which are new
    rules = _rules(rng, 80)
    batch, loop = engine.compile_rules(rules), _loop_only(engine.compile_rules(rules))
    for i in range(20):
        ticket = _ticket(rng, extra=[f"R-{i}"])   # (folds as a tag rule i may add)
        _same(batch, loop, rules, ticket)
    # a tag two rules add: they are no batch rules, the loop adds it once
    rules = _rules(rng, 80, tags=lambda i: [f"r-{i % 40}"])
    ruleset = engine.compile_rules(rules)
    assert not any(ruleset._buckets["ticket.updated"].batch)
    for _ in range(10):
        ticket = _ticket(rng)
        ev = _same(ruleset, _loop_only(engine.compile_rules(rules)), rules, ticket)
        assert len(ev.changes.get("tags", {}).get("added", [])) == len({t.casefold() for t in ev.changes.get(
            "tags", {}).get("added", [])})
    # tags already on the ticket, or the ticket without a tags list
    rules = _rules(rng, 60)
    batch, loop = engine.compile_rules(rules), _loop_only(engine.compile_rules(rules))
    for tags in (None, "t1", [], ["T1", 3, None]):
        ticket = dict(_ticket(rng), tags=tags)
        _same(batch, loop, rules, ticket)
