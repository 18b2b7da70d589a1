"""A bucket's generated source grows with its rules, not with their values times their conditions.

A rule filed in the value index under a key of N values (`subject in [N values]`) was written
into each of the N values' functions of its bucket's source (rules/codegen.py `_emit`): one
64 KiB rule of a 1,000-value `in` and ~1,100 short conditions was 22-24 MB of source, 8 s of
CPython's compile and 2 GB, and three of them put the worker's compile past its process's input
limit (tests/server/test_redteam17_compile.py). Now a rule is filed under at most MAX_FILED places
(rules/ruleset.py; past it, checked on every event, as a rule with no key is) and a long test
checked under several values is one function the values' functions call (codegen SHARED_BODY).
Answers are the oracle's either way.
"""
from __future__ import annotations

from typing import Any

import orjson
import pytest

import rules.codegen as codegen
from rules import compile_rules
from rules.ruleset import MAX_FILED
from ruletools import NOW, make_event, make_rule, make_ticket
import oracle


def _fat(i: int, values: int, conds: int) -> dict[str, Any]:
    base = [{"field": "subject", "op": "in", "value": [f"r{i}v{j}" for j in range(values)]}]
    leaves = [{"field": "subject", "op": "not_contains", "value": f"z{k % 7}"} for k in range(conds)]
    return make_rule(f"fat{i}", conditions={"all": base + leaves}, triggers=["ticket.updated"])


def _sources(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = codegen.compile_bucket

    def kept(source: str) -> Any:
        seen.append(source)
        return real(source)

    monkeypatch.setattr(codegen, "compile_bucket", kept)
    return seen


@pytest.mark.parametrize("values", [1000, MAX_FILED, MAX_FILED + 1, 10, 2])
def test_a_rules_source_is_about_as_long_as_its_json(values: int, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = _sources(monkeypatch)
    rules = [_fat(i, values, 1000) for i in range(3)]
    compile_rules(rules)
    size = sum(len(s) for s in sources)
    assert size < 3 * len(orjson.dumps(rules)), (values, size, len(orjson.dumps(rules)))


@pytest.mark.parametrize("values", [1000, MAX_FILED, MAX_FILED + 1, 10, 2])
def test_filed_or_not_a_rule_answers_as_the_oracle(values: int) -> None:
    rules = [_fat(i, values, 30) for i in range(4)] + [
        make_rule("two keys", triggers=["ticket.updated"], conditions={"all": [
            {"field": "subject", "op": "in", "value": [f"r1v{j}" for j in range(values)]},
            {"field": "tags", "op": "includes_any", "value": ["k1", "k2", "k3"]},
            *({"field": "subject", "op": "not_contains", "value": f"q{k}"} for k in range(30))]})]
    engine, truth = compile_rules(rules), oracle.compile_rules(rules)
    for subject in ("r1v0", f"r1v{values - 1}", "R2V1", "r3v1", "r1v0 z1", "r9v0", "nothing"):
        for tags in ([], ["k2"], ["K3", "x"]):
            ticket = make_ticket(subject=subject, tags=tags)
            got = engine.evaluate(make_event(), ticket, now=NOW)
            want = truth.evaluate(make_event(), ticket, now=NOW)
            assert got.matched == want.matched, (subject, tags, got.matched, want.matched)


def test_a_bucket_of_many_filed_rules_compiles_in_linear_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 rules filed under MAX_FILED values each: 64,000 generated functions. Nested in one
    function, CPython's compile copies the enclosing function's names into each one's scope
    analysis: 192 s for this set (past the compile process's 10 s of CPU, CHECK_TIMEOUT_S, then
    compiled in the worker). Module-level: ~2 s here. Every `def` of the source is at column 0."""
    import time

    sources = _sources(monkeypatch)
    rules = [make_rule(f"m{i}", triggers=["ticket.updated"], conditions={
        "field": "subject", "op": "in", "value": [f"{i}.{j}" for j in range(MAX_FILED)]}) for i in range(1000)]
    ruleset = compile_rules(rules)
    (source,) = sources
    assert source.count("def ") >= 64_000 and "\n    def " not in source
    t0 = time.process_time()
    codegen.compile_bucket(source)
    assert time.process_time() - t0 < 8.0   # (the compile process's limit is 10 s of CPU)
    assert ruleset.evaluate(make_event(), make_ticket(subject="7.3"), now=NOW).matched == ["m7"]
