"""Every `matches` is bounded: per match, per pass, and off the GIL (rules/regexes.py)."""
from __future__ import annotations

import random
import re
import time
import warnings
from datetime import datetime, timezone
from typing import Any

import pytest
from testkit import ticks_beside

import rules.regexes as R
from rules import compile_rules, dry_run
from rules.regexes import Matcher, RegexBudget

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)

# Shapes the old `_risky()` check let through to `re` (no nested repeat, no alternation under a
# repeat, no backreference), each seconds to hours of GIL-held backtracking on a short text.
SLOW = [
    ("a?" * 26 + "a" * 26, "a" * 26),                  # 3.8 s on re
    ("a*a*a*a*a*a*a*a*b", "a" * 40),                    # 19 s on re
    (r"\w*\w*\w*\w*\w*\w*\w*\w*\w*!", "x" * 60),
    ("(?:x|y|z)?" * 20 + "q", "x" * 40),
    (r"(?:a+)(?:a+)(?:a+)(?:a+)(?:a+)(?:a+)(?:a+)c", "a" * 60),
    (r"(a|aa)+$", "a" * 80 + "!"),                      # the old check's own example
    (r"(\w+)\1\1\1\1\1z", "ab" * 500),
]


def _rule(rid: str, pattern: str, tags: list[str] | None = None) -> dict:
    return {"id": rid, "name": rid, "triggers": ["message.received"],
            "conditions": {"field": "message.body", "op": "matches", "value": pattern},
            "actions": [{"type": "add_tags", "tags": tags or [rid]}]}


def _event(body: str) -> dict:
    return {"type": "message.received", "message": {"body": body}}


@pytest.mark.parametrize("pattern,text", SLOW, ids=[p[:20] for p, _ in SLOW])
def test_slow_shapes_are_cut_short_and_do_not_hold(pattern: str, text: str) -> None:
    rs = compile_rules([_rule("slow", pattern), _rule("after", "^a", ["ok"])])
    t0 = time.perf_counter()
    ev = rs.evaluate(_event(text), {}, now=NOW)
    assert time.perf_counter() - t0 < 1.0
    want = pattern.startswith("a?")  # re's answer, were it to finish: only `a?`*N `a`*N matches
    if ("slow" in ev.matched) != want:  # not re's answer: only allowed when cut short, and said
        failed = ev.explain[0]["failed"]
        assert failed["op"] == "matches" and "did not finish within its time bound" in failed["note"]


def test_the_budget_bounds_a_whole_pass() -> None:
    """300 rules of 50 ms each must not mean 15 s: the pass stops running regexes at the budget."""
    rules = [_rule(f"r{i}", "(a|aa)+" + "$" * (1 + i % 7)) for i in range(300)]
    rules.append(_rule("plain", "^a", ["plain"]))
    rs = compile_rules(rules)
    t0 = time.perf_counter()
    ev = rs.evaluate(_event("a" * 80 + "!"), {}, now=NOW)
    explain = ev.explain  # the explain re-checks failing rules: the same budget bounds it
    took = time.perf_counter() - t0
    assert took < R.REGEX_BUDGET_S + 1.0, took
    assert ev.matched == []  # even `^a` is not run once the budget is spent, and says so
    assert "REGEX_BUDGET_S" in explain[-1]["failed"]["note"]


def test_dry_run_trace_notes_the_cut() -> None:
    out = dry_run(_rule("slow", "(a|aa)+$"), _event("a" * 80 + "!"), {}, now=NOW)
    assert out["matched"] is False
    assert "note" in out["rule"]["conditions"][0]


def test_a_match_releases_the_gil(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a thread runs one 1-second match, this thread keeps running Python code: it ticks
    in most 50 ms slices of that second (holding the GIL, the match would leave it none)."""
    monkeypatch.setattr(R, "MATCH_TIMEOUT_S", 1.0)
    m = Matcher("(a|aa)+$", True)
    ticked, inside, took = ticks_beside(lambda: m("a" * 200 + "!", RegexBudget(10)), 0.05)
    assert took > 0.5
    assert ticked >= 0.5 * inside, (ticked, inside)


def test_normal_patterns_stay_on_re_and_agree_with_it() -> None:
    for pattern, text in [(r"#[a-z]-\d{5}", "order #A-12345" * 100), ("^ref", "Refund" + "x" * 50_000),
                          (r"\bpassword\b", "reset my password please"), (r"\d+", "x" * 100 + "42")]:
        m = Matcher(pattern, False)
        assert m(text, RegexBudget()) == (re.search(pattern, text, re.I) is not None)


_ATOMS = ["a", "b", "A", "k", "K", "s", "S", "i", "I", "_", "1", " ", r"\w", r"\W", r"\d", r"\D", r"\s",
          r"\S", r"\b", r"\B", ".", "^", "$", r"\A", r"\Z", "[a-z]", "[^a-c]", "[A-Z0-9]", r"[\w-]",
          r"[\s\d]", "(?:a|B)", r"[\x00-\x7f]"]


def _gen(rng: random.Random, depth: int = 0) -> str:
    out = ""
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        if r < 0.15 and depth < 2:
            atom = "(" + _gen(rng, depth + 1) + ")"
        elif r < 0.25 and depth < 2:
            atom = "(?:" + _gen(rng, depth + 1) + "|" + _gen(rng, depth + 1) + ")"
        else:
            atom = rng.choice(_ATOMS)
        if atom not in ("^", "$", r"\A", r"\Z", r"\b", r"\B") and rng.random() < 0.3:
            atom += rng.choice(["*", "+", "?", "{1,2}", "*?"])
        out += atom
    return out


def test_the_regex_path_agrees_with_re_on_ascii(monkeypatch: pytest.MonkeyPatch) -> None:
    """Differential: with `re` never chosen, the bounded path gives re.search's answer on ASCII
    text (where Matcher.exact says so) for random ASCII patterns."""
    monkeypatch.setattr(R, "RE_MAX_STEPS", 0)
    rng = random.Random(7)
    alphabet = "abABkKsSiI_1 \t\n\x0b\x1b\x7f-."
    checked = 0
    for _ in range(3000):
        pattern = rng.choice(["", "(?m)", "(?s)", "(?i)", "(?a)"]) + _gen(rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                re.compile(pattern)
            except re.error:
                continue
        for cs in (True, False):
            m = Matcher(pattern, cs)
            for _ in range(4):
                text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
                assert m.exact(text)
                want = re.search(pattern, text, 0 if cs else re.I) is not None
                assert m(text, RegexBudget(10)) == want, (pattern, cs, text)
                checked += 1
    assert checked > 10_000


def test_the_regex_path_is_not_claimed_exact_where_it_may_differ() -> None:
    assert not Matcher("k", False).exact("\u212a")          # non-ASCII text
    assert not Matcher("\u212a", False).exact("k")          # non-ASCII literal
    assert not Matcher(r"\s", True).exact("\x1c")           # re's extra whitespace
    assert not Matcher("a", True).exact("")


def test_a_pattern_the_bounded_engine_refuses_is_a_compile_error() -> None:
    from rules.ops import check_value
    assert check_value("matches", "text", True, "a{1,2}") is None
    assert check_value("matches", "text", True, "(?<name>a)") is not None  # re: not valid either
    assert "MAX_REGEX_EXPANSION" in check_value("matches", "text", True, "(?:(?:a{100}){100}){100}")


def test_value_lists_are_limited() -> None:
    from rules.ops import MAX_LIST_VALUES, check_value
    assert check_value("in", "text", True, ["x"] * MAX_LIST_VALUES) is None
    why = check_value("includes_any", "list", True, ["x"] * (MAX_LIST_VALUES + 1))
    assert why is not None and "MAX_LIST_VALUES" in why


def test_every_path_agrees_with_re_on_long_ascii_texts() -> None:
    """Through the real thresholds: short texts on re untimed, longer on re timed, long ones on
    the regex package; every answer is re.search's (the patterns here finish on re too)."""
    rng = random.Random(11)
    alphabet = "abAB k_1-.\n"
    for _ in range(400):
        pattern = rng.choice(["", "(?i)", "(?m)"]) + _gen(rng, 2)  # flat: no groups
        if sum(pattern.count(q) for q in "*+?{") > 2:
            continue  # re itself must finish on the long texts below: at most n^3 steps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                re.compile(pattern)
            except re.error:
                continue
        for cs in (True, False):
            m, compiled = Matcher(pattern, cs), re.compile(pattern, 0 if cs else re.I)
            for n in (0, 5, 300, 1000):
                text = "".join(rng.choice(alphabet) for _ in range(n))
                assert m(text, RegexBudget(10)) == (compiled.search(text) is not None), (pattern, cs, n)


def test_the_stored_record_keeps_the_cut_short_note(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the worker stores (rules/packed.py `pack`) describes a failing `matches` by its code
    alone only when no regex was cut short in the pass; when one was, each such failure is stored
    whole, with its note, and reads back as the entries say."""
    from ruletools import stored_entries

    import rules.regexes
    # (a pass with room for every 50 ms match: with the 250 ms one, a loaded machine's slow
    # matches could spend it all in one pass and not the other, so "quick" was cut in one only)
    monkeypatch.setattr(rules.regexes.RegexBudget.__init__, "__defaults__", (10.0,))

    rules = [_rule("slow", "(a|aa)+$"), _rule("quick", "^b", ["b"])]
    rs = compile_rules(rules)
    revisions = {"slow": 1, "quick": 1}
    for body, noted in (("a" * 80 + "!", True), ("xyz", False)):
        # (each from its own pass: a pass's record spends what is left of its regex budget)
        want = [dict(e, revision=1) for e in rs.evaluate(_event(body), {}, now=NOW).rule_entries()]
        assert ("note" in want[0]["failed"]) is noted
        got = stored_entries(rs.evaluate(_event(body), {}, now=NOW), rules, revisions)
        assert got == want


def test_a_search_many_rules_ask_runs_once_a_pass_and_a_cut_one_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules repeating a pattern over the same text share one search per pass (RegexBudget
    `answers`): the answer is the search's own, so every rule holds as before. A search cut
    short is not kept: each rule asking it runs it again (and is cut again), so a slow pattern
    repeated cannot hold, nor cost more than the budget."""
    calls: list[str] = []
    real = re.compile

    def counting(pattern: Any, flags: int = 0) -> Any:
        compiled = real(pattern, flags)
        if pattern != "refund(s|ed)?":
            return compiled

        class Counted:
            def search(self, text: str) -> Any:
                calls.append(text)
                return compiled.search(text)
        return Counted()

    monkeypatch.setattr(R.re, "compile", counting)
    rules = [_rule(f"r{i}", "refund(s|ed)?") for i in range(40)]
    rs = compile_rules(rules)
    monkeypatch.undo()
    ev = rs.evaluate(_event("Two REFUNDS please"), {}, now=NOW)
    assert ev.matched == [f"r{i}" for i in range(40)]
    assert len(calls) == 1 and len(ev._first.budget.answers) == 1
    assert ev.explain[0]["matched"] is True and len(calls) == 1   # (the explain asks it again)
    ev = rs.evaluate(_event("nothing here"), {}, now=NOW)
    assert ev.matched == [] and len(calls) == 2
    # a pattern only one condition uses keeps nothing (there is nothing to share)
    ev = compile_rules([_rule("one", "refund(s|ed)?"), _rule("two", "refunds?")]).evaluate(_event("refunds"), {}, now=NOW)
    assert ev.matched == ["one", "two"] and ev._first.budget.answers == {}
    slow = compile_rules([_rule(f"s{i}", "(a|aa)+$") for i in range(12)])
    ev = slow.evaluate(_event("a" * 80 + "!"), {}, now=NOW)
    assert ev.matched == [] and ev._first.budget.answers == {} and ev._first.budget.left <= 0
