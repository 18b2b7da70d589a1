"""What a trigger bucket works out once, so that an event's cost follows the work it does.

Two things, both built when the rules are compiled:

1. **Dependencies.** Each rule's conditions read a set of keys: `(field, None)` for a field, or
   `(field, folded item)` for a `tags`/`contact.groups` leaf that only asks about named items
   (`includes`, `excludes`, `includes_any`, `includes_all`). Each rule's actions write keys the
   same way (`add_tags [x]` writes `("tags", None)` and `("tags", "x")`; `set priority` writes
   `("priority", None)`; a script or HTTP request may write anything: `*`). When a rule fires, only
   the later rules that read a key it wrote can change their answer: they are checked again on the
   ticket as it now is, and every other rule keeps the answer it had on the event's ticket. That
   is exactly the result of checking every rule in order, at the cost of the rules a fire concerns.

2. **Generated predicates.** Each rule's condition tree becomes one Python function over a vector
   of the bucket's field values (read and case-folded once per event), instead of a tree of
   closures called per leaf. Rule text is tenant-controlled, so **no tenant string ever enters the
   generated source**: a leaf is written as a fixed template per op over `v[<slot number>]` and
   `K[<constant number>]`; the rule's values (folded strings, frozensets, numbers, compiled regex
   searches) live in the tuple `K`, and every op without a template (time, business time, ordinal,
   `changed*`, case-sensitive, `is_empty`, patterns run under a timeout) calls the leaf's own
   predicate as `P[<n>](s)`. The source is compiled with no builtins but the three it names.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .actions import Action
from .conditions import Group, Leaf, Node
from .ops import State
from .ordinal import is_ordinal

Key = tuple[str, str | None]
ANY: Key = ("*", None)
_ITEM_FIELDS = frozenset({"tags", "contact.groups"})
_ITEM_OPS = frozenset({"includes", "excludes", "includes_any", "includes_all"})
_NUMBER_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
FOLDED, RAW = 0, 1


def _strs(v: Any) -> list[str] | None:
    values = v if type(v) is list else [v]
    return [x for x in values] if values and all(isinstance(x, str) for x in values) else None


def read_keys(node: Node | None) -> set[Key]:
    """The keys whose change can change this condition tree's answer."""
    out: set[Key] = set()
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if isinstance(n, Group):
            stack.extend(n.children)
            continue
        name = n.field.name
        items = _strs(n.value) if name in _ITEM_FIELDS and n.op in _ITEM_OPS else None
        if items is None:
            out.add((name, None))
        else:
            out.update((name, x.casefold()) for x in items)
    return out


def write_keys(actions: list[Action]) -> set[Key]:
    """The keys a rule's actions may change (a superset: a no-op write still counts)."""
    out: set[Key] = set()
    for a in actions:
        spec = a.spec
        if a.type == "set":
            out.add((spec["field"], None))
        elif a.type == "close":
            out.add(("status", None))
        elif a.type in ("add_tags", "remove_tags"):
            out.add(("tags", None))
            out.update(("tags", t.casefold()) for t in spec["tags"])
        elif a.type in ("add_to_group", "remove_from_group"):
            out.add(("contact.groups", None))
            out.add(("contact.groups", spec["group"].casefold()))
        elif a.type in ("run_script", "http_request"):
            out.add(ANY)
    return out


def dependents(reads: list[set[Key]]) -> dict[Key, tuple[int, ...]]:
    """key -> the positions (ascending) of the rules reading it; ANY maps to every position."""
    table: dict[Key, list[int]] = {}
    for pos, keys in enumerate(reads):
        for k in keys:
            table.setdefault(k, []).append(pos)
    out = {k: tuple(v) for k, v in table.items()}
    out[ANY] = tuple(range(len(reads)))
    return out


# ------------------------------------------------------------------------------ code generation

class _Source:
    """Collects one bucket's slots, constants and fallback predicates while writing expressions."""

    def __init__(self) -> None:
        self.slots: dict[tuple[str, int], int] = {}
        self.fields: list[tuple[Any, int]] = []   # (Field, FOLDED | RAW) per slot
        self.consts: list[Any] = []
        self.preds: list[Callable[[State], bool]] = []

    def slot(self, leaf: Leaf, kind: int) -> str:
        key = (leaf.field.name, kind)
        if key not in self.slots:
            self.slots[key] = len(self.fields)
            self.fields.append((leaf.field, kind))
        return f"v[{self.slots[key]}]"

    def const(self, value: Any) -> str:
        self.consts.append(value)
        return f"K[{len(self.consts) - 1}]"

    def fallback(self, leaf: Leaf) -> str:
        self.preds.append(leaf.pred)
        return f"P[{len(self.preds) - 1}](s)"

    def expr(self, node: Node) -> str:
        if isinstance(node, Group):
            if not node.children:
                return "True" if node.kind == "all" else "False"
            joiner = " and " if node.kind == "all" else " or "
            kids = sorted(node.children, key=lambda c: c.cost)  # cheapest first, as Group.pred
            return "(" + joiner.join(self.expr(c) for c in kids) + ")"
        return self.leaf(node)

    def leaf(self, n: Leaf) -> str:  # noqa: C901 -- one template per op
        op, v, f = n.op, n.value, n.field
        if n.case_sensitive or is_ordinal(f, op):
            return self.fallback(n)
        if op in ("is", "is_not") and isinstance(v, str):
            return f"({self.slot(n, FOLDED)} {'==' if op == 'is' else '!='} {self.const(v.casefold())})"
        strs = _strs(v)
        if op in ("in", "not_in") and type(v) is list and strs is not None:
            word = "in" if op == "in" else "not in"
            return f"({self.slot(n, FOLDED)} {word} {self.const(frozenset(x.casefold() for x in strs))})"
        if op in ("contains", "not_contains", "starts_with", "ends_with") and isinstance(v, str):
            x, c = self.slot(n, FOLDED), self.const(v.casefold())
            test = {"contains": f"{c} in {x}", "not_contains": f"{c} in {x}",
                    "starts_with": f"{x}.startswith({c})", "ends_with": f"{x}.endswith({c})"}[op]
            expr = f"(T({x}) is S and {test})"
            return f"(not {expr})" if op == "not_contains" else expr
        if op in _ITEM_OPS and strs is not None and (op != "includes" or isinstance(v, str)) and (
                op not in ("includes", "excludes") or isinstance(v, str)):
            x = self.slot(n, FOLDED)
            if op in ("includes", "excludes"):
                expr = f"(T({x}) is F and {self.const(v.casefold())} in {x})"
                return expr if op == "includes" else f"(not {expr})"
            c = self.const(frozenset(s.casefold() for s in strs))
            return (f"(T({x}) is F and not {c}.isdisjoint({x}))" if op == "includes_any"
                    else f"(T({x}) is F and {c} <= {x})")
        if op in _NUMBER_OPS and type(v) in (int, float):
            x = self.slot(n, RAW)
            return f"(T({x}) in N and {x} {_NUMBER_OPS[op]} {self.const(v)})"
        # `matches` always goes through its predicate: rules/regexes.py bounds every match and
        # charges it to the pass's regex budget, which inline code would bypass.
        return self.fallback(n)


Compiled = Callable[[list[Any], State], bool]


def generate(trees: list[Node | None]) -> tuple[list[Compiled], list[tuple[Any, int]]]:
    """One function `(v, s) -> bool` per tree, and the (field, kind) of each slot of `v`."""
    src = _Source()
    bodies = [src.expr(t) if t is not None else "True" for t in trees]
    lines = ["def _make(K, P):"]
    for i, body in enumerate(bodies):
        lines.append(f"    def r{i}(v, s):\n        return {body}")
    lines.append("    return [" + ", ".join(f"r{i}" for i in range(len(bodies))) + "]")
    code = compile("\n".join(lines), "<rules bucket>", "exec")
    namespace: dict[str, Any] = {"__builtins__": {}, "T": type, "S": str, "F": frozenset,
                                 "N": (int, float)}
    exec(code, namespace)  # noqa: S102 -- source is our templates; tenant values are in K only
    funcs: list[Compiled] = namespace["_make"](tuple(src.consts), tuple(src.preds))
    return funcs, src.fields


def read_slots(fields: list[tuple[Any, int]], s: State) -> list[Any]:
    """The slot vector of a state: each field folded (str, frozenset or None) or raw."""
    folded, read = s.folded, s.read
    return [folded(f) if kind == FOLDED else read(f) for f, kind in fields]
