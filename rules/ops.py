"""Condition ops: which field types each applies to, what value it takes, and its predicate.

A predicate is built once per condition (`build_predicate`) and called per event with a `State`;
it never raises on odd data: a value of the wrong type simply does not hold. Every negative op is
built as `not` of its positive, so the two are exact negations by construction.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from .business import BUSINESS_OPS, business_flip, business_test
from .calendar import Calendar
from .durations import duration_seconds
from .fields import ORDINAL, Field
from .ordinal import ORDINAL_OPS, is_ordinal, ordinal_predicate
from .regexes import Matcher, regex_problem
# State and Predicate live below the op families (rules/state.py); the engine modules that
# gather ops read them from here too.
from .state import Predicate as Predicate, State as State  # re-exported

# op -> the field types it applies to ("any" fields take every op).
_TEXT_OPS = {"is", "is_not", "in", "not_in", "contains", "not_contains", "starts_with",
             "ends_with", "matches"}
_LIST_OPS = {"includes", "includes_any", "includes_all", "excludes"}
_EMPTY_OPS = {"is_empty", "is_not_empty"}
_CHANGE_OPS = {"changed", "changed_from", "changed_to"}
_TIME_OPS = {"older_than", "newer_than"}
_NUMBER_OPS = {"gt", "gte", "lt", "lte"}

OPS: frozenset[str] = frozenset(
    _TEXT_OPS | _LIST_OPS | _EMPTY_OPS | _CHANGE_OPS | _TIME_OPS | _NUMBER_OPS | BUSINESS_OPS
)
OPS_FOR_TYPE: dict[str, frozenset[str]] = {
    "text": frozenset(_TEXT_OPS | _EMPTY_OPS | _CHANGE_OPS),
    "list": frozenset(_LIST_OPS | _EMPTY_OPS | _CHANGE_OPS),
    "timestamp": frozenset(_TIME_OPS | BUSINESS_OPS | _EMPTY_OPS | {"changed"}),
    "any": OPS,
}
# Ops a field takes beyond its type's: the ordinal comparisons on status and priority.
EXTRA_OPS_FOR_FIELD: dict[str, frozenset[str]] = {name: ORDINAL_OPS for name in ORDINAL}
NEGATIONS: dict[str, str] = {
    "is_not": "is", "not_in": "in", "not_contains": "contains", "excludes": "includes",
    "is_not_empty": "is_empty",
}
TIME_OPS = frozenset(_TIME_OPS | BUSINESS_OPS)  # the ops that make a rule a time rule
MAX_REGEX_LENGTH = 1000
# An `in` / `includes_any` / `includes_all` list: each value is folded and indexed when the rule
# set compiles (a 1,000,000-value rule set took 23 s to compile).
MAX_LIST_VALUES = 1000
# `matches` is Python's re.search, as API.md says, with every match bounded in time and all of one
# pass's matches bounded together: see rules/regexes.py.




# ---------------------------------------------------------------- value checks (compile time)

def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _text_value(v: object, ftype: str) -> str | None:
    """The complaint about a single comparison value, or None when it is fine."""
    if isinstance(v, str):
        return None if v else "must be a non-empty string"
    if ftype == "any" and (_is_number(v) or isinstance(v, bool)):
        return None
    return "must be a non-empty string" + (", a number or a boolean" if ftype == "any" else "")


def check_value(op: str, ftype: str, has_value: bool, value: object) -> str | None:
    """Why `value` does not fit `op` on a field of type `ftype`, or None when it does."""
    if op in ("is_empty", "is_not_empty", "changed"):
        return f"'{op}' takes no value" if has_value else None
    if not has_value:
        return f"'{op}' needs a value"
    if op in ("in", "not_in", "includes_any", "includes_all"):
        if type(value) is not list or not value:
            return "must be a non-empty list"
        if len(value) > MAX_LIST_VALUES:
            return f"has {len(value)} values; at most {MAX_LIST_VALUES} (MAX_LIST_VALUES)"
        for item in value:
            why = _text_value(item, "any" if ftype == "any" else "text")
            if why:
                return "every item " + why
        return None
    if op in ("contains", "not_contains", "starts_with", "ends_with", "matches"):
        if not isinstance(value, str) or not value:
            return "must be a non-empty string"
        if op == "matches":
            if len(value) > MAX_REGEX_LENGTH:
                return f"regex longer than {MAX_REGEX_LENGTH} characters"
            try:
                with warnings.catch_warnings():  # e.g. FutureWarning for "[[a]": not our caller's problem
                    warnings.simplefilter("ignore")
                    re.compile(value)
            except re.error as exc:
                return f"invalid regex: {exc}"
            return regex_problem(value)
        return None
    if op in _NUMBER_OPS:
        return None if _is_number(value) else "must be a number"
    if op in _TIME_OPS or op in BUSINESS_OPS:
        return None if duration_seconds(value) is not None else (
            "must be a duration like '90s', '5m', '1h30m' or '2d', greater than zero")
    if op in ("changed_from", "changed_to") and ftype == "list":
        if type(value) is not list or not all(isinstance(x, str) and x for x in value):
            return "must be a list of non-empty strings"
        return None
    return _text_value(value, ftype)


# ---------------------------------------------------------------- equality (run time)

def is_empty(v: Any) -> bool:
    return v is None or (type(v) in (str, list, dict) and not v)


def strict_equal(a: Any, b: Any) -> bool:
    """JSON equality with no coercion: True != 1, "5" != 5, 1 == 1.0."""
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if ta in (int, float) and tb in (int, float):
        return bool(a == b)
    if ta is not tb:
        return False
    if ta is list:
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _fold_set(v: list[Any]) -> frozenset[Any]:
    return frozenset(x.casefold() if isinstance(x, str) else repr(x) for x in v)


def same_value(a: Any, b: Any, as_set: bool) -> bool:
    """`changed`'s notion of sameness: exact, but all empties are equal and tags/groups are sets."""
    if is_empty(a) and is_empty(b):
        return True
    if as_set and type(a) is list and type(b) is list:
        return _fold_set(a) == _fold_set(b)
    return strict_equal(a, b)


def matcher(value: Any, case_sensitive: bool) -> Callable[[Any], bool]:
    """raw -> bool: does a raw value equal the rule's scalar `value` (text equality)?"""
    if isinstance(value, str):
        if case_sensitive:
            return lambda raw: isinstance(raw, str) and raw == value
        folded = value.casefold()
        return lambda raw: isinstance(raw, str) and raw.casefold() == folded
    return lambda raw: strict_equal(raw, value)


# ---------------------------------------------------------------- predicates

def build_predicate(field: Field, op: str, value: Any, cs: bool, list_field: bool,
                    calendar: Calendar | None = None) -> Predicate:
    positive = NEGATIONS.get(op)
    if positive is not None:
        inner = build_predicate(field, positive, value, cs, list_field)
        return lambda s: not inner(s)
    if op in BUSINESS_OPS:
        assert calendar is not None  # resolved at compile time
        test = business_test(value, op == "older_than_business", calendar)
        return lambda s: test(s, field)
    if is_ordinal(field, op) and isinstance(value, str):
        return ordinal_predicate(field, op, value, cs)
    build = _BUILDERS[op]
    return build(field, value, cs, list_field)


def _b_is(f: Field, value: Any, cs: bool, lf: bool) -> Predicate:
    if isinstance(value, str) and not cs:
        folded = value.casefold()
        return lambda s: s.folded(f) == folded
    m = matcher(value, cs)
    return lambda s: m(s.read(f))


def _b_in(f: Field, value: list[Any], cs: bool, lf: bool) -> Predicate:
    if not cs and all(isinstance(v, str) for v in value):
        folded = frozenset(v.casefold() for v in value)
        return lambda s: type(x := s.folded(f)) is str and x in folded
    ms = [matcher(v, cs) for v in value]
    return lambda s: any(m(raw) for raw in (s.read(f),) for m in ms)


def _text_op(test: Callable[[str, str], bool]) -> Callable[[Field, Any, bool, bool], Predicate]:
    def build(f: Field, value: str, cs: bool, lf: bool) -> Predicate:
        if cs:
            return lambda s: isinstance(raw := s.read(f), str) and test(raw, value)
        folded = value.casefold()
        return lambda s: type(x := s.folded(f)) is str and test(x, folded)
    return build


def _b_matches(f: Field, value: str, cs: bool, lf: bool) -> Predicate:
    m = Matcher(value, cs)   # (its search is looked up per call: the rule set may share it, Matcher.share)

    def pred(s: State) -> bool:
        return isinstance(raw := s.read(f), str) and m.search(raw, s.budget)
    pred.matcher = m  # type: ignore[attr-defined]
    return pred


def _compare(test: Callable[[Any, Any], bool]) -> Callable[[Field, Any, bool, bool], Predicate]:
    def build(f: Field, value: Any, cs: bool, lf: bool) -> Predicate:
        def pred(s: State) -> bool:
            raw = s.read(f)
            return _is_number(raw) and bool(test(raw, value))
        return pred
    return build


def _item_test(value: Any, cs: bool) -> Callable[[State, Field], bool]:
    """(state, field) -> does the list field hold an item equal to `value`?"""
    if isinstance(value, str) and not cs:
        folded = value.casefold()
        return lambda s, f: type(x := s.folded(f)) is frozenset and folded in x
    m = matcher(value, cs)
    return lambda s, f: type(raw := s.read(f)) is list and any(m(item) for item in raw)


def _b_includes(f: Field, value: Any, cs: bool, lf: bool) -> Predicate:
    t = _item_test(value, cs)
    return lambda s: t(s, f)


def _b_includes_any(f: Field, value: list[Any], cs: bool, lf: bool) -> Predicate:
    tests = [_item_test(v, cs) for v in value]
    return lambda s: any(t(s, f) for t in tests)


def _b_includes_all(f: Field, value: list[Any], cs: bool, lf: bool) -> Predicate:
    tests = [_item_test(v, cs) for v in value]
    return lambda s: all(t(s, f) for t in tests)


def _b_is_empty(f: Field, value: Any, cs: bool, lf: bool) -> Predicate:
    return lambda s: is_empty(s.read(f))


def _b_changed(f: Field, value: Any, cs: bool, lf: bool) -> Predicate:
    return lambda s: not same_value(s.read_previous(f), s.read(f), lf)


def _value_test(value: Any, cs: bool, lf: bool) -> Callable[[Any], bool]:
    if lf:  # a list value on tags / contact.groups: the same set (case-insensitive unless cs)
        def key(xs: list[Any]) -> frozenset[Any]:
            return frozenset(x if isinstance(x, str) else repr(x) for x in xs) if cs else _fold_set(xs)
        want = key(value)
        return lambda raw: (key(raw) if type(raw) is list else (frozenset() if is_empty(raw) else None)) == want
    return matcher(value, cs)


def _b_changed_from(f: Field, value: Any, cs: bool, lf: bool) -> Predicate:
    m = _value_test(value, cs, lf)

    def pred(s: State) -> bool:
        prev, cur = s.read_previous(f), s.read(f)
        return not same_value(prev, cur, lf) and m(prev)
    return pred


def _b_changed_to(f: Field, value: Any, cs: bool, lf: bool) -> Predicate:
    m = _value_test(value, cs, lf)

    def pred(s: State) -> bool:
        prev, cur = s.read_previous(f), s.read(f)
        return not same_value(prev, cur, lf) and m(cur)
    return pred


def _elapsed_test(value: str, older: bool) -> Callable[[State, Field], bool]:
    """now - t >= D (older_than) or < D (newer_than), exact for any D: a D beyond what a
    timedelta holds is longer than any span between two datetimes."""
    seconds = duration_seconds(value)
    assert seconds is not None  # checked at compile time
    try:
        d: timedelta | None = timedelta(seconds=seconds)
    except OverflowError:
        d = None

    def test(s: State, f: Field) -> bool:
        t = s.timestamp(f)
        if t is None:
            return False
        try:
            elapsed = s.now - t
        except OverflowError:
            return False
        at_least = d is not None and elapsed >= d
        return at_least if older else not at_least
    return test


def _b_older_than(f: Field, value: str, cs: bool, lf: bool) -> Predicate:
    test = _elapsed_test(value, older=True)
    return lambda s: test(s, f)


def _b_newer_than(f: Field, value: str, cs: bool, lf: bool) -> Predicate:
    test = _elapsed_test(value, older=False)
    return lambda s: test(s, f)


_BUILDERS: dict[str, Callable[[Field, Any, bool, bool], Predicate]] = {
    "is": _b_is,
    "in": _b_in,
    "contains": _text_op(lambda raw, v: v in raw),
    "starts_with": _text_op(lambda raw, v: raw.startswith(v)),
    "ends_with": _text_op(lambda raw, v: raw.endswith(v)),
    "matches": _b_matches,
    "gt": _compare(lambda a, b: a > b),
    "gte": _compare(lambda a, b: a >= b),
    "lt": _compare(lambda a, b: a < b),
    "lte": _compare(lambda a, b: a <= b),
    "includes": _b_includes,
    "includes_any": _b_includes_any,
    "includes_all": _b_includes_all,
    "is_empty": _b_is_empty,
    "changed": _b_changed,
    "changed_from": _b_changed_from,
    "changed_to": _b_changed_to,
    "older_than": _b_older_than,
    "newer_than": _b_newer_than,
}


def flip_time(field: Field, op: str, value: str, state: State,
              calendar: Calendar | None = None) -> datetime | None:
    """When a time condition next changes its answer (after state.now), or None if it never will."""
    if op in BUSINESS_OPS and calendar is not None:
        return business_flip(field, value, calendar, state)
    if op not in _TIME_OPS:
        return None
    t = state.timestamp(field)
    seconds = duration_seconds(value)
    if t is None or seconds is None:
        return None
    try:
        at = t + timedelta(seconds=seconds)
    except OverflowError:
        return None
    return at if at > state.now else None
