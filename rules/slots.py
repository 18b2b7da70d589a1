"""The slot vector: the field values a bucket's generated code reads, read and folded once a state.

rules/codegen.py writes each leaf over `v[<slot number>]`; this module says what each slot holds
(its kind), and reads the vector: eagerly, in one generated function per bucket (`reader`, which
also hands back each field's raw value for the run record), or lazily as the code asks (`Slots`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import scans
from .ops import State

# What a slot holds, per (field, kind): FOLDED State.folded's value (a str case-folded, a list as
# the frozenset of its folded str items, else None); NUMBER the field's value if it is a number
# (int or float, not bool), else NaN; TEXT the case-folded str, else ""; ITEMS the frozenset of a
# list's folded str items, else the empty frozenset. The last three let a leaf's template skip the
# type test it would need on FOLDED or the raw value: every comparison with NaN is false (as a
# number op on a non-number), no non-empty value is in "" or starts or ends it (as text ops on a
# non-string), and no value is in the empty set (as item ops on a non-list). About a third of a
# leaf's cost was that `type(x) is ...` call.
FOLDED, NUMBER, TEXT, ITEMS = 0, 1, 2, 3
NAN = float("nan")
NO_ITEMS: frozenset[str] = frozenset()
# the names generated code may use besides its constants (rules/codegen.py's too)
GLOBALS = {"T": type, "S": str, "F": frozenset, "N": (int, float), "Y": scans.give_way,
           "W": scans.long_text}


# Eager reading pays while a bucket's rules read few fields: one generated function reading and
# folding each of them inline costs less than a lazy dict's `__missing__` call and State's cache
# per field (21 us -> ~3 us for 11 fields). A bucket reading many fields, most of which an
# event's few candidate rules never look at, keeps the lazy vector.
EAGER_SLOTS = 16


def raw_index(fields: list[tuple[Any, int]]) -> dict[str, int]:
    """Where `reader`'s vector holds each field's raw value (after the slots, in the order the
    fields first appear)."""
    return {name: len(fields) + m for m, name in enumerate(dict.fromkeys(f.name for f, _ in fields))}


def reader(fields: list[tuple[Any, int]]) -> Callable[..., list[Any]] | None:
    """A function (ticket, event, vars) -> [slot values], exactly `Slots`' values (the kinds
    above), each field read and case-folded once however many kinds of it the bucket asks for.
    The fields' own read functions are passed in as R[n]; no field name enters the source."""
    if not fields or len({f.name for f, _ in fields}) > EAGER_SLOTS:   # (fields, not slots: each read once)
        return None
    lines = ["def _make(R):", "    def read(t, e, w):"]
    readers: list[Any] = []
    number: dict[str, int] = {}   # field name -> its number in R
    kinds: dict[str, set[int]] = {}
    for field, kind in fields:
        kinds.setdefault(field.name, set()).add(kind)
    for n, (field, kind) in enumerate(fields):
        m = number.get(field.name)
        if m is None:
            m = number[field.name] = len(readers)
            readers.append(field.read)
            lines.append(f"        r{m} = R[{m}](t, e, w)")
            if kinds[field.name] & {FOLDED, TEXT}:
                lines.append(f"        c{m} = r{m}.casefold() if I(r{m}, S) else None")
            if kinds[field.name] & {FOLDED, ITEMS}:
                lines.append(f"        i{m} = F([x.casefold() for x in r{m} if I(x, S)]) if T(r{m}) is L else None")
        r = f"r{m}"
        value = {FOLDED: f"c{m} if c{m} is not None else i{m}",
                 NUMBER: f"{r} if T({r}) in N else NAN",
                 TEXT: f'W(c{m}) if c{m} is not None else ""',
                 ITEMS: f"i{m} if i{m} is not None else E"}[kind]
        lines.append(f"        v{n} = {value}")
    # (the raw values follow the slots, one per field in `raw_of`'s order: the run record's
    # quick pack stores them, rules/packed.py, instead of reading every field again)
    lines.append("        return [" + ", ".join([f"v{n}" for n in range(len(fields))]
                                         + [f"r{m}" for m in range(len(readers))]) + "]")
    lines.append("    return read")
    namespace: dict[str, Any] = {"__builtins__": {}, "I": isinstance, "L": list, "NAN": NAN, "E": NO_ITEMS,
                                 **GLOBALS}
    exec(compile("\n".join(lines) + "\n", "<rules reader>", "exec"), namespace)  # noqa: S102 -- fixed templates
    # (popped: left in its globals, _make and the namespace are a cycle only the collector frees,
    # and a worker freezes its compiles' objects out of the collector's reach, server/gcpolicy.py)
    return namespace.pop("_make")(tuple(readers))  # type: ignore[no-any-return]


class Slots(dict):  # type: ignore[type-arg]
    """The slot vector `v` of one state, filled as the generated code asks: slot n is its field
    as its kind says (FOLDED, NUMBER, TEXT, ITEMS). A bucket may read 20 fields while an event's rules
    need three; a dict's `__missing__` costs one call per field read, a hit costs nothing more
    than a list index would."""

    __slots__ = ("fields", "state")

    def __init__(self, fields: list[tuple[Any, int]], state: State) -> None:
        super().__init__()
        self.fields, self.state = fields, state

    def __missing__(self, n: int) -> Any:
        field, kind = self.fields[n]
        if kind == NUMBER:
            value = self.state.read(field)
            if type(value) is not int and type(value) is not float:
                value = NAN
        else:
            value = self.state.folded(field)
            if kind == TEXT:
                value = scans.long_text(value) if type(value) is str else ""
            elif kind == ITEMS and type(value) is not frozenset:
                value = NO_ITEMS
        self[n] = value
        return value


def read_slots(fields: list[tuple[Any, int]], s: State) -> Slots:
    """The (lazily read) slot vector of a state."""
    return Slots(fields, s)
