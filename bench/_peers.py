"""The two peer engines of bench/rules_bench.py: zen-engine (GoRules) and rule-engine (PyPI).

Both get the same input per event: `{"ticket": <merged ticket>, "message": <event message or
null>}`, built inside the timed call. Each generated condition is translated to the peer's own
language with deskflow's semantics (API.md, Rules): text comparisons fold case on both sides
(`lower()` / `.as_lower`; the generator emits ASCII only, where lower == casefold), `matches` is a
case-insensitive regex *search* (`(?i)` prefix), `gt` holds only on numbers, and a missing value
holds nothing (guards on the fields that can be missing: `custom.*`, `message.*`).

Only the ops the generator emits are translated; anything else raises, so a generator change
cannot silently produce a wrong peer rule.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import orjson
import rule_engine
import zen

Matcher = Callable[[dict[str, Any], dict[str, Any]], list[str]]

_NULLABLE_PREFIXES = ("custom.", "message.")


def _zen_path(f: str) -> str:
    if f == "contact.groups":
        return "ticket.contact.groups"
    if f.startswith("message."):
        return f
    return f"ticket.{f}"


def _zen_str(s: str) -> str:
    # zen string literals have no escapes: a backslash is literal, so a regex goes in as written.
    if '"' in s:
        raise ValueError(f"cannot put {s!r} in a zen string literal")
    return f'"{s}"'


def zen_condition(c: dict[str, Any]) -> str:
    f, op, v = c["field"], c["op"], c.get("value")
    x = _zen_path(f)
    nullable = f.startswith(_NULLABLE_PREFIXES)
    if op == "is" and isinstance(v, str):
        expr = f"lower({x}) == {_zen_str(v.lower())}"
        return f'(type({x}) == "string" and {expr})' if nullable else expr
    if op == "in":
        items = ", ".join(_zen_str(s.lower()) for s in v)
        return f"lower({x}) in [{items}]"
    if op == "contains":
        expr = f"contains(lower({x}), {_zen_str(v.lower())})"
        return f'(type({x}) == "string" and {expr})' if nullable else expr
    if op == "matches":
        expr = f"matches({x}, {_zen_str('(?i)' + v)})"
        return f'(type({x}) == "string" and {expr})' if nullable else expr
    if op == "includes":
        return f"some({x}, lower(#) == {_zen_str(v.lower())})"
    if op == "gt" and isinstance(v, (int, float)):
        return f'(type({x}) == "number" and {x} > {v})'
    raise ValueError(f"no zen translation for {f} {op} {v!r}")


# Column expressions of the field-column layout: zen evaluates a column's expression as `$` for
# its non-empty cells, so case folding is written once per column and cells stay short unary tests.
_ZEN_COLUMNS = {
    "status": "lower(ticket.status)", "priority": "lower(ticket.priority)",
    "channel": "lower(ticket.channel)", "subject": "lower(ticket.subject)",
    "message.body": "lower(message.body)", "tags": "map(ticket.tags, lower(#))",
    "contact.groups": "map(ticket.contact.groups, lower(#))",
}


def zen_cell(c: dict[str, Any]) -> str:
    """A unary cell for the column of c's field (`$` is the column value, already lower-cased
    except for `custom.*`, whose type is known only at run time). Unary cells must not start
    with a parenthesis (zen's unary parser rejects it), hence no grouping."""
    f, op, v = c["field"], c["op"], c.get("value")
    if op == "is" and isinstance(v, str):
        if f.startswith("custom."):
            return f'type($) == "string" and lower($) == {_zen_str(v.lower())}'
        return f"$ == {_zen_str(v.lower())}"
    if op == "in":
        return "$ in [" + ", ".join(_zen_str(s.lower()) for s in v) + "]"
    if op == "contains":
        return f"contains($, {_zen_str(v.lower())})"
    if op == "matches":
        return f"matches($, {_zen_str('(?i)' + v)})"
    if op == "includes":
        return f"{_zen_str(v.lower())} in $"
    if op == "gt" and isinstance(v, (int, float)):
        return f'type($) == "number" and $ > {v}'
    raise ValueError(f"no zen translation for {f} {op} {v!r}")


def _zen_rows_expression(rules: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    inputs = [{"id": "c", "name": "conditions", "type": "expression"}]
    rows = [{"_id": r["id"], "o": _zen_str(r["id"]),
             "c": " and ".join(zen_condition(c) for c in r["conditions"]["all"])} for r in rules]
    return inputs, rows


def _zen_rows_columns(rules: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    fields = sorted({c["field"] for r in rules for c in r["conditions"]["all"]})
    ids = {f: f"c{i}" for i, f in enumerate(fields)}
    inputs = [{"id": ids[f], "name": f, "type": "expression",
               "field": _ZEN_COLUMNS.get(f, f"ticket.{f}")} for f in fields]
    rows = []
    for r in rules:
        row = {"_id": r["id"], "o": _zen_str(r["id"])} | {ids[f]: "" for f in fields}
        for c in r["conditions"]["all"]:
            k = ids[c["field"]]
            row[k] = f"{row[k]} and {zen_cell(c)}" if row[k] else zen_cell(c)
        rows.append(row)
    return inputs, rows


def zen_graphs(rules: list[dict[str, Any]], event_types: tuple[str, ...], layout: str,
               ) -> dict[str, str]:
    """One JDM graph per event type: input -> decision table (hit policy collect) -> output.

    One row per rule listening to the type, in rule order; one output column with the rule id.
    layout "columns": one input column per field (its `field` expression read as `$`), unary
    cells, the idiomatic decision table and the faster one; layout "expression": a single
    field-less input column whose cell is the rule's whole conjunction.
    """
    build = _zen_rows_columns if layout == "columns" else _zen_rows_expression
    graphs = {}
    for etype in event_types:
        inputs, rows = build([r for r in rules if etype in r["triggers"]])
        table = {"hitPolicy": "collect", "inputs": inputs,
                 "outputs": [{"id": "o", "name": "rule", "type": "expression", "field": "rule"}],
                 "rules": rows}
        graph = {
            "contentType": "application/vnd.gorules.decision",
            "nodes": [
                {"id": "in", "type": "inputNode", "name": "Request", "position": {"x": 0, "y": 0}},
                {"id": "dt", "type": "decisionTableNode", "name": "Rules",
                 "position": {"x": 200, "y": 0}, "content": table},
                {"id": "out", "type": "outputNode", "name": "Response",
                 "position": {"x": 400, "y": 0}},
            ],
            "edges": [
                {"id": "e1", "sourceId": "in", "targetId": "dt", "type": "edge"},
                {"id": "e2", "sourceId": "dt", "targetId": "out", "type": "edge"},
            ],
        }
        graphs[etype] = json.dumps(graph)
    return graphs


def _zen_ids(response: dict[str, Any]) -> list[str]:
    result = response["result"]
    return [row["rule"] for row in result] if isinstance(result, list) else []


def zen_setups(rules: list[dict[str, Any]], event_types: tuple[str, ...],
               ) -> dict[str, Matcher]:
    """The zen-engine set-ups tried; the bench reports each and uses the fastest."""
    graphs = zen_graphs(rules, event_types, "columns")
    expr_graphs = zen_graphs(rules, event_types, "expression")
    engine = zen.ZenEngine()
    decisions = {t: engine.create_decision(g) for t, g in graphs.items()}
    expr_decisions = {t: engine.create_decision(g) for t, g in expr_graphs.items()}
    loader_engine = zen.ZenEngine({"loader": lambda key: graphs[key]})
    loop = asyncio.new_event_loop()

    def ctx(event: dict[str, Any], ticket: dict[str, Any]) -> dict[str, Any]:
        return {"ticket": ticket, "message": event.get("message")}

    def decision_dict(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        return _zen_ids(decisions[event["type"]].evaluate(ctx(event, ticket)))

    def decision_json(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        return _zen_ids(decisions[event["type"]].evaluate(orjson.dumps(ctx(event, ticket))))

    def decision_trace(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        return _zen_ids(decisions[event["type"]].evaluate(ctx(event, ticket), {"trace": True}))

    def engine_loader(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        return _zen_ids(loader_engine.evaluate(event["type"], ctx(event, ticket)))

    async def _async_eval(decision: Any, context: dict[str, Any]) -> Any:
        return await decision.async_evaluate(context)

    def decision_async(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        coro = _async_eval(decisions[event["type"]], ctx(event, ticket))
        return _zen_ids(loop.run_until_complete(coro))

    def expression_dict(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        return _zen_ids(expr_decisions[event["type"]].evaluate(ctx(event, ticket)))

    return {
        "columns: create_decision + evaluate(dict)": decision_dict,
        "columns: create_decision + evaluate(JSON bytes)": decision_json,
        "columns: engine.evaluate with loader": engine_loader,
        "columns: create_decision + async_evaluate": decision_async,
        "columns: create_decision + evaluate, trace on": decision_trace,
        "one expression column: create_decision + evaluate(dict)": expression_dict,
    }


# ------------------------------------------------------------------------------- rule-engine


def _re_path(f: str, safe: bool) -> str:
    if f == "contact.groups":
        return "ticket['contact']['groups']"
    if f.startswith("message."):
        return f"message&['{f.split('.', 1)[1]}']" if safe else f"message['{f.split('.', 1)[1]}']"
    if f.startswith("custom."):
        key = f.split(".", 1)[1]
        return f"ticket['custom']&['{key}']" if safe else f"ticket['custom']['{key}']"
    return f"ticket['{f}']"


def _re_str(s: str) -> str:
    # rule-engine string literals process backslash escapes ('\b' would be a backspace).
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def re_condition(c: dict[str, Any]) -> str:
    f, op, v = c["field"], c["op"], c.get("value")
    x = _re_path(f, safe=False)
    guard = f"{_re_path(f, safe=True)} != null and " if f.startswith(_NULLABLE_PREFIXES) else ""
    if op == "is" and isinstance(v, str):
        expr = f"{x}.as_lower == {_re_str(v.lower())}"
    elif op == "in":
        expr = f"{x}.as_lower in [{', '.join(_re_str(s.lower()) for s in v)}]"
    elif op == "contains":
        expr = f"{_re_str(v.lower())} in {x}.as_lower"
    elif op == "matches":
        expr = f"{x} =~~ {_re_str('(?i)' + v)}"
    elif op == "includes":
        expr = f"{_re_str(v.lower())} in [e.as_lower for e in {x}]"
    elif op == "gt" and isinstance(v, (int, float)):
        expr = f"{x} > {v}"
    else:
        raise ValueError(f"no rule-engine translation for {f} {op} {v!r}")
    return f"({guard}{expr})"


def rule_engine_matcher(rules: list[dict[str, Any]], event_types: tuple[str, ...]) -> Matcher:
    """One compiled `rule_engine.Rule` per rule, grouped by trigger; `.matches` per rule."""
    context = rule_engine.Context(default_value=None)
    compiled = [(r["id"], rule_engine.Rule(
        " and ".join(re_condition(c) for c in r["conditions"]["all"]), context=context))
        for r in rules]
    by_type = {t: [(rid, rule.matches) for (rid, rule), r in zip(compiled, rules)
                   if t in r["triggers"]] for t in event_types}

    def match(event: dict[str, Any], ticket: dict[str, Any]) -> list[str]:
        data = {"ticket": ticket, "message": event.get("message")}
        out = []
        for rid, matches in by_type[event["type"]]:
            try:
                if matches(data):
                    out.append(rid)
            except rule_engine.EngineError:
                pass  # an evaluation error holds nothing, as in deskflow
        return out

    return match
