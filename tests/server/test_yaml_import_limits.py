"""Hostile YAML imports: refused before anything is built, with a 422 naming why (server/yamlsafe.py)."""
from __future__ import annotations

import time
from typing import Any

import pytest

from server.errors import Unprocessable
from server.yamlsafe import MAX_YAML_NODES, load_document


def _bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]")
    return "\n".join(lines) + "\nrules: []\n"


def _post(ws: Any, text: str) -> Any:
    return ws.client.post("/v1/import", content=text.encode(),
                          headers={**ws.h("admin"), "Content-Type": "application/yaml"})


def test_alias_bomb_is_refused_fast(ws: Any) -> None:
    body = _bomb(30)  # ~30 levels exhausted memory; 20 took 7 s and 450 MiB
    t0 = time.perf_counter()
    r = _post(ws, body)
    assert time.perf_counter() - t0 < 2
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_yaml" and "aliases" in err["message"]


@pytest.mark.parametrize("text", [
    "x: &a 1\nrules: []\n",                      # an anchor alone
    "base: &b {enabled: true}\nrules: [{<<: *b, name: r}]\n",  # merge keys need aliases
])
def test_any_anchor_or_alias_is_refused(ws: Any, text: str) -> None:
    r = _post(ws, text)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_yaml", r.text


def test_big_integer_is_a_422_not_a_500(ws: Any) -> None:
    r = _post(ws, "deskflow: 1\nrules: [{name: r, triggers: [ticket.created], actions: [{type: set, "
                  "field: custom.n, value: 123456789012345678901234567890}]}]\n")
    assert r.status_code == 422, r.text
    assert "64 bits" in r.json()["error"]["message"]


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", ".NaN"])
def test_nan_and_inf_are_refused(ws: Any, value: str) -> None:
    r = _post(ws, f"rules: [{{name: r, triggers: [ticket.created], actions: [{{type: set, "
                  f"field: custom.n, value: {value}}}]}}]\n")
    assert r.status_code == 422, r.text
    assert "JSON" in r.json()["error"]["message"]


def test_unquoted_times_stay_times(ws: Any) -> None:
    """YAML 1.1 reads 17:00 as 1020 (base 60): the loader keeps it the time it means."""
    text = """
sla_policies:
  - name: office
    targets: {first_response: 4h}
    business_hours:
      timezone: Europe/Oslo
      week: {mon: [09:00, 17:00], tue: [09:30, 24:00]}
rules:
  - name: late
    triggers: [ticket.created]
    actions: [{type: set, field: custom.closes, value: 17:00}]
"""
    r = _post(ws, text)
    assert r.status_code == 200, r.text
    rules = ws.client.get("/v1/rules", headers=ws.h()).json()["items"]
    assert rules[0]["actions"][0]["value"] == "17:00"


def test_the_loader_directly() -> None:
    assert load_document("a: 17:00\nb: 1:30:00\nc: 0x1F\nd: 1_000\ne: 1.5\nf: 2026-12-25") == {
        "a": "17:00", "b": "1:30:00", "c": 31, "d": 1000, "e": 1.5,
        "f": __import__("datetime").date(2026, 12, 25)}
    for text, why in [("a: !!binary aGk=", "bytes"), ("a: !!set {x}", "set"),
                      ("- " * 150 + "x", "levels"), ("a: 9223372036854775808", "64 bits"),
                      ("a: -9223372036854775809", "64 bits"), ("a: *x", "alias")]:
        with pytest.raises(Unprocessable) as info:
            load_document(text, 100)
        assert why in info.value.message, (text, info.value.message)
    assert load_document("a: 9223372036854775807") == {"a": 2 ** 63 - 1}


def test_too_many_nodes() -> None:
    text = "[" + "1," * MAX_YAML_NODES + "1]"
    with pytest.raises(Unprocessable) as info:
        load_document(text)
    assert "MAX_YAML_NODES" in info.value.message


def test_a_base60_number_in_business_hours_says_to_quote_it(ws: Any) -> None:
    doc = {"sla_policies": [{"name": "office", "targets": {"first_response": "4h"},
                             "business_hours": {"timezone": "UTC", "week": {"mon": [540, 1020]}}}]}
    r = ws.client.post("/v1/import", json=doc, headers=ws.h("admin"))
    assert r.status_code == 422, r.text
    reasons = [d["reason"] for d in r.json()["error"]["details"]]
    # each number is explained as the time it stands for (540 is 09:00, 1020 is 17:00)
    assert any('got the number 540; in YAML write times in quotes, e.g. "09:00"' in x for x in reasons)
    assert any('got the number 1020; in YAML write times in quotes, e.g. "17:00"' in x for x in reasons)
