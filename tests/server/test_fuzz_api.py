"""Hypothesis fuzz of the validators behind POST /v1/events (single and batch), POST /v1/rules and
POST /v1/rules/{id}/test (issue 7 part 3).

Whatever arrives (arbitrary JSON, JSON spelled with NaN/Infinity, lone surrogates, NUL bytes, huge
numbers, deep nesting, very long strings, wrong types anywhere in an otherwise valid event or
rule), the answer is a 2xx or a 4xx in the error envelope, never a 500, and it comes promptly:
an accepted event sent with ?wait=true must come back processed by the worker.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from server_helpers import Workspace

from rules.actions import ACTION_KEYS
from rules.fields import FIXED_FIELDS
from rules.ops import OPS
from server.api.validate import EVENT_TYPES, PRIORITIES, STATUSES

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
ERRORS = {400, 404, 409, 413, 415, 422}
PROMPT_S = 10.0  # no answer may take longer (the ?wait=true bound of the test settings)

# JSON scalars, with the awkward ones: huge and negative-zero numbers, NUL and control characters,
# very long strings. Lone surrogates come in through _any, NaN and Infinity as spellings in _raw.
_text = st.text(max_size=40)
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False), _text,
    st.sampled_from(["a\x00b", "\x00", "-0", "", " ", "\u202e", "{{x}}", "\n", "\x1b[2J"]),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "😀"]), st.integers(1, 70_000)))
_json = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)), max_leaves=12)


def _nested(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


_deep = st.builds(_nested, st.integers(1, 400), _scalar)
_lone = st.sampled_from(["\ud800", "x\udfff", "\udfff\ud800"])  # refused by the JSON parser
_any = st.sampled_from(range(8)).flatmap(lambda i: _deep if i == 6 else _lone if i == 7 else _json)


def _or_any(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly (7 in 8) the right kind of value, sometimes anything at all."""
    return st.sampled_from(range(8)).flatmap(lambda i: _any if i == 7 else valid)


def _corrupt(valid: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid object, or (1 in 4) one with one key set to anything (a wrong type, a huge value)."""
    broken = st.builds(lambda d, k, v: {**d, k: v}, valid, _text | st.sampled_from(
        ["id", "type", "field", "value", "tags", "op", "all", "any"]), _any)
    return st.sampled_from(range(4)).flatmap(lambda i: broken if i == 3 else valid)


_ids = _or_any(st.from_regex(r"\A[A-Za-z0-9_.-]{1,12}\Z"))
_words = st.sampled_from(["billing", "refund", "vip", "urgent", "x", "ÜNÏCODE", "a b"])
_contact = st.fixed_dictionaries({"id": _ids}, optional={
    "email": _or_any(st.emails()), "name": _or_any(_text), "groups": _or_any(st.lists(_words)),
    "custom": _or_any(st.dictionaries(_text, _json, max_size=3))})
_ticket = st.fixed_dictionaries({"id": _ids}, optional={
    "subject": _or_any(_text), "description": _or_any(_text),
    "status": _or_any(st.sampled_from(STATUSES)), "priority": _or_any(st.sampled_from(PRIORITIES)),
    "channel": _or_any(_words), "department": _or_any(_words), "assignee": _or_any(_text),
    "tags": _or_any(st.lists(_words, max_size=6)),
    "custom": _or_any(st.dictionaries(_words, _json, max_size=3)), "contact": _or_any(_contact),
    # the service's own bookkeeping, which events must not be able to corrupt
    **{k: st.one_of(st.none(), _scalar, st.dictionaries(_text, _scalar, max_size=2))
       for k in ("version", "sla", "automation", "snoozed_until", "created_at",
                 "last_customer_message_at")}})
_event = _corrupt(st.fixed_dictionaries(
    {"id": _ids, "type": _or_any(st.sampled_from(EVENT_TYPES)), "ticket": _or_any(_ticket)},
    optional={"occurred_at": _or_any(st.sampled_from(
                  ["2026-11-23T08:00:00Z", "2026-11-23T09:30:00+01:00", "2026-02-30T08:00:00Z", "9999-12-31T23:59:59+23:59",
                   "0001-01-01T00:00:00Z", "2026-11-23 08:00:00.123456789+01:00"])),
              "message": _or_any(st.fixed_dictionaries({}, optional={
                  "author": _or_any(st.sampled_from(["customer", "agent", "system"])),
                  "body": _or_any(_text), "channel": _or_any(_words)}))}))

_field = _or_any(st.sampled_from(sorted(FIXED_FIELDS) + ["custom.plan", "contact.custom.tier",
                                                         "vars.x", "event.actor", "nope"]))
_value = _or_any(st.one_of(_words, st.lists(_words, max_size=3), st.sampled_from(
    ["1h", "30m", "(a|aa)+$", "[", "(?i)ref", "2026-11-23T08:00:00Z", "x" * 1001])))
_good_leaves = st.sampled_from([
    ("subject", "contains", "refund"), ("subject", "matches", "(a|aa)+$"), ("tags", "includes", "vip"),
    ("priority", "is", "high"), ("status", "in", ["open", "new"]), ("contact.groups", "includes", "vip"),
    ("custom.plan", "is", "pro"), ("created_at", "older_than", "1h"), ("subject", "is_empty", None),
    ("subject", "changed", None), ("priority", "gte", "high"), ("message.body", "contains", "bad")])
_leaf = _corrupt(st.one_of(
    _good_leaves.map(lambda t: {"field": t[0], "op": t[1]} | ({} if t[2] is None else {"value": t[2]})),
    st.fixed_dictionaries({"field": _field, "op": _or_any(st.sampled_from(sorted(OPS))),
                           "value": _value})))
_conditions = st.recursive(_leaf, lambda inner: st.one_of(
    st.fixed_dictionaries({"all": st.lists(inner, max_size=3)}),
    st.fixed_dictionaries({"any": st.lists(inner, max_size=3)})), max_leaves=6)


def _nested_groups(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = {"all": [leaf]}
    return leaf


_action = _corrupt(st.one_of(
    st.builds(lambda f, v: {"type": "set", "field": f, "value": v}, _field, _value),
    st.builds(lambda t, tags: {"type": t, "tags": tags}, st.sampled_from(["add_tags", "remove_tags"]),
              _or_any(st.lists(_words, max_size=3))),
    st.builds(lambda t, g: {"type": t, "group": g},
              st.sampled_from(["add_to_group", "remove_from_group"]), _or_any(_words)),
    st.builds(lambda m: {"type": "notify", "target": "leads", "message": m},
              _or_any(st.sampled_from(["{{ticket.subject}}", "{{", "{{nope.x}}", "hi"]))),
    st.builds(lambda m: {"type": "send_message", "template": m}, _or_any(_text)),
    st.builds(lambda d: {"type": "snooze", "for": d}, _or_any(st.sampled_from(["1h", "-1h", "0s", "99999d"]))),
    st.sampled_from([{"type": "close"}, {"type": "wake"}, {"type": "apply_sla", "policy": "nope"},
                     {"type": "run_script", "script": "missing"}]),
    st.builds(lambda t: {"type": t}, _any)))
_rule = _corrupt(st.fixed_dictionaries(
    {"name": _words, "enabled": st.just(True),
     "triggers": _or_any(st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=3,
                                  unique=True)),
     "conditions": _or_any(st.one_of(_conditions, _conditions, st.builds(
         _nested_groups, st.integers(28, 36), _leaf))),
     "actions": _or_any(st.lists(_action, min_size=1, max_size=3))},
    optional={"description": _or_any(st.just("why"))}))

# Whole bodies as bytes: JSON as Python writes it (NaN, Infinity, lone surrogates escaped), the
# same unescaped (invalid UTF-8 on the wire), and plain noise.
_spellings = st.sampled_from([
    b"NaN", b"Infinity", b"-Infinity", b'{"id": NaN}', b'"\\ud800"', b'{"id": "\\udc00x"}',
    b'{"id": "a\\u0000b", "type": "ticket.created", "ticket": {"id": "\\u0000"}}',
    b"1e999999", b"-1e-999999", b"123456789012345678901234567890", b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 1100 + b"1" + b"}" * 1100, b"\xff\xfe", b"\x00", b"{}", b"[]", b"null", b"",
    b'{"events": null}', b'{"events": {}}', b'{"events": [null, 1, "x"]}', b'{"type": []}'])


def _dumps(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, allow_nan=True, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


_raw = st.one_of(_spellings, st.binary(max_size=64),
                 st.builds(_dumps, st.one_of(_any, _event, _rule), st.booleans()))


def _post(ws: Workspace, path: str, body: bytes, role: str = "admin") -> Any:
    headers = {**ws.h(role), "Content-Type": "application/json"}
    start = time.monotonic()
    r = ws.client.post(path, content=body, headers=headers)
    took = time.monotonic() - start
    assert took < PROMPT_S, f"{path} took {took:.1f} s"
    assert r.status_code < 500, f"{r.status_code} {r.text[:500]} for {body[:300]!r}"
    if r.status_code >= 400:
        assert r.status_code in ERRORS, r.text
        err = r.json()
        assert set(err) == {"error"} and set(err["error"]) == {"code", "message", "details"}, err
        assert isinstance(err["error"]["code"], str) and err["error"]["message"], err
    else:
        assert 200 <= r.status_code < 300
    return r


def _json_body(value: Any) -> bytes:
    return _dumps(value, ascii_only=True)


@FUZZ
@given(body=st.one_of(_event, _any))
def test_single_event(ws: Workspace, body: Any) -> None:
    r = _post(ws, "/v1/events?wait=true", _json_body(body), "ingest")
    if r.status_code < 300:
        # accepted means applied: the worker took it without failing or stalling
        assert r.status_code == 200 and r.json()["status"] in ("processed", "duplicate"), r.text


@FUZZ
@given(events=st.one_of(st.lists(_event, min_size=1, max_size=4), _any))
def test_event_batch(ws: Workspace, events: Any) -> None:
    r = _post(ws, "/v1/events?wait=true", _json_body({"events": events}), "ingest")
    if r.status_code < 300:
        assert r.status_code == 200, r.text
        assert all(x["status"] in ("processed", "duplicate") for x in r.json()["results"])


@FUZZ
@given(body=_raw)
def test_raw_bodies(ws: Workspace, body: bytes) -> None:
    _post(ws, "/v1/events", body, "ingest")
    _post(ws, "/v1/rules", body)


@FUZZ
@given(rule=st.one_of(_rule, _any), event=st.one_of(_event, _any))
def test_rule_and_its_test_run(ws: Workspace, rule: Any, event: Any) -> None:
    r = _post(ws, "/v1/rules", _json_body(rule))
    rule_id = r.json()["id"] if r.status_code == 201 else ws_rule(ws)
    _post(ws, f"/v1/rules/{rule_id}/test", _json_body({"event": event}))
    _post(ws, f"/v1/rules/{rule_id}/test", _json_body(event))
    if r.status_code == 201:
        assert ws.client.delete(f"/v1/rules/{rule_id}", headers=ws.h()).status_code == 204


def ws_rule(ws: Workspace) -> str:
    """One valid rule per workspace, for the test-run fuzz when the fuzzed rule was refused."""
    rule_id = getattr(ws, "_fuzz_rule", None)
    if rule_id is None:
        rule_id = ws.rule(name="fuzz target", triggers=["ticket.created", "message.received"],
                          conditions={"any": [{"field": "subject", "op": "matches", "value": "(a|aa)+$"},
                                              {"field": "tags", "op": "includes", "value": "x"}]},
                          actions=[{"type": "add_tags", "tags": ["seen"]}])["id"]
        ws._fuzz_rule = rule_id  # type: ignore[attr-defined]
    return str(rule_id)


@pytest.mark.parametrize("body", [
    b'{"id": "e", "type": "ticket.created", "ticket": {"id": "T", "custom": ' + b'{"a":' * 300
    + b"1" + b"}" * 300 + b"}}",
    b'{"name": "deep", "triggers": ["ticket.created"], "actions": [], "conditions": '
    + b'{"all": [' * 120 + b'{"field": "subject", "op": "is", "value": "x"}' + b"]}" * 120 + b"}",
])
def test_deep_documents_are_refused_not_crashed(ws: Workspace, body: bytes) -> None:
    """The first 500s this fuzz found: a document nested past what the store can write back."""
    for path in ("/v1/events", "/v1/rules"):
        r = _post(ws, path, body, "admin")
        assert r.status_code == 422 and r.json()["error"]["code"] == "too_deep", r.text
