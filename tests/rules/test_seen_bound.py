"""An explain entry's `seen` is bounded (rules/jsondata.py SEEN_MAX_CHARS / SEEN_MAX_BYTES): the
value a failing condition read is copied into the run record once per rule, so a tenant's huge
subject or tags list read by a thousand failing rules would otherwise make a record of hundreds
of megabytes in the worker's memory and the store. Explain, the record's entries and the bytes
the worker stores agree on the cut."""

from __future__ import annotations

from typing import Any

import orjson

import rules as engine
from rules.jsondata import SEEN_MAX_BYTES, SEEN_MAX_CHARS, SEEN_TRUNCATED, seen_copy
from rules.packed import pack
from ruletools import NOW, stored_entries

RULES = 200


def _rules(field: str, op: str, value: Any) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "name": f"rule {i}", "enabled": True, "triggers": ["ticket.updated"],
             "conditions": {"all": [{"field": field, "op": op, "value": value}]},
             "actions": [{"type": "add_tags", "tags": [f"t{i}"]}]} for i in range(RULES)]


def _event(ticket: dict[str, Any]) -> dict[str, Any]:
    return {"id": "e1", "type": "ticket.updated", "ticket": ticket}


def _all_forms(rules: list[dict[str, Any]], ticket: dict[str, Any]) -> list[Any]:
    ruleset = engine.compile_rules(rules, {})
    ev = ruleset.evaluate(_event(ticket), ticket, now=NOW)
    explain = [item["failed"]["seen"] for item in ev.explain]
    entries = [e["failed"]["seen"] for e in ruleset.evaluate(_event(ticket), ticket, now=NOW).rule_entries()]
    packed = orjson.dumps(pack(ruleset.evaluate(_event(ticket), ticket, now=NOW), {}))
    got = stored_entries(ruleset.evaluate(_event(ticket), ticket, now=NOW), rules, {})
    assert got is not None
    stored = [e["failed"]["seen"] for e in got]
    # what is stored holds the value once, not once per rule
    assert len(got) == RULES and len(packed) < RULES * 60 + 2 * (SEEN_MAX_BYTES + 400)
    assert explain == entries == stored
    return stored


def test_a_huge_subject_is_cut_in_every_failing_rules_entry() -> None:
    subject = "é" * 400_000   # 800 KB of UTF-8
    seen = _all_forms(_rules("subject", "is", "x"), {"id": "T1", "subject": subject})
    assert seen[0] == subject[:SEEN_MAX_CHARS] + SEEN_TRUNCATED and len(set(seen)) == 1


def test_a_huge_tags_list_and_custom_object_are_cut_as_their_json() -> None:
    tags = [f"{i:03d}" + "x" * 190 for i in range(100)]
    seen = _all_forms(_rules("tags", "includes", "nope"), {"id": "T1", "tags": tags})
    want = orjson.dumps(tags)[:SEEN_MAX_BYTES].decode() + SEEN_TRUNCATED
    assert seen[0] == want
    custom = {"blob": ["y" * 100] * 100}
    seen = _all_forms(_rules("custom.blob", "includes", "nope"), {"id": "T1", "custom": custom})
    assert isinstance(seen[0], str) and seen[0].endswith(SEEN_TRUNCATED)


def test_values_within_the_bounds_are_kept_whole() -> None:
    subject = "s" * SEEN_MAX_CHARS
    assert _all_forms(_rules("subject", "is", "x"), {"id": "T1", "subject": subject})[0] == subject
    tags = ["a" * 100] * 8
    assert _all_forms(_rules("tags", "includes", "nope"), {"id": "T1", "tags": tags})[0] == tags
    for v in (None, 3, 2.5, True, "", [], {}, ["x"] * 5, {"a": [1, 2]}, ["z" * 300] * 6):
        assert seen_copy(v) == v and (type(v) not in (list, dict) or seen_copy(v) is not v)
    assert seen_copy("y" * 1001) == "y" * 1000 + SEEN_TRUNCATED


def test_the_dry_runs_every_leaf_report_is_cut_the_same_way() -> None:
    """A dry run reports every leaf with its `seen`; a rule of many leaves over one huge field
    would otherwise answer leaves × the field's size."""
    from rules.ruleset import dry_run
    subject = "z" * 300_000
    rule = {"id": "r", "name": "many leaves", "triggers": ["ticket.updated"],
            "conditions": {"any": [{"field": "subject", "op": "is", "value": f"v{i}"} for i in range(300)]},
            "actions": [{"type": "add_tags", "tags": ["x"]}]}
    ticket = {"id": "T1", "subject": subject}
    out = dry_run(rule, _event(ticket), ticket, now=NOW)
    leaves = out["rule"]["conditions"]
    assert len(leaves) == 300
    assert all(leaf["seen"] == subject[:SEEN_MAX_CHARS] + SEEN_TRUNCATED for leaf in leaves)
    assert len(orjson.dumps(out)) < 300 * (SEEN_MAX_CHARS + 300)
