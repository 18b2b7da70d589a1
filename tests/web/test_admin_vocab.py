"""The managers' page offers a control for everything the engine accepts (issue 12, item 8).

Rules with `priority gt normal`, `status lte pending` or `older_than_business` with a calendar
opened as "gt (not valid here)" with empty values: the page's op list and value kinds were its own
copy. Now /admin/vocab.json serves, per field, every op the engine accepts with the kind of value it
takes; these tests ask the engine itself (validate_rule) which ops every field takes and whether a
value of the served kind passes, and check that the page has a label for every op and a control
for every kind. No browser here (test_admin_page.py opens such rules in Chromium).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from rules import validate_rule
from rules.fields import FIXED_FIELDS
from rules.ops import OPS
from server.api.admin import vocabulary

ADMIN = Path(__file__).resolve().parents[2] / "server" / "admin"
CALENDAR = {"timezone": "UTC", "week": {"mon": ["09:00", "17:00"]}}
# A value of each kind the page can draw; `values` (a field's set) pick the first allowed one.
_SAMPLES: dict[str, Any] = {"string": "x", "strings": ["x"], "scalar": "x", "scalars": ["x", 1],
                            "number": 1, "duration": "1h"}
# Every shape of value there is, to find every op the engine accepts on a field on its own.
_PROBES: list[Any] = [None, "x", "1h", 1, ["x"], "normal", "pending", ["customer"], "customer"]


def _rule(field: str, op: str, value: Any = None, calendar: bool = False) -> dict[str, Any]:
    leaf: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        leaf["value"] = value
    if calendar:
        leaf["calendar"] = CALENDAR
    return {"name": "r", "triggers": ["ticket.created"], "conditions": {"all": [leaf]},
            "actions": [{"type": "add_tags", "tags": ["t"]}]}


def _accepts(field: str, op: str, value: Any = None, calendar: bool = False) -> bool:
    return validate_rule(_rule(field, op, value, calendar)) == []


def _engine_ops(field: str) -> set[str]:
    """Every op the engine accepts on `field` with some value (or none)."""
    return {op for op in OPS for v in _PROBES for cal in (False, True)
            if _accepts(field, op, v, cal)}


def _served() -> list[tuple[str, dict[str, Any]]]:
    """(a field name the engine knows, the served entry) for every fixed field and family."""
    v = vocabulary()
    return ([(f["name"], f) for f in v["fields"]]
            + [(p["prefix"] + "plan", p) for p in v["prefixed"]])


def _sample(entry: dict[str, Any], kind: str) -> Any:
    values = entry.get("values")
    if kind == "choice":
        return values[1]
    if values and kind in ("string", "strings"):
        return [values[0]] if kind == "strings" else values[0]
    return _SAMPLES.get(kind)


def test_every_field_the_engine_has_is_served() -> None:
    served = {name for name, _ in _served()}
    assert set(FIXED_FIELDS) <= served


@pytest.mark.parametrize("name, entry", _served(), ids=[n for n, _ in _served()])
def test_the_served_ops_are_exactly_the_engines(name: str, entry: dict[str, Any]) -> None:
    assert set(entry["ops"]) == _engine_ops(name)


@pytest.mark.parametrize("name, entry", _served(), ids=[n for n, _ in _served()])
def test_a_value_of_the_served_kind_is_accepted(name: str, entry: dict[str, Any]) -> None:
    calendar_ops = set(vocabulary()["calendar_ops"])
    refused = [(op, kind) for op, kind in entry["ops"].items()
               if not _accepts(name, op, _sample(entry, kind), op in calendar_ops)]
    assert refused == []


def _js_object_keys(source: str, const: str) -> set[str]:
    body = re.search(rf"export const {const} = \{{(.*?)\}};", source, re.S)
    assert body, const
    return set(re.findall(r"(\w+):", body.group(1)))


def test_the_page_has_a_label_and_a_control_for_every_served_op() -> None:
    source = (ADMIN / "vocab.js").read_text()
    labels = _js_object_keys(source, "OP_LABELS")
    kinds = set(re.findall(r"'(\w+)'", re.search(r"export const VALUE_KINDS = \[(.*?)\];",
                                                 source, re.S).group(1)))  # type: ignore[union-attr]
    served_ops = {op for _, e in _served() for op in e["ops"]}
    served_kinds = {k for _, e in _served() for k in e["ops"].values()}
    assert served_ops == set(OPS)
    assert served_ops - labels == set()
    assert served_kinds - kinds == set()
    editor = (ADMIN / "conditions.js").read_text()  # valueInput, split out of editor.js
    for kind in kinds:  # valueInput draws each kind (kinds it does not name fall to a text box)
        assert f"'{kind}'" in editor or kind == "string", kind
