"""server/runrecord.bound_record: a record over the limit is trimmed in order until it fits, and
the size it works from is exact (each trim re-measures only the parts it touched)."""

from __future__ import annotations

import orjson

from server.runrecord import bound_record

LIMIT = 20_000


def _record(ticket: int, logs: int, rules: int) -> dict:
    return {"id": "run_1", "matched": ["r1"],
            "ticket": {"id": "T-1", "version": 3, "description": "d" * ticket},
            "scripts": [{"name": "s", "logs": ["l" * 100] * logs, "updates": {"x": 1}}],
            "changes": {"tags": {"added": ["a"], "removed": []}},
            "rules": [{"id": f"r{i}", "name": "n" * 40, "matched": False, "failed": None}
                      for i in range(rules)]}


def test_a_record_under_the_limit_is_the_same_object():
    rec = _record(100, 1, 1)
    assert bound_record(rec, LIMIT) is rec


def test_trims_stop_as_soon_as_it_fits_and_the_result_fits():
    rec = _record(30_000, 5, 10)   # the ticket copy alone is over
    out = bound_record(rec, LIMIT)
    assert out["trimmed"] == ["ticket (read it at GET /v1/tickets/{id})"]
    assert len(orjson.dumps(out)) <= LIMIT
    assert out["scripts"][0]["logs"] == rec["scripts"][0]["logs"]   # not trimmed: not needed
    assert rec["ticket"]["description"]   # the caller's record is untouched


def test_the_running_size_is_exact_across_several_trims():
    rec = _record(12_000, 250, 10)   # ticket + logs must both go
    out = bound_record(rec, LIMIT)
    assert out["trimmed"][:2] == ["ticket (read it at GET /v1/tickets/{id})", "scripts[].logs"]
    assert len(orjson.dumps(out)) <= LIMIT
    assert "changes" not in out["trimmed"]   # it fitted before the run's own data


def test_an_explain_over_the_limit_trims_everything_else_and_keeps_every_rule():
    rec = _record(5_000, 20, 600)   # `rules` alone ~ 40 KB: never trimmed
    out = bound_record(rec, LIMIT)
    assert len(out["rules"]) == 600 and out["rules"] == rec["rules"]
    assert "changes" in out["trimmed"] and out["changes"] == {"trimmed": True}
    assert out["matched"] == ["r1"] and out["id"] == "run_1"


# --- the stored rules: the worker's entries, packed (runrecord.stored_rules) ---------------------

def _rules(unnamed: bool = False) -> list[dict]:
    return [{"id": "a", "name": "A", "triggers": ["ticket.created"],
              "conditions": {"all": [{"field": "priority", "op": "is", "value": "high"}]},
              "actions": [{"type": "add_tags", "tags": ["x"]}]},
             {"id": "b", "name": "B", "triggers": ["ticket.created"],
              "conditions": {"all": [{"field": "tags", "op": "includes", "value": "vip"},
                                     {"any": [{"field": "subject", "op": "contains", "value": "refund"},
                                              {"field": "channel", "op": "is", "value": "chat"}]}]},
              "actions": [{"type": "add_tags", "tags": ["y"]}]},
             {**({} if unnamed else {"id": "c"}), "name": "no id" if unnamed else "C", "triggers": ["ticket.created"],
              "conditions": {"all": [{"field": "tags", "op": "includes", "value": "x"}]},
              "actions": [{"type": "set", "field": "priority", "value": "low"}]}]


def _evaluation(unnamed: bool = False):
    from rules import compile_rules
    ticket = {"subject": "Refund", "priority": "high", "tags": ["vip", "old"], "channel": "email"}
    return compile_rules(_rules(unnamed)).evaluate({"type": "ticket.created"}, ticket)


def test_stored_rules_are_the_entries_with_revisions_byte_for_byte():
    """The worker's StoredRules reads as the entries; what it stores is the packed form, which a
    reader expands (each rule's plan at its revision) to the same bytes."""
    from rules.packed import unpack
    from rules.revision_plan import rule_plan
    from server.runrecord import StoredRules, checked_rule_ids, packed_rules, rule_errors, stored_rules
    revisions = {"a": 4, "b": 7, "c": 1}
    want = [dict(e, revision=revisions.get(str(e.get("id")))) for e in _evaluation().rule_entries()]
    got = stored_rules(_evaluation(), revisions)
    assert isinstance(got, StoredRules)
    assert len(got) == 3 and got[0] == want[0] and list(got) == want and got == want
    assert [e["revision"] for e in got] == [4, 7, 1]
    assert checked_rule_ids(got) == checked_rule_ids(want) == ["a", "b", "c"]
    assert rule_errors(got) == rule_errors(want) == []
    stored = orjson.loads(orjson.dumps({"rules": got}))["rules"]
    packed = packed_rules(stored)
    assert packed is not None and packed["ids"] == ["a", "b", "c"] and packed["revs"] == [4, 7, 1]
    plans = {r["id"]: rule_plan(r) for r in _rules()}
    assert orjson.dumps(unpack(packed, lambda i: (plans[packed["ids"][i]], 0))) == orjson.dumps(want)
    # a revision the reader cannot find: the entry says so, and the others are whole
    partial = unpack(packed, lambda i: None if i == 1 else (plans[packed["ids"][i]], 0))
    assert partial[0] == want[0] and partial[2] == want[2]
    assert partial[1]["id"] == "b" and "revision 7 of rule b is not stored" in partial[1]["notes"][0]
    # a plan that is not the rule's (a definition changed under its revision number: no write
    # does that) cannot make a read fail: its entry says it cannot be shown
    from rules import compile_rules
    two = {"id": "d", "triggers": ["ticket.created"], "actions": [{"type": "add_tags", "tags": ["y"]}],
           "conditions": {"all": [{"field": "priority", "op": "is", "value": "high"},
                                  {"field": "channel", "op": "is", "value": "chat"}]}}
    ev = compile_rules([two]).evaluate({"type": "ticket.created"}, {"priority": "high", "channel": "email"})
    packed = packed_rules(orjson.loads(orjson.dumps({"rules": stored_rules(ev, {"d": 2})}))["rules"])
    assert packed is not None
    short = rule_plan({**two, "conditions": {"all": [two["conditions"]["all"][0]]}})
    [wrong] = unpack(packed, lambda i: (short, 0))
    assert wrong["notes"] == ["the stored entry of rule d does not fit its revision 2: its entry cannot be shown"]
    assert unpack(packed, lambda i: (rule_plan(two), 0))[0]["failed"]["seen"] == "email"


def test_a_rule_without_an_id_makes_the_entries_stored_whole():
    from server.runrecord import StoredRules, packed_rules, stored_rules
    got = stored_rules(_evaluation(unnamed=True), {"a": 4})
    assert not isinstance(got, StoredRules) and packed_rules(got) is None
    assert [e["id"] for e in got] == ["a", "b", None] and got[0]["revision"] == 4


def test_stored_rules_cannot_be_changed_and_copies_are_plain_lists():
    import copy

    import pytest

    from server.runrecord import stored_rules
    got = stored_rules(_evaluation(), {})
    for change in (lambda: got.append({}), lambda: got.__setitem__(0, {}), lambda: got.clear()):
        with pytest.raises(TypeError):
            change()
    deep = copy.deepcopy(got)
    assert type(deep) is list and deep == list(got)
    deep[0]["name"] = "changed"
    assert got[0]["name"] == "A"


def test_a_record_over_the_limit_keeps_its_stored_rules_as_they_are():
    from server.runrecord import stored_rules
    rules = stored_rules(_evaluation(), {"a": 1})
    rec = {"id": "run_1", "matched": ["a"], "rules": rules,
           "ticket": {"id": "T-1", "description": "d" * 30_000}}
    out = bound_record(rec, LIMIT)
    assert out["rules"] is rules and out["trimmed"] == ["ticket (read it at GET /v1/tickets/{id})"]
    assert len(orjson.dumps(out)) <= LIMIT and rec["ticket"]["description"]


def test_a_rule_naming_a_calendar_is_planned_for_reading_whatever_calendars_exist_now():
    """A rule read back at its revision may name a calendar since deleted: its steps are still
    numbered as its bucket's were (the calendar step's entry is stored whole)."""
    from rules.record import OWN, PLAIN
    from rules.revision_plan import rule_plan
    plan = rule_plan({"id": "x", "triggers": ["ticket.updated"], "actions": [{"type": "add_tags", "tags": ["a"]}],
                      "conditions": {"all": [{"field": "created_at", "op": "older_than_business", "value": "2h",
                                              "calendar": "gone"},
                                             {"field": "status", "op": "is", "value": "open"}]}})
    assert [(step[0], step[1]) for step in plan.steps[0]] == [(OWN, "conditions.all[0]"), (PLAIN, "conditions.all[1]")]
