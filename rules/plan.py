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

2. **Action plans.** A rule whose actions only change the ticket (tags, `set`, `close`) fires
   without a Firing, and `add_tags` uses the folded tags the state already holds, so a fire costs
   the tags it adds rather than the tags the ticket has.

The generated predicates are in rules/codegen.py.
"""
from __future__ import annotations

from typing import Any

from . import updates as U
from .actions import Action, Firing
from .conditions import Group, Node
from .fields import FIXED_FIELDS, SETTABLE, Field, lookup_field
from .ops import State

Key = tuple[str, str | None]
ANY: Key = ("*", None)
_ITEM_FIELDS = frozenset({"tags", "contact.groups"})
_ITEM_OPS = frozenset({"includes", "excludes", "includes_any", "includes_all"})
_VALUE_OPS = frozenset({"is", "is_not", "in", "not_in"})


def _strs(v: Any) -> list[str] | None:
    values = v if type(v) is list else [v]
    return list(values) if values and all(isinstance(x, str) for x in values) else None


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
        if items is None and n.op in _VALUE_OPS and settable(name):
            items = _strs(n.value)  # `priority is high` changes only as priority enters or leaves high
        if items is None:
            out.add((name, None))
        else:
            out.update((name, x.casefold()) for x in items)
    return out


def settable(name: str) -> bool:
    return name in SETTABLE or (name.startswith("custom.") and len(name) > 7)


def scalar_writes(actions: list[Action]) -> tuple[Field, ...]:
    """The fields a rule's `set` / `close` actions write: which keys that touches depends on the
    values before and after (`write_keys_of`)."""
    names = [a.spec["field"] if a.type == "set" else "status" for a in actions if a.type in ("set", "close")]
    return tuple(f for name in dict.fromkeys(names) if (f := lookup_field(name)) is not None)


def scalar_keys(fields: tuple[Field, ...], before: dict[str, Any], after: dict[str, Any]) -> list[Key]:
    """The keys a fire's scalar writes touched: none for a field it left as it was; else the
    field at large and its folded values before and after."""
    out: list[Key] = []
    for f in fields:
        old, new = f.read(before, {}, {}), f.read(after, {}, {})
        if old is new or (type(old) is type(new) and old == new):
            continue
        out.append((f.name, None))
        for x in (old, new):
            if isinstance(x, str):
                out.append((f.name, x.casefold()))
    return out


def write_keys(actions: list[Action]) -> set[Key]:
    """The keys a rule's actions may change, other than its scalar writes (a superset: a no-op
    write still counts)."""
    out: set[Key] = set()
    for a in actions:
        spec = a.spec
        if a.type in ("set", "close"):
            continue
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


# ------------------------------------------------------------------------------- action plans

_TAGS = FIXED_FIELDS["tags"]
ADD_TAGS, CALL = 0, 1
Plan = tuple[tuple[int, Any], ...]
# What a rule whose plan ran fired with: it has no effects, notes or errors. Shared and never
# changed (explain copies its lists).
QUIET = Firing({}, {}, {}, None)


def quick_plan(actions: list[Action]) -> Plan | None:
    """The steps of a rule whose actions only change the ticket (tags, `set`, `close`), to run
    without a Firing; None for any other rule (effects, notes, handlers go the general way)."""
    steps: list[tuple[int, Any]] = []
    for a in actions:
        spec = a.spec
        if a.type == "add_tags":
            steps.append((ADD_TAGS, tuple((t, t.casefold()) for t in spec["tags"])))
        elif a.type == "remove_tags":
            tags = list(spec["tags"])
            steps.append((CALL, lambda t, tags=tags: U.remove_tags(t, tags)))
        elif a.type == "set":
            field, value = spec["field"], spec["value"]
            steps.append((CALL, lambda t, f=field, v=value: U.set_field(t, f, v)))
        elif a.type == "close":
            steps.append((CALL, lambda t: U.set_field(t, "status", "closed")))
        else:
            return None
    return tuple(steps)


def append_plan(plan: Plan | None) -> tuple[tuple[str, str], ...] | None:
    """The (item, folded item) pairs of a plan that only adds tags (rules/passes.py appends them
    in place), or None."""
    if plan is None or not plan or any(kind != ADD_TAGS for kind, _ in plan):
        return None
    return tuple(pair for _, items in plan for pair in items)


class Tags:
    """The folded tags of the pass's current ticket, kept up to date by `add_tags` plans: a fire
    then costs the tags it adds, not the tags the ticket has. `source` is the tags list they are
    of (by identity); any other list is folded afresh."""

    __slots__ = ("source", "folded")

    def __init__(self) -> None:
        self.source: Any = None
        self.folded: set[str] = set()

    def of(self, ticket: dict[str, Any], first: State) -> set[str]:
        cur = ticket.get("tags")
        if cur is not self.source or self.source is None:
            if cur is first.ticket.get("tags") and type(cur) is list:
                self.folded = set(first.folded(_TAGS))
            else:
                self.folded = {x.casefold() for x in cur if isinstance(x, str)} if type(cur) is list else set()
            self.source = cur
        return self.folded

    def seed(self, state: State) -> None:
        """Hand the folded tags to a State made for the current ticket."""
        if self.source is not None and state.ticket.get("tags") is self.source:
            state.remember("tags", self.source, frozenset(self.folded))


def run_plan(plan: Plan, ticket: dict[str, Any], tags: Tags, first: State) -> dict[str, Any]:
    """Apply a quick plan to a copy of `ticket` (merge_unique's answer for `add_tags`, item for
    item, from the folded tags `tags` keeps)."""
    out_ticket = dict(ticket)
    for kind, data in plan:
        if kind == CALL:
            data(out_ticket)
            continue
        seen = tags.of(out_ticket, first)
        cur = out_ticket.get("tags")
        out = list(cur) if type(cur) is list else []
        for item, folded in data:
            if folded not in seen:
                seen.add(folded)
                out.append(item)
        out_ticket["tags"] = out
        tags.source = out
    return out_ticket
