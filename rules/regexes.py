"""`matches`: Python `re.search` semantics, with every match bounded in time and per pass.

A rule's regex is a tenant's, and every workspace shares one process, where a C-level `re` match
holds the GIL for as long as it backtracks (`"a?"*26 + "a"*26` on 26 characters: 3.8 s;
`a*a*a*a*a*a*a*a*b` on 40: 19 s). `re` cannot be interrupted, so each match goes one of two ways:

1. **`re`, when its worst case on this text is small.** At compile time the pattern's parse tree
   gives a bound on backtracking: each repeat of variable count (`a?`, `a*`, `a{2,5}`) is a choice
   point, so a pattern with v of them and alternations of b_1..b_k branches tries at most about
   `m * (n+1)^(v+1) * b_1 * ... * b_k` steps on n characters (m: the pattern's length). Nested
   repeats, alternation under a repeat and backreferences have no such bound. When the bound is at
   most RE_MAX_STEPS (a few milliseconds), `re` runs: exact, and too short to matter.
2. **Otherwise the `regex` package**, with `timeout=` and `concurrent=True` (it releases the GIL
   while it matches, so the event loop keeps serving other tenants). A match that times out does
   not hold, and the explain says so. `regex` (its re-compatible V0 mode) gives the same answers as
   `re` on ASCII text for a pattern whose literals are ASCII (tests/rules/test_regex_bounds.py
   checks this differentially); on other text it may differ in a few exotic Unicode cases
   (`\\w` on superscripts, case pairs such as `İ`/`i`), documented in docs/rules-engine.md. That
   path is only taken for texts long enough that `re`'s worst case would be unsafe.

Every match, either way, draws on the pass's RegexBudget: REGEX_BUDGET_S of regex time per
evaluate pass (all rules, the explain included), so 1,000 rules of 50 ms each cannot add up to
50 s. Once spent, no further regex runs in that pass and each `matches` left does not hold. The
budget reads `time.perf_counter` -- a resource bound, not an input: rule answers never depend on
the clock except when a bound is hit.
"""
from __future__ import annotations

import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import regex

MATCH_TIMEOUT_S = 0.05      # one match on the regex package
REGEX_BUDGET_S = 0.25       # all matches of one evaluate pass (and its explain)
MAX_REGEX_EXPANSION = 10_000  # a pattern's size with counted repeats expanded (compile time)
RE_MAX_STEPS = 200_000      # the worst-case backtracking bound under which `re` itself runs
RE_UNTIMED_STEPS = 5_000    # below this, a match is not timed but charged at _STEP_S a step
_STEP_S = 2e-8
_UNBOUNDED = float("inf")
_NOT_ASCII_SAFE = re.compile(r"[\x1c-\x1f]")  # re counts these as \s; regex does not
# Regex time a pass may take on the caller's event loop (`on_loop`) before it is run again in a
# thread: about what one of its other steps costs there.
LOOP_REGEX_S = 0.001


class OffLoop(BaseException):
    """A pass's regexes need more than `on_loop` allows: run the pass again where it may take
    its whole budget (a thread). A BaseException, so that an engine's `except Exception` (a bug
    must not wedge a partition) does not turn it into an answer."""


_LOOP = threading.local()


@contextmanager
def on_loop(seconds: float = LOOP_REGEX_S) -> Iterator[None]:
    """Within it, the passes this thread starts may spend `seconds` of regex time in all, worst
    cases counted before they run, and no match on the regex package (the long texts, which it
    matches without the GIL in a thread); past that a match raises OffLoop instead of running.

    Why: a pass with regexes ran in a thread so that a slow one is not felt by the workspaces
    sharing the event loop, but almost every pass's regexes are short matches of short texts,
    and the thread's hand-off and the GIL passed between the loop and the thread cost more than
    the pass (POST-to-applied p50 3.0 -> 1.4 ms at 600 events/s in `serve`, bench/RESULTS.md).
    A pass that finishes within `seconds` hit no time bound, so its answers are the ones the
    thread would give (a bound is the only way time enters an answer)."""
    _LOOP.allowance = [seconds]
    try:
        yield
    finally:
        _LOOP.allowance = None


class RegexBudget:
    """Regex time left in one pass; which patterns were cut short (for the explain); and the
    answers of the searches that finished in the pass, by (text, pattern, case-sensitive).

    Why the answers: rule sets repeat patterns (`refund(s|ed)?` in many rules, over the same
    subject), and a search is a pure function of its text and pattern, so a second rule asking
    the same search in the pass is answered without running it (and without spending the
    budget). Only finished searches are kept, and only of patterns more than one condition of
    the trigger's rules use (Matcher.share): one cut short (time bound, spent budget) is run
    again when asked again, as before, so a slow pattern cannot be made to hold by repeating it.
    The answers live as long as the pass, and are at most one per search it ran."""

    __slots__ = ("left", "cut", "answers", "loop")

    def __init__(self, seconds: float = REGEX_BUDGET_S) -> None:
        self.left = seconds
        self.cut: set[str] = set()
        self.answers: dict[tuple[str, str, bool], bool] = {}
        # on the event loop (`on_loop`): the regex time left there, shared by the pass's budgets
        self.loop: list[float] | None = getattr(_LOOP, "allowance", None)


def cut_short_note(pattern: str) -> str:
    return (f"the regex {pattern!r} did not finish within its time bound ({int(MATCH_TIMEOUT_S * 1000)} ms "
            f"per match, {int(REGEX_BUDGET_S * 1000)} ms of regex time per event: REGEX_BUDGET_S), "
            "so it does not hold")


@lru_cache(maxsize=4096)
def _shape(pattern: str) -> tuple[float, float, bool, float]:
    """(choice points v, branch product, ASCII-literal pattern, expanded size) from re's parse
    tree (parsed once per pattern: re's parser is Python, ~5 ms for 1,000 characters). v is
    infinite for shapes without a polynomial bound; the expanded size is the pattern's with its
    counted repeats written out, as the regex package compiles it (`(?:a{1000}){1000}` took 1.5 s).
    (The walks are module functions, not closures: a closure that calls itself is a reference
    cycle, which a worker's frozen compiles never free, server/gcpolicy.py.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = re._parser.parse(pattern, 0)  # type: ignore[attr-defined]
    walked = _Walked()
    _walk(tree, walked)
    return walked.choice, walked.product, walked.ascii_only, _size(tree)


_C = re._constants  # type: ignore[attr-defined]
_REPEATS = {_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", None)}
_NESTS = (_C.SUBPATTERN, _C.ASSERT, _C.ASSERT_NOT, _C.ATOMIC_GROUP)


class _Walked:
    __slots__ = ("ascii_only", "choice", "product")

    def __init__(self) -> None:
        self.ascii_only, self.choice, self.product = True, 0.0, 1.0


def _has_choice(items: Any) -> bool:
    for op, arg in items:
        if op in _REPEATS:
            lo, hi, sub = arg
            if lo != hi or _has_choice(sub):
                return True
        elif op is _C.BRANCH:
            return True
        elif op in _NESTS:
            if _has_choice(arg[-1]):
                return True
    return False


def _walk(items: Any, w: _Walked) -> None:
    for op, arg in items:
        if op in _REPEATS:
            lo, hi, sub = arg
            if hi not in (0, 1) and _has_choice(sub):
                w.choice = _UNBOUNDED  # a repeat of something ambiguous: exponential
                return
            if lo != hi:
                w.choice += 1
            _walk(sub, w)
        elif op is _C.BRANCH:
            w.product *= len(arg[1])
            for b in arg[1]:
                _walk(b, w)
        elif op is _C.GROUPREF or op is _C.GROUPREF_EXISTS:
            w.choice = _UNBOUNDED
            return
        elif op in _NESTS:
            _walk(arg[-1], w)
        elif op is _C.LITERAL or op is _C.NOT_LITERAL:
            w.ascii_only = w.ascii_only and arg < 128
        elif op is _C.IN:
            for sop, sarg in arg:
                if sop is _C.LITERAL:
                    w.ascii_only = w.ascii_only and sarg < 128
                elif sop is _C.RANGE:
                    w.ascii_only = w.ascii_only and sarg[1] < 128


def _size(items: Any) -> float:
    total = 0.0
    for op, arg in items:
        if op in _REPEATS:
            lo, hi, sub = arg
            total += _size(sub) * max(lo if hi == _C.MAXREPEAT else hi, 1)
        elif op is _C.BRANCH:
            total += sum(_size(b) for b in arg[1])
        elif op in _NESTS:
            total += _size(arg[-1])
        else:
            total += 1
    return total


class Matcher:
    """One `matches` condition's search: `matcher(text, budget) -> bool`."""

    __slots__ = ("pattern", "_re", "_flags", "_choice", "_scale", "_ascii", "_cheap_len", "_safe_len",
                 "search", "_cs", "_shared")

    def __init__(self, pattern: str, case_sensitive: bool) -> None:
        self.pattern = pattern
        flags = 0 if case_sensitive else re.IGNORECASE
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._re = re.compile(pattern, flags).search
        choice, product, ascii_only, _ = _shape(pattern)
        self._choice = choice + 1  # search tries every start position
        self._scale = max(len(pattern), 1) * product
        self._ascii = ascii_only and not caught  # a FutureWarning: a nested set regex reads otherwise
        self._cheap_len = self._max_len(RE_UNTIMED_STEPS)
        self._safe_len = self._max_len(RE_MAX_STEPS)
        self._flags = regex.V0 | (0 if case_sensitive else regex.IGNORECASE)
        self._cs = case_sensitive
        self._shared = False
        self.search = self._bind(False)

    def share(self, shared: bool = True) -> None:
        """Another condition of the rule set searches with the same pattern: keep this one's
        answers in the pass's budget (RegexBudget.answers). Only then: a search no other rule
        asks would pay the keeping (~0.2 us) for nothing. `shared=False`: no longer (the rule
        is reused in a set where no other condition asks it, rules/compile_cache.py)."""
        if shared != self._shared:
            self._shared = shared
            self.search = self._bind(shared)

    def _max_len(self, steps: float) -> int:
        """The longest text on which re's worst case stays within `steps`."""
        if self._choice == _UNBOUNDED:
            return 0
        room = steps / self._scale
        if room < 1:
            return 0
        return max(int(room ** (1 / self._choice)) - 1, 0)

    def __call__(self, text: str, budget: RegexBudget) -> bool:
        return self.search(text, budget)

    def _bind(self, shared: bool) -> Callable[[str, RegexBudget], bool]:
        """The search as a closure over locals: this runs per rule per event, and the cheap
        path must cost little more than re's own search. `shared`: a search the pass ran
        already is answered from the budget's `answers` (RegexBudget), and a finished one kept."""
        plain, pattern, flags, cs = self._re, self.pattern, self._flags, self._cs
        bounded: list[Callable[..., Any] | None] = []  # the regex-package search, compiled on first use
        cheap_len, safe_len, choice = self._cheap_len, self._safe_len, self._choice
        per_step = self._scale * _STEP_S
        clock = time.perf_counter
        ascii_ok = self._ascii   # (not self.exact: a bound method in the closure would be a cycle)
        wanted: list[bool] = []   # a pass on the loop wanted the regex-package search (on_loop)

        def _compile() -> None:
            try:
                found: Callable[..., Any] | None = regex.compile(pattern, flags).search
            except (regex.error, ValueError, OverflowError, RecursionError):
                found = None
            if not bounded:   # (a list append: atomic, and a second compile is only waste)
                bounded.append(found)

        def search(text: str, budget: RegexBudget) -> bool:
            if shared:
                key = (text, pattern, cs)
                known = budget.answers.get(key)
                if known is not None:
                    return known
            if budget.left <= 0:
                budget.cut.add(pattern)
                return False
            n = len(text)
            loop = budget.loop
            if wanted and loop is None and not bounded:   # a pass moved for it: for its next try
                _compile()
            if n <= cheap_len:  # re, too short to time: charge its worst case instead
                cost = per_step * (n + 1) ** choice
                if loop is not None:
                    loop[0] -= cost
                    if loop[0] < 0:
                        raise OffLoop
                budget.left -= cost
                got = plain(text) is not None
                if shared:
                    budget.answers[key] = got
                return got
            timeout = MATCH_TIMEOUT_S
            use_re = n <= safe_len
            if loop is not None:   # on the event loop: no match that could outlast what is left
                if loop[0] <= 0:
                    raise OffLoop
                timeout = loop[0]
                if use_re and per_step * (n + 1) ** choice > loop[0]:
                    if not _exact(ascii_ok, text):   # re's worst case here is more than is left
                        raise OffLoop
                    use_re = False        # the regex package, stopped at what is left: re's answer
                if not use_re and not bounded:
                    wanted.append(True)   # compiled where it is matched next (a thread)
                    raise OffLoop         # (its compile: 0.1 ms to ~20 ms a pattern)
            t0 = clock()
            try:
                if use_re:
                    got = plain(text) is not None
                    if shared:
                        budget.answers[key] = got
                    return got
                if not bounded:  # compiled lazily: most texts never need it (~20 ms a pattern)
                    _compile()
                rx = bounded[0]
                if rx is None:  # the regex package refuses it: never run re unbounded
                    budget.cut.add(pattern)
                    return False
                try:
                    got = rx(text, timeout=min(timeout, budget.left), concurrent=True) is not None
                    if shared:
                        budget.answers[key] = got
                    return got
                except TimeoutError:
                    if loop is not None:
                        raise OffLoop from None   # (in a thread it has MATCH_TIMEOUT_S)
                    budget.cut.add(pattern)
                    return False
            finally:
                spent = clock() - t0
                budget.left -= spent
                if loop is not None:
                    loop[0] -= spent
        return search

    def exact(self, text: str) -> bool:
        """Whether the regex-package path gives re's answer on this text (see the module doc)."""
        return _exact(self._ascii, text)


def _exact(ascii_pattern: bool, text: str) -> bool:
    return ascii_pattern and bool(text) and text.isascii() and _NOT_ASCII_SAFE.search(text) is None


def regex_problem(pattern: str) -> str | None:
    """Why a pattern `re` accepts cannot run bounded, or None: counted repeats that expand past
    MAX_REGEX_EXPANSION. (Call after re accepted it. The regex package is compiled lazily, on the
    first text long enough to need it; one it refuses -- none is known among patterns re accepts
    -- then does not hold, with the cut-short note.)"""
    try:
        if _shape(pattern)[3] > MAX_REGEX_EXPANSION:
            return (f"regex too large once its counted repeats are expanded (more than "
                    f"{MAX_REGEX_EXPANSION}: MAX_REGEX_EXPANSION); use smaller counts like {{1,100}}")
    except (re.error, RecursionError) as exc:
        return f"invalid regex: {exc}"
    return None


__all__ = ["Matcher", "RegexBudget", "OffLoop", "on_loop", "LOOP_REGEX_S", "MATCH_TIMEOUT_S", "REGEX_BUDGET_S", "RE_MAX_STEPS", "MAX_REGEX_EXPANSION",
           "cut_short_note", "regex_problem"]
