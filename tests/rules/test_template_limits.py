"""Hostile templates: every shape renders in linear time, and sizes are bounded (rules/templates.py)."""
from __future__ import annotations

import time

import pytest

from rules import RuleError, compile_rules
from rules.templates import MAX_RENDERED_CHARS, MAX_TEMPLATE_CHARS, TRUNCATED, render

TICKET = {"subject": "Printer on fire", "tags": ["a", "b"], "custom": {"plan": "gold"},
          "contact": {"name": "Ann", "custom": {"tier": "1"}}}
EVENT = {"type": "message.received", "message": {"body": "hi"}}

# Each of these, at the template size limit, took seconds (or more) on the old regex renderer.
HOSTILE = {
    "unclosed_open": "{{" * (MAX_TEMPLATE_CHARS // 2),
    "open_then_text": "{{" + "x" * (MAX_TEMPLATE_CHARS - 2),
    "many_opens_one_close_at_end": "{{ " * (MAX_TEMPLATE_CHARS // 3 - 1) + "}}",
    "single_braces": "{" * MAX_TEMPLATE_CHARS,
    "triple": "{{{" * (MAX_TEMPLATE_CHARS // 3),
    "closers_only": "}}" * (MAX_TEMPLATE_CHARS // 2),
    "nested": "{{" * 4000 + "ticket.subject" + "}}" * 4000,
    "alternating": "{}" * (MAX_TEMPLATE_CHARS // 2),
    "open_close_pairs": "{{}}" * (MAX_TEMPLATE_CHARS // 4),
}


def _render(t: str, ticket: dict = TICKET) -> str:
    return render(t, ticket, EVENT, {"x": "1"})


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_template_renders_fast(name: str) -> None:
    template = HOSTILE[name]
    assert len(template) <= MAX_TEMPLATE_CHARS
    t0 = time.perf_counter()
    for _ in range(10):
        _render(template)
    assert time.perf_counter() - t0 < 0.5, name  # the old renderer: 1.7 s per call for the first


def test_rendering_matches_the_old_semantics() -> None:
    assert _render("Hi {{contact.name}}, re: {{ ticket.subject }}") == "Hi Ann, re: Printer on fire"
    assert _render("{{ticket.tags}} {{ticket.custom.plan}} {{contact.custom.tier}}") == "a, b gold 1"
    assert _render("{{vars.x}}{{message.body}}") == "1hi"
    assert _render("{{ticket.__class__}}|{{nope}}|{{ticket.subject.upper}}") == "||"
    assert _render("{{{ticket.subject}}}") == "}"      # the path is "{ticket.subject": not a path
    assert _render("{{ x }} {{") == " {{"            # an unclosed {{ stays literal text
    assert _render("a }} b {{ticket.subject}") == "a }} b {{ticket.subject}"
    assert _render("{{}}{{ }}") == ""
    assert _render("{{ticket.subject\n}}") == "Printer on fire"


def test_many_placeholders_of_a_huge_value_are_cut_at_the_output_limit() -> None:
    big = {"subject": "s" * 60_000, "custom": {"blob": {"k": "v" * 60_000}},
           "tags": ["t" * 1000] * 1000}
    for path in ("ticket.subject", "ticket.custom.blob", "ticket.tags"):
        template = ("{{%s}}" % path) * (MAX_TEMPLATE_CHARS // (len(path) + 4))
        t0 = time.perf_counter()
        out = _render(template, big)
        assert time.perf_counter() - t0 < 0.5
        assert len(out) == MAX_RENDERED_CHARS + len(TRUNCATED)
        assert out.endswith(TRUNCATED)


def test_a_long_literal_tail_is_cut_too() -> None:
    out = render("x" * (MAX_RENDERED_CHARS + 10), {}, {}, {})
    assert out == "x" * MAX_RENDERED_CHARS + TRUNCATED
    assert render("x" * MAX_RENDERED_CHARS, {}, {}, {}) == "x" * MAX_RENDERED_CHARS


def _rule(action: dict) -> dict:
    return {"id": "r1", "name": "r1", "triggers": ["message.received"], "actions": [action]}


@pytest.mark.parametrize("action", [
    {"type": "send_message", "template": "x" * (MAX_TEMPLATE_CHARS + 1)},
    {"type": "notify", "target": "team", "message": "x" * (MAX_TEMPLATE_CHARS + 1)},
])
def test_an_overlong_template_is_refused_at_compile_time(action: dict) -> None:
    with pytest.raises(RuleError) as info:
        compile_rules([_rule(action)])
    assert "MAX_TEMPLATE_CHARS" in str(info.value) and str(MAX_TEMPLATE_CHARS) in str(info.value)


def test_a_template_at_the_limit_compiles() -> None:
    compile_rules([_rule({"type": "send_message", "template": "x" * MAX_TEMPLATE_CHARS})])
