"""Long texts and many text conditions: a pass must not hold the GIL for as long as it scans.

1,000 rules of `description contains` over a 1 MB description held the GIL ~0.8 s a pass, in a
thread too (the generated code is straight-line: no point where CPython hands the GIL over), so
every other workspace's requests and events waited (tests/server/test_tenant_isolation.py). A
text past LONG_TEXT is scanned by the regex module without the GIL, and a bucket's code gives
way every YIELD_SCANS scans. Same answers as before: checked here against str's own `in`."""

from __future__ import annotations

import random

import pytest
from testkit import ticks_beside

from rules import compile_rules, scans
from rules.scans import LONG_TEXT, YIELD_SCANS, long_text


def test_long_texts_answer_substring_tests_as_str_does() -> None:
    rng = random.Random(5)
    alphabet = "ab.*?[](){}|\\^$+ éÉß\u0130xyz\n"
    for _ in range(60):
        text = "".join(rng.choice(alphabet) for _ in range(LONG_TEXT + rng.randint(1, 3000)))
        wrapped = long_text(text)
        assert wrapped == text and type(wrapped) is not str
        for _ in range(20):
            start = rng.randrange(len(text) - 8)
            needle = (text[start:start + rng.randint(1, 8)] if rng.random() < 0.5 else
                      "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))))
            assert (needle in wrapped) == (needle in text), (needle, start)
            assert (needle not in wrapped) == (needle not in text)
        assert wrapped.startswith(text[:5]) and wrapped.endswith(text[-5:])
    assert type(long_text("short")) is str


def _rules(n: int) -> list[dict[str, object]]:
    return [{"id": f"c{i}", "name": f"c{i}", "enabled": True, "triggers": ["ticket.updated"],
             "conditions": {"any": [{"field": "description", "op": "contains", "value": f"mark{i}x"},
                                    {"field": "subject", "op": "contains", "value": f"only{i}x"}]},
             "actions": [{"type": "add_tags", "tags": [f"t{i}"]}]} for i in range(n)]


@pytest.mark.parametrize("size", [200, LONG_TEXT + 10, 3 * LONG_TEXT])
def test_a_pass_over_long_texts_matches_as_over_short_ones(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rules over the same ticket, with and without the long-text scan and the give-way
    calls, fire the same rules and record the same explain (the generated code's other paths are
    the differential tests' business)."""
    rules = _rules(3 * YIELD_SCANS)
    body = ("lorem ipsum " * (size // 12 + 1))[:size]
    ticket = {"id": "T-1", "subject": "only7x here", "description": body[: size // 2] + "mark5x mark40x" + body}
    event = {"id": "e", "type": "ticket.updated", "ticket": ticket}
    got = compile_rules(rules).evaluate(event, ticket, record=True)
    monkeypatch.setattr(scans, "LONG_TEXT", 10 ** 9)
    monkeypatch.setattr(scans, "YIELD_SCANS", 10 ** 9)
    plain = compile_rules(rules).evaluate(event, ticket, record=True)
    assert got.matched == plain.matched and got.changes == plain.changes
    assert got.explain == plain.explain
    assert sorted(got.matched) == ["c40", "c5", "c7"]


def test_a_pass_scanning_a_long_text_leaves_other_threads_the_gil() -> None:
    """While a thread evaluates 400 `contains` over a 1 MB description (~0.3 s), this thread
    keeps running Python: it ticks in most 20 ms slices of that time (with str's scan the pass
    held the GIL throughout)."""
    rules = compile_rules([{**r, "conditions": {"field": "description", "op": "contains",
                                                "value": f"aaaaaaaab{i}"}} for i, r in enumerate(_rules(400))])
    ticket = {"id": "T-1", "description": "a" * 1_000_000}
    event = {"id": "e", "type": "ticket.updated", "ticket": ticket}
    ticked, inside, took = ticks_beside(lambda: rules.evaluate(event, ticket, record=True), 0.02)
    assert inside >= 5, f"the pass took {took:.3f} s: too short to tell"
    assert ticked >= 0.5 * inside, (ticked, inside)
