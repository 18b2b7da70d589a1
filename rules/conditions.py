"""The condition tree: parsed and checked once, turned into one predicate closure per node.

The fast path (`Node.pred`) only answers yes or no. Explaining is a separate, slower walk over the
same nodes (`failure`, `trace`) done only when someone reads the explanation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fields import FIELD_NAMES_HELP, Field, lookup_field
from .jsondata import json_copy
from .ops import OPS, OPS_FOR_TYPE, Predicate, State, build_predicate, check_value

Problem = tuple[str, str]
_LEAF_KEYS = frozenset({"field", "op", "value", "case_sensitive"})
_CHANGE_OPS = frozenset({"changed", "changed_from", "changed_to"})


# Rough relative cost of checking one leaf, by op: the fast predicate of a group checks its
# children cheapest first (a regex last). and/or over side-effect-free predicates give the same
# answer in any order; `failure` and `trace` still walk the children in their written order.
_COST = {"matches": 20, "older_than": 4, "newer_than": 4, "changed": 3, "changed_from": 3, "changed_to": 3,
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

    @property
    def cost(self) -> int:
        return _COST.get(self.op, 1)

    def seen(self, s: State) -> Any:
        if self.op in _CHANGE_OPS:
            return [s.read_previous(self.field), s.read(self.field)]
        return s.read(self.field)

    def failure(self, s: State) -> dict[str, Any]:
        return {"path": self.path, "field": self.field.name, "op": self.op, "value": json_copy(self.value),
                "seen": json_copy(self.seen(s))}


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


def parse(raw: Any, problems: list[Problem], path: str = "conditions", depth: int = 0) -> Node | None:
    """Check a condition tree and build its predicates; problems are appended, None on any."""
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
        children = [parse(c, problems, f"{path}.{kind}[{i}]", depth + 1) for i, c in enumerate(items)]
        if len(problems) > before:
            return None
        nodes = [c for c in children if c is not None]
        preds = [c.pred for c in sorted(nodes, key=lambda c: c.cost)]  # stable: ties keep order
        return Group(path, kind, nodes, _all(preds) if kind == "all" else _any(preds))
    return _leaf(raw, problems, path)


def _leaf(raw: dict[str, Any], problems: list[Problem], path: str) -> Leaf | None:
    extra = sorted(str(k) for k in raw if k not in _LEAF_KEYS)
    if extra:
        problems.append((f"{path}.{extra[0]}", "unknown key in a condition (leaf keys: field, op, value, case_sensitive)"))
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
    if op not in OPS_FOR_TYPE[field.type]:
        problems.append((f"{path}.op", f"'{op}' does not apply to {field.name} (a {field.type} field); "
                                       f"use one of {', '.join(sorted(OPS_FOR_TYPE[field.type]))}"))
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
    why = check_value(op, field.type, has_value, value)
    if why:
        problems.append((f"{path}.value", why))
        return None
    pred = build_predicate(field, op, value, cs, field.type == "list")
    return Leaf(path, field, op, value, cs, pred)


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
        return [{"path": node.path, "field": node.field.name, "op": node.op, "value": json_copy(node.value),
                 "held": bool(node.pred(s)), "seen": json_copy(node.seen(s))}]
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
