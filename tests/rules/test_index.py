"""Value-index exactness: equality/membership rules filed under values that look alike.

Each test buries the rules that matter among hundreds of rules on the same field, so an engine
with a discrimination index files them all; answers must be those of plain equality as the
documents define it: casefold unless case_sensitive, no coercion (1 is not True, not "1"; 1 equals
1.0), whitespace kept, lists only for includes*. Run on oracle and engine (`impl`).
"""

from __future__ import annotations

from typing import Any

import pytest

from ruletools import NOW, make_event, make_rule, make_ticket


def leaf(field: str, op: str, value: Any, cs: bool | None = None) -> dict[str, Any]:
    node = {"field": field, "op": op, "value": value}
    if cs is not None:
        node["case_sensitive"] = cs
    return node


def buried(cases: list[tuple[str, dict[str, Any]]], field: str, n: int = 200) -> list[Any]:
    """The named rules interleaved with n rules on `field` that match nothing."""
    rules = []
    for i in range(n):
        op = ["is", "in", "includes"][i % 3] if field.startswith("custom.") else (
            "includes" if field in ("tags", "contact.groups") else ["is", "in"][i % 2])
        value: Any = f"pad-{i}"
        if op == "in":
            value = [f"pad-{i}", f"PAD-{i}x"]
        rules.append(make_rule(f"pad-{i}", conditions=leaf(field, op, value)))
        if i % (n // len(cases) or 1) == 0 and cases:
            name, conditions = cases.pop(0)
            rules.append(make_rule(name, conditions=conditions))
    for name, conditions in cases:
        rules.append(make_rule(name, conditions=conditions))
    return rules


def matched(impl: Any, cases: list[tuple[str, dict[str, Any]]], field: str,
            ticket: dict[str, Any]) -> list[str]:
    ev = impl.compile_rules(buried(list(cases), field)).evaluate(make_event(), ticket, now=NOW)
    return ev.matched



@pytest.mark.parametrize("stored, hits", [
    pytest.param(1, ["is-1", "is-1.0", "in-1", "in-1.0"], id="int-1"),
    pytest.param(True, ["is-true", "in-true"], id="true"),
    pytest.param("1", ["is-'1'", "in-'1'"], id="string-1"),
    pytest.param(1.0, ["is-1", "is-1.0", "in-1", "in-1.0"], id="float-1"),
    pytest.param(0, ["is-0", "in-0"], id="zero"),
    pytest.param(False, ["is-false", "in-false"], id="false"),
    pytest.param("TRUE", ["is-'true'", "in-'true'"], id="string-true"),
    pytest.param(2.5, ["is-2.5", "in-2.5"], id="float"),
])
def test_custom_values_of_different_types_are_not_conflated(impl: Any, stored: Any,
                                                            hits: list[str]) -> None:
    def label(v: Any) -> str:
        return repr(v).lower()

    values = [1, True, "1", 1.0, 0, False, "true", 2.5]
    cases = [(f"is-{label(v)}", leaf("custom.plan", "is", v)) for v in values]
    cases += [(f"in-{label(v)}", leaf("custom.plan", "in", [v, "zzz"])) for v in values]
    ticket = make_ticket(custom={"plan": stored})
    assert sorted(matched(impl, cases, "custom.plan", ticket)) == sorted(hits)


@pytest.mark.parametrize("stored, hits", [
    pytest.param([1], ["includes-1", "includes-1.0", "any-1"], id="list-int"),
    pytest.param([True], ["includes-true", "any-true"], id="list-true"),
    pytest.param(["1"], ["includes-'1'"], id="list-string"),
    pytest.param(1, [], id="scalar-is-not-a-list"),
])
def test_custom_list_membership_is_not_conflated(impl: Any, stored: Any, hits: list[str]) -> None:
    cases = [("includes-1", leaf("custom.plan", "includes", 1)),
             ("includes-1.0", leaf("custom.plan", "includes", 1.0)),
             ("includes-true", leaf("custom.plan", "includes", True)),
             ("includes-'1'", leaf("custom.plan", "includes", "1")),
             ("any-1", leaf("custom.plan", "includes_any", [1, "x"])),
             ("any-true", leaf("custom.plan", "includes_any", [True]))]
    ticket = make_ticket(custom={"plan": stored})
    assert sorted(matched(impl, cases, "custom.plan", ticket)) == sorted(hits)


TEXT_CASES = [
    ("is-open", leaf("status", "is", "open")),
    ("is-OPEN", leaf("status", "is", "OPEN")),
    ("is-OPEN-cs", leaf("status", "is", "OPEN", cs=True)),
    ("is-open-cs", leaf("status", "is", "open", cs=True)),
    ("in-Open-cs", leaf("status", "in", ["Open", "new"], cs=True)),
    ("in-OPEN", leaf("status", "in", ["pending", "OPEN"])),
    ("is-open-space", leaf("status", "is", "open ")),
    ("is_not-open", leaf("status", "is_not", "open")),
    ("not_in-open", leaf("status", "not_in", ["open"])),
]


@pytest.mark.parametrize("status, hits", [
    pytest.param("open", ["is-open", "is-OPEN", "is-open-cs", "in-OPEN"], id="open"),
    pytest.param("OPEN", ["is-open", "is-OPEN", "is-OPEN-cs", "in-OPEN"], id="OPEN"),
    pytest.param("Open", ["is-open", "is-OPEN", "in-Open-cs", "in-OPEN"], id="Open"),
    pytest.param("open ", ["is-open-space", "is_not-open", "not_in-open"], id="trailing-space"),
    pytest.param(None, ["is_not-open", "not_in-open"], id="null"),
])
def test_text_values_fold_unless_case_sensitive(impl: Any, status: Any, hits: list[str]) -> None:
    ticket = make_ticket(status=status)
    assert sorted(matched(impl, TEXT_CASES, "status", ticket)) == sorted(hits)


UNICODE_CASES = [
    ("is-strasse", leaf("department", "is", "strasse")),
    ("is-STRASSE-cs", leaf("department", "is", "STRASSE", cs=True)),
    ("is-kelvin", leaf("department", "is", "\u212a")),
    ("is-k", leaf("department", "is", "k")),
    ("is-i-dot", leaf("department", "is", "i̇")),
    ("is-i", leaf("department", "is", "i")),
    ("is-sigma", leaf("department", "is", "σοφος")),
]


@pytest.mark.parametrize("department, hits", [
    pytest.param("Straße", ["is-strasse"], id="sharp-s"),
    pytest.param("STRASSE", ["is-strasse", "is-STRASSE-cs"], id="upper-ss"),
    pytest.param("K", ["is-kelvin", "is-k"], id="K"),
    pytest.param("İ", ["is-i-dot"], id="dotted-capital-I"),
    pytest.param("I", ["is-i"], id="capital-I"),
    pytest.param("ı", [], id="dotless-i"),
    pytest.param("ΣΟΦΟΣ", ["is-sigma"], id="greek"),
])
def test_unicode_keys_casefold(impl: Any, department: str, hits: list[str]) -> None:
    ticket = make_ticket(department=department)
    assert sorted(matched(impl, UNICODE_CASES, "department", ticket)) == sorted(hits)


LIST_CASES = [
    ("includes-vip", leaf("tags", "includes", "vip")),
    ("includes-VIP-cs", leaf("tags", "includes", "VIP", cs=True)),
    ("any-vip-x", leaf("tags", "includes_any", ["x", "Vip"])),
    ("all-vip-billing", leaf("tags", "includes_all", ["vip", "billing"])),
    ("excludes-vip", leaf("tags", "excludes", "vip")),
    ("includes-ss", leaf("tags", "includes", "STRASSE")),
]


@pytest.mark.parametrize("tags, hits", [
    pytest.param(["VIP"], ["includes-vip", "includes-VIP-cs", "any-vip-x"], id="VIP"),
    pytest.param(["vip", "billing"], ["includes-vip", "any-vip-x", "all-vip-billing"],
                 id="vip-billing"),
    pytest.param(["straße"], ["excludes-vip", "includes-ss"], id="sharp-s"),
    pytest.param([], ["excludes-vip"], id="empty"),
    pytest.param(None, ["excludes-vip"], id="null"),
    pytest.param("vip", ["excludes-vip"], id="string-is-not-a-list"),
])
def test_list_membership(impl: Any, tags: Any, hits: list[str]) -> None:
    ticket = make_ticket(tags=tags)
    assert sorted(matched(impl, LIST_CASES, "tags", ticket)) == sorted(hits)


def test_index_follows_changes_made_during_the_pass(impl: Any) -> None:
    """Each value change made by an earlier rule re-files the ticket for later rules."""
    chain = []
    values = ["new", "open", "pending", "on_hold", "solved", "closed"]
    for i, (old, new) in enumerate(zip(values, values[1:])):
        chain.append((f"step-{i}", {"field": "status", "op": "is", "value": old}, new))
    rules = []
    for i in range(300):
        rules.append(make_rule(f"pad-{i}", conditions=leaf("status", "in", [f"s{i}"])))
        if i % 50 == 0 and chain:
            name, conditions, new = chain.pop(0)
            rules.append(make_rule(name, conditions=conditions,
                                   actions=[{"type": "set", "field": "status", "value": new}]
                                   if new != "closed" else [{"type": "close"}]))
    rules.append(make_rule("stale-new", conditions=leaf("status", "is", "new")))
    rules.append(make_rule("closed", conditions=leaf("status", "is", "CLOSED")))
    ev = impl.compile_rules(rules).evaluate(make_event(), make_ticket(status="new"), now=NOW)
    assert ev.matched == [f"step-{i}" for i in range(5)] + ["closed"]
    assert ev.changes == {"status": ["new", "closed"],
                          "tags": {"added": ["hit-closed"], "removed": []}}


def test_index_follows_vars_set_during_the_pass(impl: Any) -> None:
    def http_request(action: Any, ticket: Any, event: Any, vars: Any) -> dict[str, Any]:
        return {"customer_type": action["url"].rsplit("/", 1)[-1]}

    rules = [make_rule(f"pad-{i}", conditions=leaf("vars.customer_type", "is", f"t{i}"))
             for i in range(200)]
    rules.insert(0, make_rule("before", conditions=leaf("vars.customer_type", "is", "VIP")))
    rules.insert(100, make_rule("fetch", actions=[
        {"type": "http_request", "url": "https://crm.example.com/vip"}]))
    rules.append(make_rule("after", conditions=leaf("vars.customer_type", "in", ["x", "Vip"])))
    rules.append(make_rule("after-cs", conditions=leaf("vars.customer_type", "is", "VIP",
                                                       cs=True)))
    ev = impl.compile_rules(rules).evaluate(make_event(), make_ticket(), now=NOW,
                                            handlers={"http_request": http_request})
    assert ev.matched == ["fetch", "after"]
    assert ev.vars == {"customer_type": "vip"}
