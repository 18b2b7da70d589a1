"""A pass's regexes on the event loop (rules.regexes.on_loop): what a pass may spend there, that
it moves (OffLoop) instead of spending more, and that a pass that stays gives the answers of one
run without the allowance."""
from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone

import pytest

from rules import compile_rules
from rules.regexes import Matcher, OffLoop, RegexBudget, on_loop
from test_regex_bounds import _rule

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
WORDS = ["refund", "invoice", "login", "crash", "urgent", "billing", "vip", "cancel", "upgrade",
         "password", "error", "slow", "thanks", "bug", "export"]
PATTERNS = [r"refund(s|ed)?", r"^re:", r"inv(oice)?\s*#?\d+", r"(login|password) (fail|reset)",
            r"\bcrash(es|ed)?\b", r"err(or)?s?", r"[A-Z]{3,}", r"v\.?i\.?p", r"(?i)cancel",
            r"\d{4}-\d{2}"]


def _rules(seed: int) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for i in range(60):
        leaves = [{"field": rnd.choice(["subject", "message.body"]), "op": "matches",
                   "value": rnd.choice(PATTERNS)} for _ in range(rnd.randint(1, 3))]
        if rnd.random() < 0.5:
            leaves.append({"field": "priority", "op": "in", "value": ["high", "urgent"]})
        group = "all" if rnd.random() < 0.5 else "any"
        out.append({"id": f"r{i}", "name": f"r{i}", "triggers": ["message.received"],
                    "conditions": {group: leaves},
                    "actions": [{"type": "add_tags", "tags": [f"t{i}"]}]})
    return out


def _event(rnd: random.Random) -> dict:
    def text() -> str:
        words = [rnd.choice(WORDS) for _ in range(rnd.randint(2, 12))]
        if rnd.random() < 0.3:
            words.append(f"#{rnd.randint(10, 9999)}")
        if rnd.random() < 0.2:
            words.insert(0, rnd.choice(["RE:", "re:", "FWD"]))
        return " ".join(words)
    return {"type": "message.received",
            "ticket": {"subject": text(), "priority": rnd.choice(["low", "high", "urgent"])},
            "message": {"body": text()}}


def _answers(rs, event: dict) -> tuple:
    ev = rs.evaluate(event, event["ticket"], now=NOW, record=True)
    return ev.matched, ev.changes, ev.ticket, ev.explain


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_pass_that_stays_on_the_loop_answers_as_one_without_it(seed: int) -> None:
    """400 events of short texts over 60 rules of regexes. A pattern whose `re` worst case on a
    text is more than the allowance is matched on the loop by the regex package, stopped at the
    allowance; the first pass to want it moves (it is compiled in the thread), at most once a
    pattern and field. Every pass that stays answers as the pass without the allowance: matched rules,
    changes, ticket and explain; and once warm, none moves."""
    rs = compile_rules(_rules(seed))
    rnd = random.Random(seed)
    moved = matched = 0
    for round_ in range(2):
        for _ in range(200):
            event = _event(rnd)
            want = _answers(rs, event)
            try:
                with on_loop():
                    got = _answers(rs, event)
            except OffLoop:
                moved += 1
                _answers(rs, event)   # where a moved pass runs next: off the loop
                continue
            assert got == want
            matched += bool(want[0])
        if round_ == 0:
            assert moved <= 2 * len(PATTERNS)   # (a matcher per pattern and field read)
            moved = 0
    assert moved == 0
    assert matched > 50   # (the workload fires rules: the comparison is not of empty answers)


def test_a_long_text_moves_the_pass_before_its_match_runs() -> None:
    """Past the length where `re`'s worst case is bounded the regex package matches (without the
    GIL, in a thread): on the loop that match does not run, the pass moves."""
    rs = compile_rules([{"id": "r", "name": "r", "triggers": ["message.received"],
                         "conditions": {"field": "message.body", "op": "matches", "value": r"a*a*a*b"},
                         "actions": [{"type": "add_tags", "tags": ["x"]}]}])
    event = {"type": "message.received", "message": {"body": "a" * 5_000}}
    with pytest.raises(OffLoop), on_loop():
        rs.evaluate(event, {}, now=NOW)
    assert rs.evaluate(event, {}, now=NOW).matched == []   # and off the loop it is answered


def test_an_unbounded_shape_moves_on_any_text() -> None:
    m = Matcher(r"(a|aa)+$", True)
    with pytest.raises(OffLoop), on_loop():
        m.search("aa", RegexBudget())


def test_the_allowance_is_shared_by_every_budget_of_the_pass() -> None:
    """Worst cases are charged before a match runs: short matches fit one after another until
    their sum passes the allowance, across budgets (evaluate and its explain make their own)."""
    m = Matcher(r"b?c", True)
    text = "abcabc"
    fits = 0
    with pytest.raises(OffLoop), on_loop(0.0005):
        while True:
            m.search(text, RegexBudget())   # a new budget each time: the allowance is the pass's
            fits += 1
            assert fits < 100_000
    assert fits >= 1
    budget = RegexBudget()
    assert budget.loop is None   # after the block: no allowance
    for _ in range(fits + 10):
        m.search(text, budget)


def test_the_allowance_is_the_calling_threads_only() -> None:
    """A pass in a pass thread, while the loop tries another under on_loop, has no allowance."""
    seen: list[object] = []
    with on_loop():
        t = threading.Thread(target=lambda: seen.append(RegexBudget().loop))
        t.start()
        t.join()
        assert RegexBudget().loop is not None
    assert seen == [None]


def test_the_engines_catch_all_does_not_swallow_the_move() -> None:
    """automation.process turns an engine's exception into an automation_error run (a bug must
    not wedge a partition); a move is not one: it reaches the caller, which runs the pass again."""
    from server import automation

    rs = compile_rules([{"id": "r", "name": "r", "triggers": ["message.received"],
                         "conditions": {"field": "message.body", "op": "matches", "value": r"a*a*a*b"},
                         "actions": [{"type": "add_tags", "tags": ["x"]}]}])
    event = {"id": "e1", "type": "message.received", "occurred_at": "2026-03-02T11:00:00Z",
             "ticket": {"id": "T-1"},
             "message": {"body": "a" * 5_000}}
    snap = automation.Snapshot(marker=None, previous=None, contact=None, contact_id=None, rules_rev=1)
    with pytest.raises(OffLoop), on_loop():
        automation.process(snap, event, rs, [], None, NOW, None, run_id="run_1", revisions={"r": 1})
    out = automation.process(snap, event, rs, [], None, NOW, None, run_id="run_1", revisions={"r": 1})
    assert out.record["error"] is None and out.record["matched"] == []


def test_a_try_on_the_loop_stops_at_its_allowance() -> None:
    """The attacker's case: rules of shapes that backtrack for their whole 50 ms bound on any
    text, their regex-package searches compiled (a pass moved for them before). Off the loop a
    pass spends its 250 ms budget; the try on the loop stops at the allowance (1 ms), the search
    stopped by its timeout, not run to its end: what the loop waits before the pass moves."""
    rs = compile_rules([_rule(f"e{i}", p) for i, p in enumerate(["(x+x+)+y", "(a|aa)+$", "(.*a){20}"] * 4)])
    event = {"type": "message.received", "message": {"body": "a" * 40 + "x" * 40}}
    t0 = time.perf_counter()
    rs.evaluate(event, {}, now=NOW)   # (compiles them: the pass a thread runs)
    off_loop = time.perf_counter() - t0
    tries = []
    for _ in range(5):
        t0 = time.perf_counter()
        with pytest.raises(OffLoop), on_loop():
            rs.evaluate(event, {}, now=NOW)
        tries.append(time.perf_counter() - t0)
    assert off_loop > 0.05   # (the shapes are slow: the bound below is not of fast ones)
    assert min(tries) < 0.005, f"tries on the loop took {tries} s"

