"""The peers of bench/fires_bench.py on the many-fires workload (bench/_firesgen.py).

- zen-engine in the set-up the issue names as its fastest: one decision table per event type, hit
  policy `collect`, one field-less input column whose cell holds the rule's whole expression,
  loaded through `ZenEngine({"loader": {"type": "static", "content": ...}})` and called as
  `engine.evaluate(key, context)`; every decision is evaluated once before timing so it is loaded.
- A generated-Python floor: one function per event type with every rule's conditions inline
  (case folding and list-to-set done once per event, regexes precompiled), returning the ids of
  the matching rules. It checks every rule, with no index: the cost of the conditions alone.

Both read the conditions with deskflow's semantics (API.md, Rules) for the data the generator
makes: text is compared case-folded (the subject and description are lower-cased once per event
and handed over beside the ticket, inside the timed call), `matches` is a case-insensitive search,
`is_not` of a value holds when the field lacks it, `gt`/`lt` hold on numbers only. The generator's
custom fields are always present and of their type, so the zen translation needs no type guards
(guards would only slow it). Any op the generator does not emit raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[dict[str, Any], dict[str, Any]], list[str]]
_FOLDED_TEXT = ("subject", "description")


# ------------------------------------------------------------------------------- zen-engine

def _zen_str(s: str) -> str:
    if '"' in s:  # zen string literals have no escapes
        raise ValueError(f"cannot put {s!r} in a zen string literal")
    return f'"{s}"'


def _zen_path(f: str) -> str:
    if f in _FOLDED_TEXT:
        return f"{f}_l"
    if f == "contact.groups":
        return "ticket.contact.groups"
    return f"ticket.{f}"


def zen_expr(node: dict[str, Any]) -> str:
    if "all" in node:
        return "(" + " and ".join(zen_expr(c) for c in node["all"]) + ")"
    if "any" in node:
        return "(" + " or ".join(zen_expr(c) for c in node["any"]) + ")"
    f, op, v = node["field"], node["op"], node.get("value")
    x = _zen_path(f)
    if op == "is":
        return f"{x} == {_zen_str(v)}"
    if op == "is_not":
        return f"{x} != {_zen_str(v)}"
    if op == "in":
        return f"{x} in [{', '.join(_zen_str(s) for s in v)}]"
    if op == "contains":
        return f"contains({x}, {_zen_str(v)})"
    if op == "includes":
        return f"{_zen_str(v)} in {x}"
    if op in ("gt", "lt"):
        return f"{x} {'>' if op == 'gt' else '<'} {v}"
    if op == "matches":
        return f"matches(ticket.{f}, {_zen_str('(?i)' + v)})"
    raise ValueError(f"no zen translation for {f} {op} {v!r}")


def zen_graph(rules: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [{"_id": r["id"], "c": zen_expr(r["conditions"]), "o": _zen_str(r["id"])} for r in rules]
    table = {"hitPolicy": "collect", "inputs": [{"id": "c", "name": "conditions", "type": "expression"}],
             "outputs": [{"id": "o", "name": "rule", "type": "expression", "field": "rule"}],
             "rules": rows}
    return {
        "contentType": "application/vnd.gorules.decision",
        "nodes": [
            {"id": "in", "type": "inputNode", "name": "Request", "position": {"x": 0, "y": 0}},
            {"id": "dt", "type": "decisionTableNode", "name": "Rules", "position": {"x": 200, "y": 0},
             "content": table},
            {"id": "out", "type": "outputNode", "name": "Response", "position": {"x": 400, "y": 0}},
        ],
        "edges": [{"id": "e1", "sourceId": "in", "targetId": "dt", "type": "edge"},
                  {"id": "e2", "sourceId": "dt", "targetId": "out", "type": "edge"}],
    }


def zen_matcher(rules: list[dict[str, Any]], event_types: tuple[str, ...]) -> Matcher:
    import zen

    content = {t: zen_graph([r for r in rules if t in r["triggers"]]) for t in event_types}
    # the static loader takes decision content as dicts (zen/__init__.pyi: StaticLoaderConfig);
    # a JSON round trip makes sure nothing but JSON goes in
    engine = zen.ZenEngine({"loader": {"type": "static", "content": json.loads(json.dumps(content))}})

    def match(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        ctx = {"ticket": ticket, "subject_l": ticket["subject"].lower(),
               "description_l": ticket["description"].lower()}
        result = engine.evaluate(event["type"], ctx)["result"]
        return [row["rule"] for row in result] if isinstance(result, list) else []

    for t in event_types:  # load (and compile) every decision before timing
        match({"type": t}, {"subject": "", "description": "", "tags": [], "contact": {"groups": []},
                            "custom": {}})
    return match


# --------------------------------------------------------------------- generated-Python floor

_LOCALS = {"subject": "f_subject", "description": "f_description", "channel": "f_channel",
           "priority": "f_priority", "status": "f_status", "tags": "f_tags",
           "contact.groups": "f_groups", "custom.plan": "f_plan", "custom.region": "f_region",
           "custom.seats": "f_seats", "custom.mrr": "f_mrr"}
_PRELUDE = """\
    def _fold(v):
        return v.casefold() if type(v) is str else None
    def _set(v):
        return frozenset(x.casefold() for x in v if type(x) is str) if type(v) is list else frozenset()
    def _num(v):
        return v if type(v) in (int, float) else None
"""
_READS = """\
        r_subject = t.get("subject"); r_description = t.get("description")
        f_subject = _fold(r_subject); f_description = _fold(r_description)
        f_channel = _fold(t.get("channel")); f_priority = _fold(t.get("priority"))
        f_status = _fold(t.get("status")); f_tags = _set(t.get("tags"))
        c = t.get("contact"); f_groups = _set(c.get("groups") if type(c) is dict else None)
        cu = t.get("custom"); cu = cu if type(cu) is dict else {}
        f_plan = _fold(cu.get("plan")); f_region = _fold(cu.get("region"))
        f_seats = _num(cu.get("seats")); f_mrr = _num(cu.get("mrr"))
        out = []
"""


def _py_expr(node: dict[str, Any], consts: list[Any]) -> str:
    def const(v: Any) -> str:
        consts.append(v)
        return f"K[{len(consts) - 1}]"
    if "all" in node:
        return "(" + " and ".join(_py_expr(c, consts) for c in node["all"]) + ")"
    if "any" in node:
        return "(" + " or ".join(_py_expr(c, consts) for c in node["any"]) + ")"
    f, op, v = node["field"], node["op"], node.get("value")
    x = _LOCALS[f]
    if op == "is":
        return f"{x} == {const(v.casefold())}"
    if op == "is_not":
        return f"{x} != {const(v.casefold())}"
    if op == "in":
        return f"{x} in {const(frozenset(s.casefold() for s in v))}"
    if op == "contains":
        return f"({x} is not None and {const(v.casefold())} in {x})"
    if op == "includes":
        return f"{const(v.casefold())} in {x}"
    if op in ("gt", "lt"):
        return f"({x} is not None and {x} {'>' if op == 'gt' else '<'} {const(v)})"
    if op == "matches":
        raw = f"r_{f}"
        return f"(type({raw}) is str and {const(re.compile(v, re.IGNORECASE).search)}({raw}) is not None)"
    raise ValueError(f"no floor translation for {f} {op} {v!r}")


def floor_matcher(rules: list[dict[str, Any]], event_types: tuple[str, ...]) -> Matcher:
    """One generated function per event type; values go in as constants K[i], never as source."""
    funcs = {}
    for etype in event_types:
        consts: list[Any] = []
        body: list[str] = []
        for r in (r for r in rules if etype in r["triggers"]):
            cond = _py_expr(r["conditions"], consts)
            consts.append(r["id"])
            body.append(f"        if {cond}: out.append(K[{len(consts) - 1}])")
        src = ("def make(K):\n" + _PRELUDE + "    def match(t):\n" + _READS + "\n".join(body)
               + "\n        return out\n    return match\n")
        ns: dict[str, Any] = {}
        exec(compile(src, f"<floor {etype}>", "exec"), ns)  # noqa: S102 -- our own generated rules
        funcs[etype] = ns["make"](consts)

    def match(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        return funcs[event["type"]](ticket)  # type: ignore[no-any-return]
    return match
