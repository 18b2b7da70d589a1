"""A rule's RecordPlan made from the rule as stored at a revision: what a reader of packed run
records (rules/packed.py `unpack`) needs to describe its entries, without compiling the rule."""
from __future__ import annotations

from typing import Any, cast

from .conditions import Group, Node
from .errors import RuleError
from .jsondata import dumps_any
from .ops import State
from .any_paths import Kids
from .record import RecordPlan


class _AnyCalendar(dict):  # type: ignore[type-arg]
    """Every calendar name resolves (to one placeholder): a rule read back for its plan may name
    a calendar that is gone since, and a step that names one is stored whole anyway."""

    placeholder: Any = None

    def get(self, key: Any, default: Any = None) -> Any:
        if _AnyCalendar.placeholder is None:
            from .calendar import Calendar
            _AnyCalendar.placeholder = Calendar.from_spec(
                {"timezone": "UTC", "week": {"mon": [["09:00", "17:00"]]}}, "calendar")
        return _AnyCalendar.placeholder

    def __bool__(self) -> bool:   # (empty, yet it knows every name: `calendars or {}` keeps it)
        return True


def rule_plan(raw: dict[str, Any]) -> RecordPlan:
    """The RecordPlan of one rule (as stored at a revision): what `unpack` needs to describe its
    entries, the same steps and codes as its bucket's plan had (rules/codegen.py step_nodes,
    radix_of). Raises RuleError for a rule that does not compile.

    Made from the rule's steps alone, without compiling the rest: a reader makes one per rule
    revision its runs name, and the whole rule cost 3-6 s (1,000 regexes of 1,000 characters,
    re's parser is Python; on the event loop, up to 32 a read) or 0.15-0.3 s (an `any` or `all`
    of 20,000 leaves) and kept 1.7-5 MB per plan (PLANS_KEPT of them). So: an `any` step keeps only its children's count and paths; a leaf step
    is compiled alone, a `matches` leaf with a stand-in pattern (its entries show its own);
    a rule of more than FIRST_INLINE steps (stored whole too) is not read further."""
    from .codegen import FIRST_INLINE, radix_of
    from .compile import compile_rule, rule_label
    from .conditions import _leaf

    head = compile_rule({**raw, "conditions": None, "actions": _STAND_IN_ACTIONS}, 0)
    label = rule_label(raw, 0)
    found: list[tuple[str, Any]] = []
    conditions = raw.get("conditions")
    if conditions is not None and conditions != {}:
        _raw_steps(conditions, "conditions", found, FIRST_INLINE + 1, label)
    if len(found) > FIRST_INLINE:
        return RecordPlan([head], [[]], [()], [[]], frozenset({0}))
    steps: list[Node] = []
    patterns: dict[int, Any] = {}   # step number -> a `matches` leaf's own pattern
    problems: list[tuple[str, str]] = []
    for path, node in found:
        if "any" in node:
            steps.append(Group(path, "any", cast(list[Node], Kids(path, len(node["any"]))), _never))
            continue
        if node.get("op") == "matches":   # (compiled with a stand-in: re's parser is Python)
            patterns[len(steps)] = node.get("value")
            node = {**node, "value": "x"}
        if "calendar" in node:   # (any name resolves; a business_hours object is compiled)
            node = {**node, "calendar": "x"}
        leaf = _leaf(node, problems, path, _AnyCalendar())
        if leaf is None or problems:
            where, why = problems[0] if problems else (path, "not a condition")
            raise RuleError(label, where, why)
        steps.append(leaf)
    finders = tuple((k, None) for k, node in enumerate(steps) if isinstance(node, Group) and node.children)
    plan = RecordPlan([head], [steps], [finders], [radix_of(steps)], frozenset())
    # kept by readers for many rules: without the compiled nodes (predicates, regexes) and fields
    plan.steps = [tuple((*step[:4], patterns[k] if k in patterns else step[4], step[5], None)
                        for k, step in enumerate(plan.steps[0]))]
    plan.fields, plan.seen_reads = [], []
    # the most an entry's `failed.value` adds (a condition's value is bounded by the body only)
    plan.value_bytes = max((len(dumps_any(step[4])) for step in plan.steps[0] if step[4] is not None), default=0)
    return plan


_STAND_IN_ACTIONS = [{"type": "add_tags", "tags": ["x"]}]


def _never(s: State) -> bool:
    return False


def _raw_steps(node: Any, path: str, out: list[tuple[str, Any]], most: int, label: str) -> None:
    """The steps of a stored condition tree as (path, node), in written order, as
    codegen.step_nodes numbers them (every `all` flattened); stops at `most` steps."""
    if type(node) is not dict:
        raise RuleError(label, path, "a condition must be an object")
    if "all" in node and "any" not in node and len(node) == 1:
        items = node["all"]
        if type(items) is not list:
            raise RuleError(label, f"{path}.all", "must be a list of conditions")
        for i, child in enumerate(items):
            _raw_steps(child, f"{path}.all[{i}]", out, most, label)
            if len(out) >= most:
                return
        return
    if "any" in node and (len(node) != 1 or type(node["any"]) is not list):
        raise RuleError(label, path, "an `any` group is a list of conditions alone")
    out.append((path, node))
