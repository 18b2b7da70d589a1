"""An `any` group's children as a record plan holds them: how many, and their paths when asked.

rules/revision_plan.py builds a rule's plan at a stored revision without compiling its leaves;
its `any` groups then hold only these (a plan kept for an `any` of 20,000 leaves held 1.5 MB of
paths), and rules/record.py's RecordPlan reads their number and paths.
"""
from __future__ import annotations


class Paths:
    """The paths of an `any` group's n children ("<group>.any[b]", conditions.parse's), made
    when asked: a plan kept for an `any` of 20,000 leaves held 1.5 MB of them."""

    __slots__ = ("group", "n")

    def __init__(self, group: str, n: int) -> None:
        self.group, self.n = group, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, b: int) -> str:
        if not 0 <= b < self.n:
            raise IndexError(b)
        return f"{self.group}.any[{b}]"


class Kids:
    """An `any` step's children as rule_plan's Group holds them: only how many (radix_of,
    RecordPlan read their number and, through paths(), their paths)."""

    __slots__ = ("group", "n")

    def __init__(self, group: str, n: int) -> None:
        self.group, self.n = group, n

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def paths(self) -> Paths:
        return Paths(self.group, self.n)
