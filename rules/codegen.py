"""Generated predicates: a trigger bucket's conditions compiled to Python source, once.

A bucket's rules become one `match(v, s)` function over a vector `v` of the bucket's field values
(each read and case-folded once per event) that returns the positions of the rules holding, in
order. The value index is compiled in with it: the rules filed under a value (rules/ruleset.py,
_Bucket) are checked inline in one function per value, reached through a dict from the folded
value the ticket has; the unfiled rules are checked inline in `match` itself. No per-rule call,
no closure per leaf.

Rule text is tenant-controlled, so **no tenant string ever enters the generated source**: a leaf
is written as a fixed template per op over `v[<slot number>]` (or its local copy `v<n>`, see
`_slot_locals`) and `k<constant number>`, and rule positions are the only other numbers. The
rule's values (folded strings, frozensets, numbers) are the generated module's globals `k<n>`,
one per distinct value (a global load is one instruction where a tuple's item was three); the
dispatch dicts, keyed by tenant values, are data too. Every op without a template (time,
business time, ordinal, `changed*`, case-sensitive, `is_empty`, `matches`) calls the leaf's own
predicate as `p<n>(s)`. The source is compiled with no builtins but the names it uses.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from types import CodeType
from typing import Any, NamedTuple

from . import scans
from .conditions import Group, Leaf, Node
from .ops import State
from .ordinal import is_ordinal
from .slots import FOLDED, GLOBALS, ITEMS, NUMBER, TEXT, reader

SCALAR, LIST = 0, 1   # as rules/ruleset.py's index modes
_ITEM_OPS = frozenset({"includes", "excludes", "includes_any", "includes_all"})
_NUMBER_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _strs(v: Any) -> list[str] | None:
    values = v if type(v) is list else [v]
    return list(values) if values and all(isinstance(x, str) for x in values) else None


class _Source:
    """Collects one bucket's slots, constants and fallback predicates while writing expressions."""

    def __init__(self) -> None:
        self.slots: dict[tuple[str, int], int] = {}
        self.fields: list[tuple[Any, int]] = []   # (Field, kind) per slot
        self.consts: list[Any] = []
        self.numbers: dict[tuple[type, Any], int] = {}   # (type, value) -> its number in consts
        self.preds: list[Callable[[State], bool]] = []

    def slot(self, leaf: Leaf, kind: int) -> str:
        return self.slot_of(leaf.field, kind)

    def slot_of(self, field: Any, kind: int) -> str:
        key = (field.name, kind)
        if key not in self.slots:
            self.slots[key] = len(self.fields)
            self.fields.append((field, kind))
        return f"v[{self.slots[key]}]"

    def const(self, value: Any) -> str:
        # (a global of the generated module, one per distinct value: one LOAD_GLOBAL where
        # `K[n]` was a load, a constant and a subscript)
        key = (type(value), value)
        n = self.numbers.get(key)
        if n is None:
            n = self.numbers[key] = len(self.consts)
            self.consts.append(value)
        return f"k{n}"

    def fallback(self, leaf: Leaf) -> str:
        self.preds.append(leaf.pred)
        return f"p{len(self.preds) - 1}(s)"

    def expr(self, node: Node) -> str:
        if isinstance(node, Group):
            if not node.children:
                return "True" if node.kind == "all" else "False"
            joiner = " and " if node.kind == "all" else " or "
            kids = sorted(node.children, key=lambda c: c.cost)  # cheapest first, as Group.pred
            return "(" + joiner.join(self.expr(c) for c in kids) + ")"
        return self.leaf(node)

    def steps(self, node: Node | None, out: list[Node]) -> list[str]:
        """The tests of `conditions.failure`'s walk, in written order; their nodes go to out."""
        nodes = step_nodes(node)
        out.extend(nodes)
        return [self.expr(n) for n in nodes]

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
            x, c = self.slot(n, TEXT), self.const(v.casefold())   # (a non-empty value: never in "")
            return {"contains": f"({c} in {x})", "not_contains": f"({c} not in {x})",
                    "starts_with": f"{x}.startswith({c})", "ends_with": f"{x}.endswith({c})"}[op]
        if op in _ITEM_OPS and strs is not None and (op != "includes" or isinstance(v, str)) and (
                op not in ("includes", "excludes") or isinstance(v, str)):
            x = self.slot(n, ITEMS)
            if op in ("includes", "excludes"):
                return f"({self.const(v.casefold())} {'in' if op == 'includes' else 'not in'} {x})"
            c = self.const(frozenset(s.casefold() for s in strs))   # (non-empty: never <= the empty set)
            return f"(not {c}.isdisjoint({x}))" if op == "includes_any" else f"({c} <= {x})"
        if op in _NUMBER_OPS and type(v) in (int, float):
            x = self.slot(n, NUMBER)   # (NaN when not a number: every comparison is false)
            return f"({x} {_NUMBER_OPS[op]} {self.const(v)})"
        # `matches` always goes through its predicate: rules/regexes.py bounds every match and
        # charges it to the pass's regex budget, which inline code would bypass.
        return self.fallback(n)



Matcher = Callable[[Any, State], list[int]]
# rule position -> the keys it is filed under, each (field, mode, folded values): the rule is
# checked when, for every key, the ticket's folded field value is (SCALAR) or includes (LIST) one
# of the values; () for a rule checked on every event
Filing = Sequence[tuple[Any, int, Sequence[str]]]


class _Level:
    """Rules filed under a path of keys: those checked here, and the tables below (by field and
    mode, then folded value) of the rules that also need a second key."""

    def __init__(self) -> None:
        self.rules: list[int] = []
        self.tables: dict[tuple[str, int], tuple[Any, dict[str, _Level]]] = {}

    def child(self, field: Any, mode: int, value: str) -> _Level:
        _, table = self.tables.setdefault((field.name, mode), (field, {}))
        return table.setdefault(value, _Level())


def _emit(level: _Level, bodies: list[str], weights: list[int], src: _Source,
          dispatch: list[dict[str, int]], functions: list[list[str]],
          pad: str = "        ") -> list[str]:
    """Lines checking a level's rules inline and dispatching to the levels below it; each level
    below becomes a function g<n> (its number in `functions`)."""
    out: list[str] = []
    ways = scans.give_way_after(level.rules, weights)
    for p in level.rules:
        out.append(f"{pad}if {bodies[p]}: h.append({p})")
        if p in ways:
            out.append(f"{pad}Y()")
    for (name, mode), (field, table) in level.tables.items():
        names: dict[str, int] = {}
        for value, sub in table.items():
            functions.append([])
            n = len(functions) - 1
            functions[n] = _emit(sub, bodies, weights, src, dispatch, functions) or ["        pass"]
            names[value] = n  # (a level below another is emitted first: its number is fixed)
        d = len(dispatch)
        dispatch.append(names)
        if mode == SCALAR:   # (a FOLDED value that is not a str, a frozenset or None, is no key)
            out.append(f"{pad}g = D[{d}].get({src.slot_of(field, FOLDED)})")
            out.append(f"{pad}if g is not None: g(v, s, h)")
        else:
            out += [f"{pad}d = D[{d}]", f"{pad}for item in {src.slot_of(field, ITEMS)}:",
                    f"{pad}    g = d.get(item)", f"{pad}    if g is not None: g(v, s, h)"]
    return out


def compile_bucket(source: str) -> CodeType:
    """A bucket's generated source compiled."""
    return compile(source, "<rules bucket>", "exec")


class Generated(NamedTuple):
    """A bucket's generated code. `explainers[i](v, s)` is the number of rule i's first failing
    step (`steps[i][n]`: a leaf, or an `any` group that fails as a whole), in written order, the
    order `conditions.failure` reports; -1 when the rule holds. `read(ticket, event, vars)` is
    the whole slot vector `v` of a state, read eagerly (rules/slots.py `reader`); None when the bucket reads
    too many fields for that to pay (the lazy `Slots` then)."""

    match: Matcher
    slots: list[tuple[Any, int]]
    explainers: list[Callable[[Any, State], int]]
    steps: list[list[Node]]
    read: Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], list[Any]] | None = None
    # `first(v, s, h)`: for the run record (rules/record.py), which needs every rule's answer on
    # every event, one int per rule in one call (and the positions of the rules that hold, in
    # order, appended to h: a pass building the record matches with it, rules/passes.py): `code % FIRST_BASE` is one more than the
    # rule's explainer answer (0: it holds), and for the j-th `any` step before the failing one
    # (every one when it holds), `code // M_j % (its children + 1)` is one more than the number
    # of the first child (written order) that holds, M_j being `radix[pos][j]`'s (step, M_j).
    # Rules in `deep` (more than FIRST_INLINE steps) carry no branches: `code - 1` is all.
    first: Callable[[Any, State, list[int]], list[int]] | None = None
    # per rule, its `any` steps: (step number, branch(v, s) -> the number of the first child in
    # written order that holds, or -1), for a rule asked on another ticket version
    branches: list[tuple[tuple[int, Callable[[Any, State], int]], ...]] | None = None
    radix: list[list[tuple[int, int]]] | None = None
    deep: frozenset[int] = frozenset()
    # the generated module's globals: its functions reach each other through it, so it and they
    # are a reference cycle that only the collector frees; the bucket that owns this code clears
    # it when it is freed (rules/ruleset.py _Bucket), and the functions go with their last user
    namespace: dict[str, Any] | None = None


# a rule's test (its conditions' expression) longer than this, checked under more than one value
# of the value index, is a function of its own that each value's function calls (generate)
SHARED_BODY = 120

# a rule with more steps than this is asked through its explainer in `first`, keeping the
# generated conditional expression shallow
FIRST_INLINE = 12
FIRST_BASE = 16   # > FIRST_INLINE + 1


def step_nodes(node: Node | None) -> list[Node]:
    """The steps of `conditions.failure`'s walk, in written order: the conditions with every
    `all` group flattened. A rule's explainer answer and `first` code number these."""
    if node is None:
        return []
    if isinstance(node, Group) and node.kind == "all":
        return [n for child in node.children for n in step_nodes(child)]
    return [node]


def radix_of(steps: Sequence[Node]) -> list[tuple[int, int]]:
    """(step number, M) of each `any` step with children of a rule inlined in `first` (see
    Generated.first): M is FIRST_BASE times (children + 1) of each such step before it. [] for a
    rule of no steps or more than FIRST_INLINE (its code is its explainer answer + 1)."""
    if not steps or len(steps) > FIRST_INLINE:
        return []
    out: list[tuple[int, int]] = []
    m = FIRST_BASE
    for k, node in enumerate(steps):
        if isinstance(node, Group) and node.children:
            out.append((k, m))
            m *= len(node.children) + 1
    return out


def generate(trees: Sequence[Node | None], filings: Sequence[Filing],
             codes: Callable[[str], CodeType] | None = None) -> Generated:
    """The bucket's `match(v, s)`, the (field, kind) of each slot of `v`, the
    explainers and what the run record asks of every rule (`first`, `branches`).

    `codes(source)`: the source compiled, perhaps kept from an earlier set (rules/compile_cache.py).
    The source holds no tenant value, only the rules' shapes, slot, constant and rule numbers: a
    rule renamed, or a value changed, leaves it as it was, and CPython's compile of it is most of a
    bucket's build (2 s of 2.4 for 1,000 rules of 56 conditions)."""
    src = _Source()
    bodies = [src.expr(t) if t is not None else "True" for t in trees]
    weights = [scans.text_scans(t) for t in trees]
    root = _Level()
    dup = False
    lines = ["def _make(D):"]
    for pos, filing in enumerate(filings):
        levels = [root]
        for field, mode, values in filing:   # key 1, then key 2 within it; any one value will do
            dup = dup or (mode == LIST and len(set(values)) > 1)
            levels = [lv.child(field, mode, v) for lv in levels for v in dict.fromkeys(values)]
        for level in levels:
            level.rules.append(pos)
        if len(levels) > 1 and len(bodies[pos]) > SHARED_BODY:
            # checked in several values' functions: its test is written once, as a function, and
            # called from each (the source stays about as long as the rules, not times their values)
            lines += [f"    def b{pos}(v, s):", f"        return {bodies[pos]}"]
            bodies[pos] = f"b{pos}(v, s)"
    dispatch: list[dict[str, int]] = []
    functions: list[list[str]] = []
    body = _emit(root, bodies, weights, src, dispatch, functions)
    for n, f in enumerate(functions):
        lines.append(f"    def g{n}(v, s, h):")
        lines += f
    lines.append("    def match(v, s):")
    lines.append("        h = []")
    lines += body
    if functions:
        lines.append("        h = sorted(set(h))" if dup else "        h.sort()")
    lines.append("        return h")
    groups = functions
    # explain: per rule, the number of the first failing step in written order, or -1
    failing: list[list[Node]] = []
    tests: list[list[str]] = []
    for pos, tree in enumerate(trees):
        steps: list[Node] = []
        lines.append(f"    def x{pos}(v, s):")
        tests.append(src.steps(tree, steps))
        lines += [f"        if not {test}: return {k}" for k, test in enumerate(tests[-1])]
        lines.append("        return -1")
        failing.append(steps)
    # the run record's: every rule's explainer answer and held `any` branches in one call (see
    # Generated.first; a rule of more than FIRST_INLINE steps: a call to its explainer)
    lines.append("    def first(v, s, h):")
    lines.append("        a = h.append")
    lines.append("        r = [")
    ways = scans.give_way_after(range(len(trees) - 1), weights)   # (not after the last)
    deep: list[int] = []
    radix: list[list[tuple[int, int]]] = []
    for pos, (rule_tests, steps_) in enumerate(zip(tests, failing, strict=True)):
        mine = radix_of(steps_)
        holds = f"(a({pos}) or 0)"   # (0: the code of a rule that holds, appended to h)
        if not rule_tests:
            expr = holds
        elif len(rule_tests) > FIRST_INLINE:
            expr = f"(x{pos}(v, s) + 1 or {holds})"
            deep.append(pos)
        else:
            expr = holds
            scale = dict(mine)
            parts = []
            for k, (test, node) in enumerate(zip(rule_tests, steps_, strict=True)):
                if k in scale:
                    assert isinstance(node, Group)
                    find = " else ".join(f"{b} if {src.expr(c)}" for b, c in enumerate(node.children))
                    parts.append((k, f"{scale[k]} * (b + 1) + ", f"(b := ({find} else -1)) < 0"))
                else:
                    parts.append((k, "", f"not {test}"))
            for k, scaled, cond in reversed(parts):
                expr = f"({k + 1} if {cond} else {scaled}{expr})"
        radix.append(mine)
        lines.append(f"            {expr},")
        if pos in ways:   # the list goes on after Y()
            lines += ["        ]", "        Y()", "        r += ["]
    lines += ["        ]", "        return r"]
    branch_of: list[list[tuple[int, str]]] = []
    n_branch = 0
    for steps_ in failing:
        finders: list[tuple[int, str]] = []
        for k, node in enumerate(steps_):
            if isinstance(node, Group) and node.children:
                lines.append(f"    def y{n_branch}(v, s):")
                lines += [f"        if {src.expr(c)}: return {b}" for b, c in enumerate(node.children)]
                lines.append("        return -1")
                finders.append((k, f"y{n_branch}"))
                n_branch += 1
        branch_of.append(finders)
    lines.append("    return match, [" + ", ".join(f"g{n}" for n in range(len(groups))) + "], ["
                 + ", ".join(f"x{p}" for p in range(len(trees))) + "], first, ["
                 + ", ".join("(" + "".join(f"({k}, {y}), " for k, y in found) + ")" for found in branch_of)
                 + "]")
    read = reader(src.fields)
    if read is not None:
        lines = _slot_locals(lines)
    source = _module_level(lines)
    code = codes(source) if codes is not None else compile_bucket(source)
    tables_out: list[dict[str, Callable[..., None]]] = []   # filled in once the groups exist
    namespace: dict[str, Any] = {"__builtins__": {"sorted": sorted, "set": set}, **GLOBALS,
                                 "D": tables_out}
    namespace.update((f"k{n}", c) for n, c in enumerate(src.consts))
    namespace.update((f"p{n}", p) for n, p in enumerate(src.preds))
    exec(code, namespace)  # noqa: S102 -- source is our templates; tenant values are data only
    match, made, explainers, first, branches = namespace["_made"]
    tables_out.extend({value: made[n] for value, n in table.items()} for table in dispatch)
    return Generated(match, src.fields, explainers, failing, read, first, branches, radix,
                     frozenset(deep), namespace)


def _module_level(lines: list[str]) -> str:
    """The source written as `def _make(D):` and its nested functions (the shape _slot_locals
    reads), as module-level functions over a global `D`, the last line `_made = (...)`. Why: CPython
    analyses each nested function's scope with a copy of its enclosing function's names, so a
    bucket of n functions nested in one compiled in O(n^2): 1,000 rules filed under 64 values each
    (64,000 functions, 5.3 MB) took 192 s of compile, which past the compile process's CPU limit
    fell back to the worker (tests/server/test_redteam17b.py). At module level they are globals,
    each function analysed on its own."""
    assert lines[0] == "def _make(D):" and lines[-1].startswith("    return ")
    body = [line[4:] for line in lines[1:]]
    body[-1] = "_made = (" + body[-1][len("return "):] + ")"
    return "\n".join(body) + "\n"


_SLOT = re.compile(r"\bv\[(\d+)\]")
# the functions that read the event ticket's eager slot vector (a list: `v[n]` costs a load, a
# constant and a subscript) and the least uses of a slot for which one of them copies it to a
# local first (`vN = v[N]`, then each use is one load); the explainers and branch finders, which
# mostly stop at their first step and are also handed the lazy `Slots`, keep `v[n]`
_LOCAL_AT = {"g": 3, "match": 2, "first": 2}


def _slot_locals(lines: list[str]) -> list[str]:
    """`lines` with each slot a bucket function reads often enough copied to a local at its
    start (only for an eager bucket: on the lazy `Slots` the copy would read fields the
    function may never need). The source holds no tenant text (see the module's doc), so the
    pattern only ever meets our own templates."""
    out: list[str] = []
    k = 0
    while k < len(lines):
        line = lines[k]
        end = k + 1
        while end < len(lines) and not lines[end].startswith("    def ") and lines[end].startswith("     "):
            end += 1
        name = line[8:line.index("(")] if line.startswith("    def ") else ""
        least = _LOCAL_AT.get(name if name in _LOCAL_AT else name[:1] if name[1:].isdigit() else "")
        if least is None:
            out += lines[k:end]
            k = end
            continue
        body = lines[k + 1:end]
        uses: dict[str, int] = {}
        for b in body:
            for m in _SLOT.finditer(b):
                uses[m.group(1)] = uses.get(m.group(1), 0) + 1
        local = {n for n, c in uses.items() if c >= least}
        out.append(line)
        out += [f"        v{n} = v[{n}]" for n in sorted(local, key=int)]
        def to_local(m: re.Match[str], local: set[str] = local) -> str:
            return f"v{m.group(1)}" if m.group(1) in local else m.group(0)
        out += [_SLOT.sub(to_local, b) for b in body]
        k = end
    return out
