"""Checking a rule dict and compiling it: `validate_rule`, `compile_rule`.

Every problem is reported with the path inside the rule (`conditions.all[1].any[0].op`,
`actions[2].value`, `triggers[0]`) and a reason a person can act on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .actions import MUTATING, Action, compile_action_list
from .business import compile_calendars
from .calendar import Calendar
from .conditions import Leaf, Node, leaves, parse
from .errors import RuleError
from .ops import TIME_OPS, Predicate

TRIGGERS = frozenset({"ticket.created", "ticket.updated", "message.received", "message.sent",
                      "time.reached", "sla.warning", "sla.breached", "ticket.woke"})
_RULE_KEYS = frozenset({"id", "name", "enabled", "triggers", "conditions", "actions", "stop", "description"})
# The service's own bookkeeping on stored rules; the engine ignores it.
_IGNORED_KEYS = frozenset({"position", "created_at", "updated_at", "revision", "draft", "last_fired_at",
                           "fired_24h"})


@dataclass(eq=False)
class CompiledRule:
    position: int
    id: str | None
    name: str | None
    triggers: tuple[str, ...]
    conditions: Node | None
    pred: Predicate
    actions: list[Action]
    stop: bool
    source: dict[str, Any] = field(repr=False)

    @property
    def label(self) -> str:
        """What `.matched` lists: the id, or the name where the rule has none."""
        if self.id is not None:
            return self.id
        return self.name if self.name is not None else f"#{self.position}"

    @cached_property
    def mutates(self) -> bool:
        return any(a.type in MUTATING for a in self.actions)

    @property
    def time_leaves(self) -> list[Leaf]:
        return [leaf for leaf in leaves(self.conditions) if leaf.op in TIME_OPS]


def rule_label(raw: Any, index: int) -> str:
    if type(raw) is dict:
        for key in ("id", "name"):
            v = raw.get(key)
            if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v):
                return str(v)
    return f"#{index}"


def _problems(raw: Any, calendars: dict[str, Calendar] | None = None
              ) -> tuple[list[tuple[str, str]], Node | None, list[Action]]:
    if type(raw) is not dict:
        return [("", "a rule must be an object")], None, []
    out: list[tuple[str, str]] = []
    for key in raw:
        if key not in _RULE_KEYS and key not in _IGNORED_KEYS:
            out.append((str(key), f"unknown key; a rule has {', '.join(sorted(_RULE_KEYS))}"))
    for key in ("id", "name", "description"):
        v = raw.get(key)
        if v is not None and not (isinstance(v, str) and v) and not (key == "id" and type(v) is int):
            out.append((key, "must be a non-empty string"))
    for key in ("enabled", "stop"):
        if key in raw and type(raw[key]) is not bool:
            out.append((key, "must be true or false"))
    triggers = raw.get("triggers")
    if type(triggers) is not list or not triggers:
        out.append(("triggers", f"must be a non-empty list of event types: {', '.join(sorted(TRIGGERS))}"))
    else:
        for i, t in enumerate(triggers):
            if not isinstance(t, str) or t not in TRIGGERS:
                out.append((f"triggers[{i}]", f"unknown trigger {t!r}; one of {', '.join(sorted(TRIGGERS))}"))
    cond_raw = raw.get("conditions")
    node = None
    if cond_raw is not None and cond_raw != {}:
        node = parse(cond_raw, out, calendars=calendars)
    if "actions" not in raw:
        out.append(("actions", "a rule needs 'actions', a non-empty list"))
        actions: list[Action] = []
    else:
        problems, actions = compile_action_list(raw["actions"], "actions")
        out.extend(problems)
    return out, node, actions


def validate_rule(raw: Any, index: int = 0, calendars: Any = None) -> list[RuleError]:
    """Every problem with one rule, as RuleErrors (not raised); [] when the rule is valid.

    `calendars`: the named calendars business-time conditions may name (as for compile_rules)."""
    problems, _, _ = _problems(raw, compile_calendars(calendars))
    label = rule_label(raw, index)
    return [RuleError(label, path, reason, index=index) for path, reason in problems]


def compile_rule(raw: Any, position: int, calendars: dict[str, Calendar] | None = None) -> CompiledRule:
    problems, node, actions = _problems(raw, calendars)
    label = rule_label(raw, position)
    if problems:
        errors = [RuleError(label, p, r, index=position) for p, r in problems]
        raise RuleError(label, problems[0][0], problems[0][1], index=position, errors=errors)
    rid = raw.get("id")
    return CompiledRule(
        position=position,
        id=str(rid) if rid is not None else None,
        name=raw.get("name"),
        triggers=tuple(dict.fromkeys(raw["triggers"])),
        conditions=node,
        pred=node.pred if node is not None else (lambda s: True),
        actions=actions,
        stop=bool(raw.get("stop", False)),
        source=raw,
    )
