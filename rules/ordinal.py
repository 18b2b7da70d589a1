"""Ordinal comparison: `gt`/`gte`/`lt`/`lte` on `priority` and `status` with a value from the
field's order (`priority gt normal`: high or urgent). An addition beside the ops' numeric meaning,
which stays as it was everywhere else (rules/ops.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .fields import ORDINAL, Field

if TYPE_CHECKING:
    from .state import Predicate

ORDINAL_OPS = frozenset({"gt", "gte", "lt", "lte"})
_TESTS: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
}


def is_ordinal(field: Field, op: str) -> bool:
    return op in ORDINAL_OPS and field.name in ORDINAL


def check_ordinal(field_name: str, value: object) -> str | None:
    """Why `value` cannot be compared in `field_name`'s order, or None when it can."""
    order = ORDINAL[field_name]
    if isinstance(value, str) and value in order:
        return None
    return f"must be one of {', '.join(order)} ({field_name} compares in that order)"


def ordinal_predicate(f: Field, op: str, value: str, cs: bool) -> Predicate:
    """Positions in the field's order. The ticket's value is found in the order ignoring case
    (exactly with case_sensitive); a value not in the order (or not a string) does not hold."""
    order = ORDINAL[f.name]
    want = order.index(value)
    rank = {name: i for i, name in enumerate(order)}
    test = _TESTS[op]
    if cs:
        return lambda s: isinstance(raw := s.read(f), str) and (i := rank.get(raw)) is not None and test(i, want)
    return lambda s: type(x := s.folded(f)) is str and (i := rank.get(x)) is not None and test(i, want)


__all__ = ["ORDINAL_OPS", "is_ordinal", "check_ordinal", "ordinal_predicate"]
