"""The quick pack (rules/packed.py `_pack_quick`) and the record's JSON (server/runrecord.py
`packed_json`): what the worker stores for the common pass, built without asking each rule what
its entry shows, reads back as the same entries, byte for byte, as the general pack's and as
explain's, on broad rule sets whose events fire many rules (issue 15's workload)."""

from __future__ import annotations

import random
from typing import Any

import orjson

import rules as engine
from rules.packed import pack
from ruletools import NOW, stored_entries

TAGS = [f"t{i}" for i in range(12)]
GROUPS = ["g0", "g1", "g2", "g3"]
WORDS = ["refund", "login", "crash", "invoice", "slow"]


def _leaf(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(6)
    if kind == 0:
        return {"field": "tags", "op": "includes", "value": rng.choice(TAGS)}
    if kind == 1:
        return {"field": "contact.groups", "op": "includes", "value": rng.choice(GROUPS)}
    if kind == 2:
        return {"field": rng.choice(("subject", "description")), "op": "contains", "value": rng.choice(WORDS)}
    if kind == 3:
        return {"field": "channel", "op": rng.choice(("is", "is_not")), "value": rng.choice(("email", "chat"))}
    if kind == 4:
        return {"field": "custom.plan", "op": "in", "value": rng.sample(["free", "pro", "team"], 2)}
    return {"field": "custom.seats", "op": rng.choice(("gt", "lt")), "value": rng.randint(0, 50)}


def _rules(rng: random.Random, n: int, action: Any = None) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        part: list[Any] = [_leaf(rng) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.5:
            part.insert(rng.randint(0, len(part)), {"any": [_leaf(rng) for _ in range(rng.randint(2, 3))]})
        out.append({"id": f"r{i}", "name": f"rule {i}", "triggers": ["ticket.updated"],
                    "conditions": {"all": part},
                    "actions": [action(i) if action else {"type": "add_tags", "tags": [f"r-{i}"]}]})
    return out


def _ticket(rng: random.Random) -> dict[str, Any]:
    return {"id": "T1", "subject": " ".join(rng.sample(WORDS, 2)).title(),
            "description": " ".join(rng.choice(WORDS) for _ in range(4)), "channel": rng.choice(("email", "chat")),
            "tags": rng.sample(TAGS, rng.randint(1, 5)),
            "contact": {"groups": rng.sample(GROUPS, rng.randint(0, 2))},
            "custom": {"plan": rng.choice(("free", "pro", "team")), "seats": rng.randint(0, 50)}}


EVENT = {"type": "ticket.updated"}


def _general(ruleset: Any) -> Any:
    """The same rule set with the quick pack turned off (the general way, as before it)."""
    for bucket in ruleset._buckets.values():
        bucket.record.quick = False
    return ruleset


def test_the_quick_pack_reads_back_as_the_general_pack_and_explain_byte_for_byte() -> None:
    rng = random.Random(15)
    taken = 0
    for size in (3, 40, 150):
        rules = _rules(rng, size)
        quick, general = engine.compile_rules(rules), _general(engine.compile_rules(rules))
        revisions = {r["id"]: 2 for r in rules}
        for _ in range(25):
            ticket = _ticket(rng)
            for record in (True, False):   # (the worker's pass codes every rule as it matches)
                ev = quick.evaluate(EVENT, ticket, None, NOW, record=record)
                want = [dict(e, revision=2) for e in general.evaluate(EVENT, ticket, None, NOW).rule_entries()]
                assert want == [dict(e, revision=2) for e in [
                    {k: v for k, v in item.items() if k not in ("errors", "notes") or v}
                    for item in general.evaluate(EVENT, ticket, None, NOW).explain]]
                packed = pack(ev, revisions)
                assert packed is not None
                # every field at version 0, not only those an entry shows: the quick pack was taken
                taken += packed["seen"]["fields"] == ev._bucket.record.seen_names
                got = stored_entries(ev, rules, revisions)
                slow = stored_entries(general.evaluate(EVENT, ticket, None, NOW, record=record), rules, revisions)
                assert orjson.dumps(got) == orjson.dumps(slow) == orjson.dumps(want)
    assert taken == 3 * 25 * 2


def test_the_quick_pack_stores_every_field_once_where_the_general_one_asks_each_rule() -> None:
    rules = [{"id": "a", "name": "a", "triggers": ["ticket.updated"], "actions": [{"type": "add_tags", "tags": ["x"]}],
              "conditions": {"all": [{"field": "channel", "op": "is", "value": "chat"},
                                     {"field": "subject", "op": "contains", "value": "refund"}]}}]
    ticket = {"channel": "email", "subject": "Refund"}
    ev = engine.compile_rules(rules).evaluate(EVENT, ticket, None, NOW, record=True)
    # the rule fails on channel; its subject is shown by no entry, and stored all the same
    assert pack(ev, {})["seen"] == {"fields": ["channel", "subject"], "values": [[0, ["email", "Refund"]]]}
    assert stored_entries(ev, rules, {})[0]["failed"]["seen"] == "email"
    ev = _general(engine.compile_rules(rules)).evaluate(EVENT, ticket, None, NOW, record=True)
    assert pack(ev, {})["seen"] == {"fields": ["channel"], "values": [[0, ["email"]]]}


def test_passes_the_quick_pack_does_not_describe_take_the_general_way() -> None:
    rng = random.Random(7)
    # a fire that sets a field later rules read: they are checked again at their turn
    rules = _rules(rng, 60, action=lambda i: {"type": "set", "field": "custom.plan", "value": ("pro", "free")[i % 2]})
    ruleset = engine.compile_rules(rules)
    general = _general(engine.compile_rules(rules))
    for _ in range(10):
        ticket = _ticket(rng)
        ev = ruleset.evaluate(EVENT, ticket, None, NOW, record=True)
        assert not ev._appended or not ev.matched
        assert orjson.dumps(stored_entries(ev, rules, {})) == orjson.dumps(
            stored_entries(general.evaluate(EVENT, ticket, None, NOW, record=True), rules, {}))
    # a rule the caller excludes (a time rule that fired already) is stored whole
    rules = _rules(rng, 20)
    ticket = _ticket(rng)
    ev = engine.compile_rules(rules).evaluate(EVENT, ticket, None, NOW, record=True, exclude=["r3"])
    packed = pack(ev, {})
    assert packed is not None and [i for i, _ in packed["full"]] == [3]


def test_the_stored_json_is_the_packed_dicts_and_its_ids_are_written_once_per_rule_set() -> None:
    from server.runrecord import packed_json, stored_rules
    rng = random.Random(3)
    rules = _rules(rng, 50)
    ruleset = engine.compile_rules(rules)
    revisions = {r["id"]: 5 for r in rules}
    heads = set()
    for _ in range(5):
        ticket = _ticket(rng)
        ev = ruleset.evaluate(EVENT, ticket, None, NOW, record=True)
        got = stored_rules(ev, revisions)
        want = orjson.dumps({"rules": [pack(ruleset.evaluate(EVENT, ticket, None, NOW, record=True), revisions)]})
        assert orjson.dumps({"rules": got}) == want
        heads.add(id(ev._bucket.record.json_head[2]))
    assert len(heads) == 1   # the ids and revisions serialized once, kept on the plan
    # data orjson cannot write (never from the API) stays a dict: the commit's dumps says what
    odd = {"packed": 1, "ids": ["a"], "revs": [1], "codes": [1], "fired": [], "full": [], "at": [0],
           "seen": {"values": [[0, [2**70]]]}}
    assert packed_json(odd, ruleset._buckets["ticket.updated"].record) is odd
    other = {"ids": ["a"], "packed": 1, "revs": [1]}   # (not pack's shape: left as it is)
    assert packed_json(other, ruleset._buckets["ticket.updated"].record) is other
