"""One table per op: the value a field holds, the condition's value, whether the condition holds.

Every row runs on the oracle and on the engine (the `impl` fixture) and asserts the value written
in the table, which comes from API.md's "exact semantics" / "edge cases, decided" and
docs/rules-engine.md. When a row does not hold, the explain entry must name the leaf and the value
it saw (for `changed*`, `[previous, current]`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ruletools import MISSING, NOW, make_event, make_ticket, make_rule, place

ALL_TYPES = ["ticket.created", "ticket.updated", "message.received", "message.sent",
             "time.reached", "sla.warning", "sla.breached", "ticket.woke"]
NO_VALUE: Any = object()
FIRST_EVENT: Any = object()  # previous=None: before a ticket's first event every field is empty


def case(field: str, current: Any, value: Any, expected: bool, *, cs: bool | None = None,
         prev: Any = FIRST_EVENT, id: str) -> Any:
    return pytest.param(field, current, value, expected, cs, prev, id=id)


PARAMS = "field, current, value, expected, cs, prev"


def run_leaf(impl: Any, field: str, op: str, current: Any, value: Any, expected: bool,
             cs: bool | None = None, prev: Any = FIRST_EVENT, now: datetime = NOW) -> None:
    ticket = make_ticket()
    event = make_event("message.received",
                       message={"author": "customer", "body": "hello", "channel": "chat"})
    rules = []
    handlers = None
    if field.startswith("vars."):
        name = field[len("vars."):]
        handlers = {"http_request": lambda action, t, e, v: (
            {} if current is MISSING else {name: current})}
        rules.append(make_rule("setup", actions=[
            {"type": "http_request", "url": "https://crm.example.com/c", "map": {name: "$.x"}}]))
    else:
        place(field, current, ticket, event)
    previous = None
    if prev is not FIRST_EVENT:
        previous = make_ticket()
        place(field, prev, previous, {})
    leaf: dict[str, Any] = {"field": field, "op": op}
    if value is not NO_VALUE:
        leaf["value"] = value
    if cs is not None:
        leaf["case_sensitive"] = cs
    rules.append(make_rule("r", conditions=leaf, triggers=ALL_TYPES))

    ruleset = impl.compile_rules(rules)
    ev = ruleset.evaluate(event, ticket, previous=previous, now=now, handlers=handlers)

    assert ("r" in ev.matched) is expected
    entry = [e for e in ev.explain if e["name"] == "r"]
    assert len(entry) == 1
    assert entry[0]["matched"] is expected
    if expected:
        assert entry[0]["failed"] is None
    else:
        seen = None if current is MISSING else current
        if op.startswith("changed"):
            before = None if prev is FIRST_EVENT or prev is MISSING else prev
            seen = [before, seen]
        assert entry[0]["failed"] == {
            "path": "conditions", "field": field, "op": op,
            "value": None if value is NO_VALUE else value, "seen": seen}


# --- is -------------------------------------------------------------------------------------

IS = [
    case("subject", "Refund please", "refund PLEASE", True, id="case-insensitive"),
    case("subject", "Refund please", "Refund", False, id="whole-value-only"),
    case("subject", MISSING, "x", False, id="missing-field"),
    case("subject", None, "x", False, id="null-field"),
    case("subject", 5, "5", False, id="number-in-text-field-vs-string"),
    case("subject", " refund please", "refund please", False, id="no-trimming"),
    case("subject", "STRASSE", "straße", True, id="unicode-casefold-sharp-s"),
    case("subject", "straße", "STRASSE", False, cs=True, id="sharp-s-case-sensitive"),
    case("subject", "ΟΔΥΣΣΕΥΣ", "οδυσσευς", True, id="greek-final-sigma"),
    case("subject", "İstanbul", "istanbul", False, id="turkish-dotted-I-casefolds-with-dot"),
    case("subject", "ISTANBUL", "ıstanbul", False, id="turkish-dotless-i-is-not-i"),
    case("subject", "\u212a", "k", True, id="kelvin-sign-casefolds-to-k"),
    case("subject", "ﬁle", "FILE", True, id="ligature-casefolds"),
    case("subject", "café", "cafe\u0301", False, id="no-unicode-normalization"),
    case("subject", "Ǆ", "ǆ", True, id="titlecase-digraph"),
    case("subject", "Refund", "refund", False, cs=True, id="case-sensitive-differs"),
    case("subject", "Refund", "Refund", True, cs=True, id="case-sensitive-equal"),
    case("subject", "Refund", "refund", True, cs=False, id="case-sensitive-false"),
    case("status", "OPEN", "open", True, id="status"),
    case("contact.email", "Ann@Example.com", "ann@example.com", True, id="contact-email"),
    case("contact.name", MISSING, "Ann", False, id="contact-name-missing"),
    case("message.author", "Customer", "customer", True, id="message-author"),
    case("message.body", MISSING, "hello", False, id="message-body-missing"),
    case("event.type", "message.received", "MESSAGE.RECEIVED", True, id="event-type"),
    case("custom.n", 5, 5, True, id="custom-number"),
    case("custom.n", 5, "5", False, id="custom-number-vs-string"),
    case("custom.n", "5", 5, False, id="custom-string-vs-number"),
    case("custom.n", 5, 5.0, True, id="custom-int-equals-float"),
    case("custom.n", True, True, True, id="custom-bool"),
    case("custom.n", True, 1, False, id="custom-true-is-not-1"),
    case("custom.n", 1, True, False, id="custom-1-is-not-true"),
    case("custom.n", False, 0, False, id="custom-false-is-not-0"),
    case("custom.n", ["a"], "a", False, id="custom-list-is-not-its-element"),
    case("custom.n", {"a": 1}, "a", False, id="custom-dict"),
    case("custom.n", "VIP", "vip", True, id="custom-string-case-insensitive"),
    case("custom.n", MISSING, "x", False, id="custom-missing"),
    case("custom.a.b", "x", "X", True, id="custom-key-with-dot-is-flat"),
    case("contact.custom.tier", "Gold", "gold", True, id="contact-custom"),
    case("contact.custom.t.x", "Gold", "gold", True, id="contact-custom-key-with-dot"),
    case("vars.customer_type", "VIP", "vip", True, id="vars"),
    case("vars.customer_type", MISSING, "vip", False, id="vars-unset"),
    case("vars.n", 3, 3, True, id="vars-number"),
]


@pytest.mark.parametrize(PARAMS, IS)
def test_is(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
            prev: Any) -> None:
    run_leaf(impl, field, "is", current, value, expected, cs, prev)


# --- in -------------------------------------------------------------------------------------

IN = [
    case("status", "open", ["open", "pending"], True, id="member"),
    case("status", "OPEN", ["pending", "open"], True, id="case-insensitive"),
    case("status", "solved", ["open", "pending"], False, id="not-member"),
    case("status", MISSING, ["open"], False, id="missing-field"),
    case("subject", None, ["x"], False, id="null-field"),
    case("subject", "straße", ["STRASSE"], True, id="unicode-casefold"),
    case("status", "Open", ["open"], False, cs=True, id="case-sensitive"),
    case("custom.n", 5, [5, "x"], True, id="custom-number"),
    case("custom.n", "5", [5], False, id="custom-string-vs-number"),
    case("custom.n", 5, ["5"], False, id="custom-number-vs-string"),
    case("custom.n", True, [1], False, id="custom-true-vs-1"),
    case("custom.n", 2, [2.0], True, id="custom-int-vs-float"),
    case("custom.n", ["a"], ["a"], False, id="custom-list-field"),
    case("contact.custom.tier", "GOLD", ["silver", "gold"], True, id="contact-custom"),
    case("vars.t", "VIP", ["vip"], True, id="vars"),
]


@pytest.mark.parametrize(PARAMS, IN)
def test_in(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
            prev: Any) -> None:
    run_leaf(impl, field, "in", current, value, expected, cs, prev)


# --- contains / starts_with / ends_with --------------------------------------------------------

CONTAINS = [
    case("subject", "Refund please", "FUND", True, id="case-insensitive"),
    case("subject", "Refund please", "xyz", False, id="absent"),
    case("subject", MISSING, "x", False, id="missing-field"),
    case("subject", None, "x", False, id="null-field"),
    case("subject", "STRASSE", "ß", True, id="casefold-sharp-s"),
    case("subject", "straße", "SS", True, id="casefold-sharp-s-reverse"),
    case("subject", "Refund", "refund", False, cs=True, id="case-sensitive"),
    case("subject", "Refund", "Ref", True, cs=True, id="case-sensitive-holds"),
    case("subject", "   ", " ", True, id="whitespace"),
    case("description", "line one\nline two", "LINE TWO", True, id="multiline"),
    case("message.body", "I want my money back", "MONEY", True, id="message-body"),
    case("custom.n", 123, "2", False, id="custom-number"),
    case("custom.n", ["refund"], "refund", False, id="custom-list"),
    case("custom.n", True, "true", False, id="custom-bool"),
    case("custom.n", "Pro plan", "PRO", True, id="custom-string"),
]


@pytest.mark.parametrize(PARAMS, CONTAINS)
def test_contains(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                  prev: Any) -> None:
    run_leaf(impl, field, "contains", current, value, expected, cs, prev)


STARTS_WITH = [
    case("subject", "Refund please", "REF", True, id="case-insensitive"),
    case("subject", "Refund please", "please", False, id="suffix-is-not-prefix"),
    case("subject", " Refund", "Refund", False, id="no-trimming"),
    case("subject", MISSING, "x", False, id="missing-field"),
    case("subject", "Refund", "ref", False, cs=True, id="case-sensitive"),
    case("subject", "ﬁle", "FI", True, id="casefold-ligature"),
    case("custom.n", 123, "1", False, id="custom-number"),
    case("custom.n", ["abc"], "a", False, id="custom-list"),
    case("contact.email", "Ann@example.com", "ann@", True, id="contact-email"),
]


@pytest.mark.parametrize(PARAMS, STARTS_WITH)
def test_starts_with(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                     prev: Any) -> None:
    run_leaf(impl, field, "starts_with", current, value, expected, cs, prev)


ENDS_WITH = [
    case("subject", "Refund please", "PLEASE", True, id="case-insensitive"),
    case("subject", "Refund please ", "please", False, id="no-trimming"),
    case("subject", "Refund please", "Refund", False, id="prefix-is-not-suffix"),
    case("subject", MISSING, "x", False, id="missing-field"),
    case("subject", "Please", "please", False, cs=True, id="case-sensitive-prefix-case"),
    case("subject", "ΣΟΦΟΣ", "ος", True, id="greek-final-sigma"),
    case("custom.n", 10, "0", False, id="custom-number"),
    case("contact.email", "ann@EXAMPLE.com", "@example.com", True, id="contact-email"),
]


@pytest.mark.parametrize(PARAMS, ENDS_WITH)
def test_ends_with(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                   prev: Any) -> None:
    run_leaf(impl, field, "ends_with", current, value, expected, cs, prev)


# --- matches --------------------------------------------------------------------------------

MATCHES = [
    case("subject", "Refund please", "^ref", True, id="search-ignorecase"),
    case("subject", "Refund please", "^ref", False, cs=True, id="case-sensitive"),
    case("subject", "Refund please", "please$", True, id="search-not-match"),
    case("subject", "I want MONEY back", "(?i)money", True, cs=True, id="inline-flag"),
    case("subject", "a\nb", "^b", False, id="no-multiline"),
    case("subject", "a\nb", "(?m)^b", True, id="inline-multiline"),
    case("subject", "a\nb", "a.b", False, id="no-dotall"),
    case("subject", "STRASSE", "straße", False, id="ignorecase-is-not-casefold"),
    case("subject", "\u212a", "k", True, id="ignorecase-kelvin"),
    case("subject", "", "^$", True, id="empty-string-is-a-string"),
    case("subject", MISSING, ".*", False, id="missing-field"),
    case("subject", None, ".*", False, id="null-field"),
    case("custom.n", 123, r"\d+", False, id="custom-number"),
    case("custom.n", ["abc"], "abc", False, id="custom-list"),
    case("custom.n", True, "true", False, id="custom-bool"),
    case("message.body", "order #A-12345", r"#[a-z]-\d{5}", True, id="message-body"),
    # Python's re (API.md: "`matches` is Python `re.search` with `re.IGNORECASE`"): \w is
    # str.isalnum() or "_", so superscripts are word characters and combining marks are not;
    # IGNORECASE pairs I/İ and i/ı through their simple lowercase.
    case("subject", "x\u00b2", r"^\w+$", True, id="re-word-superscript"),
    case("subject", "Jose\u0301", r"^\w+$", False, id="re-word-combining-mark"),
    case("subject", "cafe\u0301 noir", r"e\b", True, id="re-boundary-before-combining-mark"),
    case("subject", "İSTANBUL", "ISTANBUL", True, id="re-ignorecase-dotted-I"),
    case("subject", "ı", "[a-z]", True, id="re-ignorecase-dotless-i-in-class"),
    case("subject", "İ", "[A-Z]", True, id="re-ignorecase-dotted-I-in-class"),
    case("subject", "İ", "[A-Z]", False, cs=True, id="re-case-sensitive-dotted-I"),
]


@pytest.mark.parametrize(PARAMS, MATCHES)
def test_matches(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                 prev: Any) -> None:
    run_leaf(impl, field, "matches", current, value, expected, cs, prev)


# --- gt / gte / lt / lte ------------------------------------------------------------------------

COMPARE = [
    case("custom.n", 5, 4, True, id="gt:above"),
    case("custom.n", 5, 5, False, id="gt:equal"),
    case("custom.n", 5.5, 5, True, id="gt:float"),
    case("custom.n", "10", 5, False, id="gt:string"),
    case("custom.n", True, 0, False, id="gt:bool-is-not-a-number"),
    case("custom.n", MISSING, 0, False, id="gt:missing"),
    case("custom.n", None, -1, False, id="gt:null"),
    case("custom.n", [5], 1, False, id="gt:list"),
    case("custom.n", 5, 5, True, id="gte:equal"),
    case("custom.n", 4.999, 5, False, id="gte:below"),
    case("custom.n", True, 1, False, id="gte:bool-is-not-a-number"),
    case("custom.n", -1, 0, True, id="lt:negative"),
    case("custom.n", 5, 5, False, id="lt:equal"),
    case("custom.n", False, 1, False, id="lt:bool-is-not-a-number"),
    case("custom.n", "1", 5, False, id="lt:string"),
    case("custom.n", 5, 5, True, id="lte:equal"),
    case("custom.n", 5, 5.0, True, id="lte:float-bound"),
    case("custom.n", MISSING, 5, False, id="lte:missing"),
    case("contact.custom.age", 30, 18, True, id="gt:contact-custom"),
    case("vars.score", 10, 10.0, True, id="gte:vars"),
]


@pytest.mark.parametrize("op, row", [pytest.param(r.id.split(":")[0], r, id=r.id)
                                     for r in COMPARE])
def test_compare(impl: Any, op: str, row: Any) -> None:
    field, current, value, expected, cs, prev = row.values
    run_leaf(impl, field, op, current, value, expected, cs, prev)


# --- includes / includes_any / includes_all ----------------------------------------------------

INCLUDES = [
    case("tags", ["billing", "VIP"], "vip", True, id="case-insensitive"),
    case("tags", ["billing"], "bill", False, id="whole-element-only"),
    case("tags", MISSING, "x", False, id="missing-field"),
    case("tags", None, "x", False, id="null-field"),
    case("tags", [], "x", False, id="empty-list"),
    case("tags", ["vip"], "VIP", False, cs=True, id="case-sensitive"),
    case("tags", ["STRASSE"], "straße", True, id="casefold"),
    case("tags", [1, "a"], "1", False, id="non-string-element"),
    case("contact.groups", ["VIP"], "vip", True, id="contact-groups"),
    case("contact.groups", MISSING, "vip", False, id="contact-groups-missing"),
    case("custom.n", [1, 2], 1, True, id="custom-list-number"),
    case("custom.n", [1], "1", False, id="custom-list-number-vs-string"),
    case("custom.n", [True], 1, False, id="custom-list-true-vs-1"),
    case("custom.n", "vip", "vip", False, id="custom-string-is-not-a-list"),
    case("custom.n", ["Gold"], "gold", True, id="custom-list-string"),
]


@pytest.mark.parametrize(PARAMS, INCLUDES)
def test_includes(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                  prev: Any) -> None:
    run_leaf(impl, field, "includes", current, value, expected, cs, prev)


INCLUDES_ANY = [
    case("tags", ["billing"], ["vip", "BILLING"], True, id="one-of"),
    case("tags", ["billing"], ["vip", "refund"], False, id="none-of"),
    case("tags", MISSING, ["vip"], False, id="missing-field"),
    case("tags", [], ["vip"], False, id="empty-list"),
    case("tags", ["Vip"], ["vip"], False, cs=True, id="case-sensitive"),
    case("contact.groups", ["vip", "trial"], ["reseller", "trial"], True, id="contact-groups"),
    case("custom.n", "vip", ["vip"], False, id="custom-string-is-not-a-list"),
    case("custom.n", [3, "x"], [1, 3], True, id="custom-list-numbers"),
    case("custom.n", ["3"], [3], False, id="custom-no-coercion"),
]


@pytest.mark.parametrize(PARAMS, INCLUDES_ANY)
def test_includes_any(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                      prev: Any) -> None:
    run_leaf(impl, field, "includes_any", current, value, expected, cs, prev)


INCLUDES_ALL = [
    case("tags", ["billing", "vip"], ["VIP", "billing"], True, id="all-of"),
    case("tags", ["billing", "vip"], ["vip", "refund"], False, id="one-missing"),
    case("tags", MISSING, ["vip"], False, id="missing-field"),
    case("tags", [], ["vip"], False, id="empty-list"),
    case("tags", ["VIP", "billing"], ["vip", "billing"], False, cs=True, id="case-sensitive"),
    case("contact.groups", ["vip"], ["vip", "vip"], True, id="repeated-value"),
    case("custom.n", "vip", ["vip"], False, id="custom-string-is-not-a-list"),
    case("custom.n", [1, 2, 3], [3, 1], True, id="custom-list-numbers"),
]


@pytest.mark.parametrize(PARAMS, INCLUDES_ALL)
def test_includes_all(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                      prev: Any) -> None:
    run_leaf(impl, field, "includes_all", current, value, expected, cs, prev)


# --- is_empty ---------------------------------------------------------------------------------

IS_EMPTY = [
    case("department", None, NO_VALUE, True, id="null"),
    case("department", MISSING, NO_VALUE, True, id="missing"),
    case("subject", "", NO_VALUE, True, id="empty-string"),
    case("subject", " ", NO_VALUE, False, id="space-is-not-empty"),
    case("subject", "\t\n", NO_VALUE, False, id="whitespace-is-not-empty"),
    case("subject", "x", NO_VALUE, False, id="text"),
    case("tags", [], NO_VALUE, True, id="empty-list"),
    case("tags", ["x"], NO_VALUE, False, id="list"),
    case("tags", [""], NO_VALUE, False, id="list-of-empty-string"),
    case("contact.groups", [], NO_VALUE, True, id="empty-groups"),
    case("custom.n", {}, NO_VALUE, True, id="empty-dict"),
    case("custom.n", 0, NO_VALUE, False, id="zero-is-not-empty"),
    case("custom.n", False, NO_VALUE, False, id="false-is-not-empty"),
    case("custom.n", {"a": None}, NO_VALUE, False, id="dict"),
    case("created_at", None, NO_VALUE, True, id="timestamp-null"),
    case("created_at", "2026-11-23T08:00:00Z", NO_VALUE, False, id="timestamp"),
    case("vars.x", MISSING, NO_VALUE, True, id="vars-unset"),
    case("message.body", "", NO_VALUE, True, id="message-body-empty"),
]


@pytest.mark.parametrize(PARAMS, IS_EMPTY)
def test_is_empty(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                  prev: Any) -> None:
    run_leaf(impl, field, "is_empty", current, value, expected, cs, prev)


# --- negations: each is the exact negation of its positive, row for row -------------------------

NEGATIONS = [("is_not", "is", IS), ("not_in", "in", IN), ("not_contains", "contains", CONTAINS),
             ("excludes", "includes", INCLUDES), ("is_not_empty", "is_empty", IS_EMPTY)]


@pytest.mark.parametrize("negative, row", [
    pytest.param(neg, row, id=f"{neg}:{row.id}") for neg, _, rows in NEGATIONS for row in rows])
def test_negation(impl: Any, negative: str, row: Any) -> None:
    field, current, value, expected, cs, prev = row.values
    run_leaf(impl, field, negative, current, value, not expected, cs, prev)


def test_negations_hold_on_missing_fields(impl: Any) -> None:
    run_leaf(impl, "subject", "is_not", MISSING, "x", True)
    run_leaf(impl, "subject", "not_in", MISSING, ["x"], True)
    run_leaf(impl, "subject", "not_contains", MISSING, "x", True)
    run_leaf(impl, "tags", "excludes", MISSING, "x", True)
    run_leaf(impl, "subject", "is_not_empty", MISSING, NO_VALUE, False)


# --- changed / changed_from / changed_to ------------------------------------------------------

CHANGED = [
    case("subject", "Refund", NO_VALUE, True, id="first-event-non-empty"),
    case("subject", "", NO_VALUE, False, id="first-event-empty"),
    case("subject", MISSING, NO_VALUE, False, id="first-event-missing"),
    case("tags", ["billing"], NO_VALUE, True, id="first-event-tags"),
    case("tags", [], NO_VALUE, False, id="first-event-no-tags"),
    case("subject", "refund", NO_VALUE, True, prev="Refund", id="case-only-change-counts"),
    case("subject", "Refund", NO_VALUE, False, prev="Refund", id="unchanged"),
    case("subject", "", NO_VALUE, False, prev=None, id="null-to-empty-string"),
    case("subject", MISSING, NO_VALUE, False, prev="", id="empty-string-to-missing"),
    case("subject", "x", NO_VALUE, True, prev=MISSING, id="missing-to-text"),
    case("subject", "x ", NO_VALUE, True, prev="x", id="whitespace-counts"),
    case("custom.n", [], NO_VALUE, False, prev="", id="custom-empties-equal"),
    case("custom.n", {}, NO_VALUE, False, prev=None, id="custom-null-to-empty-dict"),
    case("custom.n", True, NO_VALUE, True, prev=1, id="custom-1-to-true"),
    case("custom.n", 5, NO_VALUE, True, prev="5", id="custom-string-to-number"),
    case("custom.n", "VIP", NO_VALUE, True, prev="vip", id="custom-case-only"),
    case("custom.n", ["a", "b"], NO_VALUE, True, prev=["b", "a"], id="custom-list-exact"),
    case("custom.a.b", "y", NO_VALUE, True, prev="x", id="custom-key-with-dot"),
    case("tags", ["b", "A"], NO_VALUE, False, prev=["a", "B"], id="tags-case-insensitive-set"),
    case("tags", ["a", "b"], NO_VALUE, True, prev=["a"], id="tags-added"),
    case("tags", [], NO_VALUE, True, prev=["a"], id="tags-removed"),
    case("tags", [], NO_VALUE, False, prev=None, id="tags-null-to-empty"),
    case("tags", MISSING, NO_VALUE, False, prev=[], id="tags-empty-to-missing"),
    case("contact.groups", ["vip"], NO_VALUE, False, prev=["VIP"], id="groups-case-only"),
    case("contact.groups", ["vip", "trial"], NO_VALUE, True, prev=["vip"], id="groups-added"),
    case("status", "open", NO_VALUE, False, prev="open", id="status-unchanged"),
    case("status", "OPEN", NO_VALUE, True, prev="open", id="status-case-only"),
    case("contact.email", "b@example.com", NO_VALUE, True, prev="a@example.com",
         id="contact-email"),
    case("contact.custom.tier", "gold", NO_VALUE, True, prev="silver", id="contact-custom"),
    case("updated_at", "2026-11-23T09:00:00Z", NO_VALUE, True, prev="2026-11-23T08:00:00Z",
         id="timestamp"),
    case("updated_at", "2026-11-23T09:00:00+01:00", NO_VALUE, True,
         prev="2026-11-23T08:00:00Z", id="timestamp-same-instant-other-text-is-exact-change"),
    case("updated_at", "2026-11-23T08:00:00Z", NO_VALUE, False, prev="2026-11-23T08:00:00Z",
         id="timestamp-unchanged"),
]


@pytest.mark.parametrize(PARAMS, CHANGED)
def test_changed(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                 prev: Any) -> None:
    run_leaf(impl, field, "changed", current, value, expected, cs, prev)


CHANGED_FROM = [
    case("status", "open", "NEW", True, prev="new", id="holds"),
    case("status", "open", "open", False, prev="new", id="current-is-not-previous"),
    case("status", "open", "open", False, prev="open", id="unchanged"),
    case("status", "open", "new", False, id="first-event-previous-empty"),
    case("status", "open", "new", False, cs=True, prev="New", id="case-sensitive"),
    case("status", "open", "New", True, cs=True, prev="New", id="case-sensitive-holds"),
    case("subject", "open", "open", True, prev="Open", id="case-only-change"),
    case("department", None, "billing", True, prev="Billing", id="to-null"),
    case("department", "billing", "billing", False, prev=MISSING, id="from-missing"),
    case("tags", ["a", "b"], ["A"], True, prev=["a"], id="tags-set"),
    case("tags", ["a", "b"], ["a", "b"], False, prev=["a"], id="tags-set-is-previous"),
    case("tags", ["b"], ["b", "a"], True, prev=["A", "B"], id="tags-set-order-and-case"),
    case("tags", ["a", "b"], ["A"], False, cs=True, prev=["a"], id="tags-case-sensitive"),
    case("contact.groups", [], ["vip"], True, prev=["VIP"], id="groups"),
    case("custom.n", 2, 1, True, prev=1, id="custom-number"),
    case("custom.n", 2, "1", False, prev=1, id="custom-no-coercion"),
    case("custom.n", False, 1, False, prev=True, id="custom-true-is-not-1"),
    case("custom.n", "b", "A", True, prev="a", id="custom-text-equality"),
    case("contact.custom.tier", "gold", "silver", True, prev="Silver", id="contact-custom"),
]


@pytest.mark.parametrize(PARAMS, CHANGED_FROM)
def test_changed_from(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                      prev: Any) -> None:
    run_leaf(impl, field, "changed_from", current, value, expected, cs, prev)


CHANGED_TO = [
    case("status", "open", "OPEN", True, prev="new", id="holds"),
    case("status", "open", "new", False, prev="new", id="previous-is-not-current"),
    case("status", "open", "open", False, prev="open", id="unchanged"),
    case("status", "open", "open", True, id="first-event"),
    case("status", "", "open", False, id="first-event-empty"),
    case("status", "Open", "open", False, cs=True, prev="new", id="case-sensitive"),
    case("subject", "OPEN", "open", True, prev="open", id="case-only-change"),
    case("tags", ["vip"], ["VIP"], True, prev=[], id="tags-set"),
    case("tags", ["a", "b"], ["b", "A"], True, prev=["a"], id="tags-set-order"),
    case("tags", ["a", "b"], ["b"], False, prev=["a"], id="tags-whole-set"),
    case("tags", ["vip", "New"], ["vip", "new"], False, cs=True, prev=["vip"],
         id="tags-case-sensitive"),
    case("contact.groups", ["VIP", "trial"], ["trial", "vip"], True, prev=["trial"],
         id="groups"),
    case("custom.n", 2, 2.0, True, prev=1, id="custom-int-float"),
    case("custom.n", 2, "2", False, prev="x", id="custom-no-coercion"),
    case("custom.n", True, True, True, prev=None, id="custom-bool"),
    case("custom.n", MISSING, "x", False, prev="x", id="custom-removed"),
]


@pytest.mark.parametrize(PARAMS, CHANGED_TO)
def test_changed_to(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                    prev: Any) -> None:
    run_leaf(impl, field, "changed_to", current, value, expected, cs, prev)


# --- older_than / newer_than (now = 2026-11-23T12:00:00Z) ------------------------------------------

OLDER_THAN = [
    case("created_at", "2026-11-23T11:00:00Z", "1h", True, id="boundary-holds"),
    case("created_at", "2026-11-23T11:00:01Z", "1h", False, id="one-second-short"),
    case("created_at", "2026-11-23T10:59:59Z", "1h", True, id="past-boundary"),
    case("created_at", "2026-11-23T11:00:00.5Z", "1h", False, id="fraction-short"),
    case("created_at", "2026-11-23T10:59:59.999999Z", "1h", True, id="fraction-past"),
    case("created_at", "2026-11-23T12:00:00+01:00", "1h", True, id="positive-offset"),
    case("created_at", "2026-11-23T06:00:00-05:00", "1h", True, id="negative-offset-boundary"),
    case("created_at", "2026-11-23T06:00:00-05:00", "1h1s", False, id="negative-offset-short"),
    case("created_at", "2026-11-23 11:00:00Z", "1h", True, id="space-separator"),
    case("created_at", "2026-11-21T12:00:00Z", "2d", True, id="days"),
    case("created_at", "2026-11-21T12:00:01Z", "2d", False, id="days-short"),
    case("created_at", "2026-11-23T10:30:00Z", "1h30m", True, id="hours-minutes"),
    case("created_at", "2026-11-23T11:58:30Z", "90s", True, id="seconds"),
    case("created_at", "2026-11-23T11:58:31Z", "90s", False, id="seconds-short"),
    case("created_at", "2026-11-22T10:59:59Z", "1d1h1s", True, id="all-units"),
    case("created_at", "2026-11-23T13:00:00Z", "1s", False, id="future"),
    case("created_at", "yesterday", "1s", False, id="unparsable"),
    case("created_at", "2026-13-01T00:00:00Z", "1s", False, id="unparsable-month"),
    case("created_at", "2026-11-23", "1s", False, id="date-only"),
    case("created_at", "2026-11-23T11:00:00", "1s", False, id="no-offset"),
    case("created_at", 1700000000, "1s", False, id="number"),
    case("created_at", "2026-02-30T00:00:00Z", "1s", False, id="no-such-day"),
    case("created_at", "2026-11-23T24:00:00Z", "1s", False, id="hour-24"),
    case("created_at", "2026-11-23T11:00Z", "1s", False, id="no-seconds"),
    case("created_at", "2026-11-23T11:00:00+24:00", "1s", False, id="offset-hour-24"),
    case("created_at", "2026-11-23T11:00:00+0100", "1s", False, id="offset-without-colon"),
    case("created_at", "٢٠٢٦-١١-٢٣T١١:٠٠:٠٠Z", "1s", False, id="non-ascii-digits"),
    case("created_at", " 2026-11-23T11:00:00Z", "1s", False, id="leading-space"),
    case("created_at", "2026-11-23T11:00:00Z\n", "1s", False, id="trailing-newline"),
    case("created_at", "2026-11-23T11:00:00.123456789Z", "1h", False, id="nanoseconds-short"),
    case("created_at", "2026-11-23T10:59:59.999999999Z", "1h", True, id="nanoseconds-past"),
    case("created_at", "2026-11-23T11:00:00-00:00", "1h", True, id="minus-zero-offset"),
    case("created_at", "2026-11-23T16:30:00+05:30", "1h", True, id="half-hour-offset"),
    case("created_at", "2026-11-23T16:30:01+05:30", "1h", False, id="half-hour-offset-short"),
    case("created_at", MISSING, "1s", False, id="missing"),
    case("created_at", None, "1s", False, id="null"),
    case("last_customer_message_at", "2026-11-23T11:00:00Z", "1h", True, id="last-customer"),
    case("last_agent_message_at", "2026-11-23T11:00:00Z", "2h", False, id="last-agent"),
    case("updated_at", "2026-11-23T11:00:00Z", "60m", True, id="updated-at"),
    case("custom.due", "2026-11-23T11:00:00Z", "1h", True, id="custom-timestamp"),
    case("custom.due", 5, "1h", False, id="custom-number"),
    case("contact.custom.since", "2025-11-23T12:00:00Z", "365d", True, id="contact-custom"),
    case("created_at", "0001-01-01T00:00:00Z", "739000d", True, id="year-1"),
    case("created_at", "0001-01-01T00:00:00Z", "740000d", False, id="year-1-short"),
    case("created_at", "2026-11-23T11:00:00Z", "100000000d", False, id="no-upper-bound"),
    case("created_at", "2026-11-23T11:00:00Z", "99999999999999999999s", False,
         id="no-upper-bound-seconds"),
]


@pytest.mark.parametrize(PARAMS, OLDER_THAN)
def test_older_than(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                    prev: Any) -> None:
    run_leaf(impl, field, "older_than", current, value, expected, cs, prev)


NEWER_THAN = [
    case("created_at", "2026-11-23T11:00:00Z", "1h", False, id="boundary-does-not-hold"),
    case("created_at", "2026-11-23T11:00:01Z", "1h", True, id="inside"),
    case("created_at", "2026-11-23T11:00:00.5Z", "1h", True, id="fraction-inside"),
    case("created_at", "2026-11-23T12:59:00+01:00", "2m", True, id="positive-offset"),
    case("created_at", "2026-11-23T12:58:00+01:00", "2m", False, id="positive-offset-boundary"),
    case("created_at", "2026-11-23T13:00:00Z", "1s", True, id="future"),
    case("created_at", "yesterday", "1s", False, id="unparsable"),
    case("created_at", "2026-11-23T11:00:00", "1d", False, id="no-offset"),
    case("created_at", MISSING, "1d", False, id="missing"),
    case("created_at", None, "1d", False, id="null"),
    case("custom.due", "2026-11-23 11:30:00+00:00", "1h", True, id="custom-timestamp"),
    case("custom.due", True, "1h", False, id="custom-bool"),
    case("created_at", "0001-01-01T00:00:00Z", "100000000d", True, id="no-upper-bound"),
    case("created_at", "9999-12-31T23:59:59Z", "1s", True, id="far-future"),
]


@pytest.mark.parametrize(PARAMS, NEWER_THAN)
def test_newer_than(impl: Any, field: str, current: Any, value: Any, expected: bool, cs: Any,
                    prev: Any) -> None:
    run_leaf(impl, field, "newer_than", current, value, expected, cs, prev)


def test_now_in_another_zone_is_the_same_instant(impl: Any) -> None:
    oslo = NOW.astimezone(timezone(timedelta(hours=1)))
    run_leaf(impl, "created_at", "older_than", "2026-11-23T11:00:00Z", "1h", True, now=oslo)
    run_leaf(impl, "created_at", "newer_than", "2026-11-23T11:00:01Z", "1h", True, now=oslo)


def test_now_defaults_to_the_current_time(impl: Any) -> None:
    ticket = make_ticket(created_at="2000-01-01T00:00:00Z", updated_at="2999-01-01T00:00:00Z")
    rules = [make_rule("old", conditions={"field": "created_at", "op": "older_than",
                                          "value": "1d"}),
             make_rule("new", conditions={"field": "updated_at", "op": "newer_than",
                                          "value": "1s"}),
             make_rule("not-old", conditions={"field": "updated_at", "op": "older_than",
                                              "value": "1s"})]
    ev = impl.compile_rules(rules).evaluate(make_event(), ticket)
    assert ev.matched == ["old", "new"]


def test_naive_now_is_read_as_utc(impl: Any) -> None:
    naive = datetime(2026, 11, 23, 12, 0, 0)
    run_leaf(impl, "created_at", "older_than", "2026-11-23T11:00:00Z", "1h", True, now=naive)
    run_leaf(impl, "created_at", "older_than", "2026-11-23T11:00:01Z", "1h", False, now=naive)


# --- what a field reads when its parent is missing ------------------------------------------------


@pytest.mark.parametrize("field, op, value, expected", [
    ("contact.email", "is", "ann@example.com", False),
    ("contact.email", "is_not", "ann@example.com", True),
    ("contact.email", "is_empty", NO_VALUE, True),
    ("contact.groups", "includes", "vip", False),
    ("contact.groups", "excludes", "vip", True),
    ("contact.custom.tier", "is_empty", NO_VALUE, True),
    ("custom.plan", "is_empty", NO_VALUE, True),
    ("message.body", "contains", "x", False),
    ("message.body", "is_empty", NO_VALUE, True),
])
def test_missing_parents_read_as_null(impl: Any, field: str, op: str, value: Any,
                                      expected: bool) -> None:
    ticket = make_ticket(contact=None)
    del ticket["custom"]
    leaf = {"field": field, "op": op}
    if value is not NO_VALUE:
        leaf["value"] = value
    ruleset = impl.compile_rules([make_rule("r", conditions=leaf)])
    ev = ruleset.evaluate(make_event("ticket.updated"), ticket, now=NOW)
    assert (ev.matched == ["r"]) is expected
    if not expected:
        assert ev.explain[0]["failed"]["seen"] is None


def test_custom_key_is_flat_not_nested(impl: Any) -> None:
    ticket = make_ticket(custom={"a": {"b": "x"}, "a.b": "flat"})
    ruleset = impl.compile_rules([
        make_rule("flat", conditions={"field": "custom.a.b", "op": "is", "value": "flat"}),
        make_rule("nested", conditions={"field": "custom.a.b", "op": "is", "value": "x"}),
    ])
    ev = ruleset.evaluate(make_event(), ticket, now=NOW)
    assert ev.matched == ["flat"]
    assert ev.explain[1]["failed"]["seen"] == "flat"
