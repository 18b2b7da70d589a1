"""The condition tree: parsed and checked once, turned into one predicate closure per node.

The fast path (`Node.pred`) only answers yes or no. Explaining is a separate, slower walk over the
same nodes (`failure`, `trace`) done only when someone reads the explanation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .actors import ACTORS
from .business import BUSINESS_OPS, resolve_calendar
from .calendar import Calendar
from .fields import FIELD_NAMES_HELP, Field, lookup_field
from .jsondata import json_copy, seen_copy
from .ops import EXTRA_OPS_FOR_FIELD, OPS, OPS_FOR_TYPE, Predicate, State, build_predicate, check_value
from .ordinal import check_ordinal, is_ordinal
from .regexes import cut_short_note

Problem = tuple[str, str]
_LEAF_KEYS = frozenset({"field", "op", "value", "case_sensitive", "calendar"})
_CHANGE_OPS = frozenset({"changed", "changed_from", "changed_to"})
_ACTOR_VALUE_OPS = frozenset({"is", "is_not", "in", "not_in"})


# Rough relative cost of checking one leaf, by op: the fast predicate of a group checks its
# children cheapest first (a regex last). and/or over side-effect-free predicates give the same
# answer in any order; `failure` and `trace` still walk the children in their written order.
_COST = {"matches": 20, "older_than_business": 10, "newer_than_business": 10, "older_than": 4, "newer_than": 4, "changed": 3, "changed_from": 3, "changed_to": 3,
         "contains": 2, "not_contains": 2, "starts_with": 2, "ends_with": 2, "includes_any": 2,
         "includes_all": 2}


@dataclass(eq=False)
class Leaf:
    path: str
    field: Field
    op: str
    value: Any  # None when the op takes none
    case_sensitive: bool
    pred: Predicate
    calendar: Calendar | None = None  # business-time ops only
    calendar_spec: Any = None          # as written: a name or a business_hours object

    @property
    def cost(self) -> int:
        return _COST.get(self.op, 1)

    def describe(self) -> dict[str, Any]:
        """The leaf as explain shows it: path, field, op, value (and calendar where it has one)."""
        out = {"path": self.path, "field": self.field.name, "op": self.op, "value": json_copy(self.value)}
        if self.op in BUSINESS_OPS:
            out["calendar"] = json_copy(self.calendar_spec)
        return out

    def seen(self, s: State) -> Any:
        if self.op in _CHANGE_OPS:
            return [s.read_previous(self.field), s.read(self.field)]
        return s.read(self.field)

    def failure(self, s: State) -> dict[str, Any]:
        return {**self.describe(), "seen": seen_copy(self.seen(s)), **self.note(s)}

    def note(self, s: State) -> dict[str, str]:
        """{"note": why} when a regex was cut short by its time bound in this pass (it then does
        not hold, and the explain must not read as if the text simply did not match)."""
        if self.op == "matches" and self.value in s.budget.cut:
            return {"note": cut_short_note(self.value)}
        return {}


@dataclass(eq=False)
class Group:
    path: str
    kind: str  # "all" | "any"
    children: list[Node]
    pred: Predicate

    @property
    def cost(self) -> int:
        return sum(c.cost for c in self.children) or 1


Node = Leaf | Group


def _all(preds: list[Predicate]) -> Predicate:
    if not preds:
        return lambda s: True
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda s: a(s) and b(s)

    def pred(s: State) -> bool:
        for p in preds:
            if not p(s):
                return False
        return True
    return pred


def _any(preds: list[Predicate]) -> Predicate:
    if not preds:
        return lambda s: False
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda s: a(s) or b(s)

    def pred(s: State) -> bool:
        for p in preds:
            if p(s):
                return True
        return False
    return pred


def parse(raw: Any, problems: list[Problem], path: str = "conditions", depth: int = 0,
          calendars: dict[str, Calendar] | None = None) -> Node | None:
    """Check a condition tree and build its predicates; problems are appended, None on any.

    `calendars` are the named calendars `older_than_business`/`newer_than_business` may name."""
    if depth > 32:
        problems.append((path, "conditions nest deeper than 32 levels"))
        return None
    if type(raw) is not dict:
        problems.append((path, "a condition must be an object: a leaf {field, op, value} or {all: [...]} / {any: [...]}"))
        return None
    groups = [k for k in ("all", "any") if k in raw]
    if groups:
        if len(groups) == 2:
            problems.append((path, "a node has exactly one of 'all' or 'any', not both"))
            return None
        kind = groups[0]
        extra = sorted(k for k in raw if k != kind)
        if extra:
            problems.append((f"{path}.{extra[0]}", f"unexpected key beside '{kind}'"))
            return None
        items = raw[kind]
        if type(items) is not list:
            problems.append((f"{path}.{kind}", "must be a list of conditions"))
            return None
        before = len(problems)
        children = [parse(c, problems, f"{path}.{kind}[{i}]", depth + 1, calendars)
                    for i, c in enumerate(items)]
        if len(problems) > before:
            return None
        nodes = [c for c in children if c is not None]
        preds = [c.pred for c in sorted(nodes, key=lambda c: c.cost)]  # stable: ties keep order
        return Group(path, kind, nodes, _all(preds) if kind == "all" else _any(preds))
    return _leaf(raw, problems, path, calendars)


def _leaf(raw: dict[str, Any], problems: list[Problem], path: str,
          calendars: dict[str, Calendar] | None) -> Leaf | None:
    extra = sorted(str(k) for k in raw if k not in _LEAF_KEYS)
    if extra:
        problems.append((f"{path}.{extra[0]}", "unknown key in a condition (leaf keys: field, op, value, "
                                               "case_sensitive, calendar)"))
        return None
    if "field" not in raw:
        problems.append((f"{path}.field", "a condition needs a 'field'"))
        return None
    field = lookup_field(raw["field"])
    if field is None:
        problems.append((f"{path}.field", f"unknown field {raw['field']!r}; fields: {FIELD_NAMES_HELP}"))
        return None
    op = raw.get("op")
    if "op" not in raw:
        problems.append((f"{path}.op", "a condition needs an 'op'"))
        return None
    if not isinstance(op, str) or op not in OPS:
        problems.append((f"{path}.op", f"unknown op {op!r}; ops: {', '.join(sorted(OPS))}"))
        return None
    extra_ops = EXTRA_OPS_FOR_FIELD.get(field.name, frozenset())
    if op not in OPS_FOR_TYPE[field.type] and op not in extra_ops:
        problems.append((f"{path}.op", f"'{op}' does not apply to {field.name} (a {field.type} field); "
                                       f"use one of {', '.join(sorted(OPS_FOR_TYPE[field.type] | extra_ops))}"))
        return None
    if op in _CHANGE_OPS and not field.changeable:
        problems.append((f"{path}.op", f"'{op}' compares ticket versions; {field.name} is not a ticket field"))
        return None
    cs = raw.get("case_sensitive", False)
    if type(cs) is not bool:
        problems.append((f"{path}.case_sensitive", "must be true or false"))
        return None
    has_value = "value" in raw
    value = raw.get("value")
    if is_ordinal(field, op):
        why = check_ordinal(field.name, value) if has_value else f"'{op}' needs a value"
    else:
        why = check_value(op, field.type, has_value, value)
    if not why and field.name == "event.actor" and op in _ACTOR_VALUE_OPS:
        values = value if type(value) is list else [value]
        if any(not isinstance(v, str) or v.casefold() not in ACTORS for v in values):
            why = ("every item " if type(value) is list else "") + f"must be one of {', '.join(ACTORS)}"
    if why:
        problems.append((f"{path}.value", why))
        return None
    calendar = None
    if op in BUSINESS_OPS:
        if "calendar" not in raw:
            problems.append((f"{path}.calendar", f"'{op}' needs a 'calendar': a calendar name or a "
                                                 "business_hours object"))
            return None
        calendar, _, problem = resolve_calendar(raw["calendar"], calendars, f"{path}.calendar")
        if problem is not None:
            problems.append(problem)
            return None
    elif "calendar" in raw:
        problems.append((f"{path}.calendar", "only older_than_business and newer_than_business take a calendar"))
        return None
    pred = build_predicate(field, op, value, cs, field.type == "list", calendar)
    return Leaf(path, field, op, value, cs, pred, calendar, raw.get("calendar"))


def failure(node: Node | None, s: State) -> dict[str, Any] | None:
    """The first condition that fails, in evaluation order; None when the tree holds."""
    if node is None:
        return None
    if isinstance(node, Leaf):
        return None if node.pred(s) else node.failure(s)
    if node.kind == "all":
        for child in node.children:
            f = failure(child, s)
            if f is not None:
                return f
        return None
    if node.pred(s):
        return None
    return {"path": node.path, "field": None, "op": "any", "value": None, "seen": None}


def trace(node: Node | None, s: State) -> list[dict[str, Any]]:
    """Every leaf, each evaluated on its own: {path, field, op, value, held, seen}."""
    if node is None:
        return []
    if isinstance(node, Leaf):
        held = bool(node.pred(s))
        return [{**node.describe(), "held": held, "seen": seen_copy(node.seen(s)), **node.note(s)}]
    out: list[dict[str, Any]] = []
    for child in node.children:
        out.extend(trace(child, s))
    return out


def leaves(node: Node | None) -> list[Leaf]:
    if node is None:
        return []
    if isinstance(node, Leaf):
        return [node]
    return [leaf for child in node.children for leaf in leaves(child)]


def conjuncts(node: Node | None) -> list[Leaf]:
    """Leaves that must all hold for the tree to hold (the top-level `all` chain)."""
    if node is None:
        return []
    if isinstance(node, Leaf):
        return [node]
    if node.kind == "all":
        return [leaf for child in node.children for leaf in conjuncts(child)]
    if len(node.children) == 1:
        return conjuncts(node.children[0])
    return []


__all__ = ["Leaf", "Group", "Node", "parse", "failure", "trace", "leaves", "conjuncts"]
