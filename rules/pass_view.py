"""What the explanation and the run record read of a pass, written down as protocols.

rules/ruleset.py builds each trigger's rules (`_Bucket`) and, per pass, an `Evaluation`
(rules/evaluation.py), which builds the run record (rules/record.py) from itself. The readers
name these shapes instead of importing their builders back, which would make ruleset.py,
evaluation.py and record.py one cycle of modules to be read and changed together. The members
are what the readers use; mypy checks that `_Bucket` and `Evaluation` have them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .actions import Firing
from .compile import CompiledRule
from .conditions import Node
from .state import State


class Bucket(Protocol):
    """One trigger's compiled rules, in order, with their generated code (rules/codegen.py)."""

    @property
    def rules(self) -> list[CompiledRule]: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def slots(self) -> list[tuple[Any, int]]: ...
    @property
    def explainers(self) -> list[Callable[[Any, State], int]]: ...
    @property
    def steps(self) -> list[list[Node]]: ...
    @property
    def first(self) -> Callable[[Any, State, list[int]], list[int]] | None: ...
    @property
    def record(self) -> Any:
        """The bucket's RecordPlan: rules/record.py defines it and reads this module."""


class Pass(Protocol):
    """One pass, as rules/record.py reads it: the private side of `Evaluation`."""

    @property
    def _bucket(self) -> Bucket | None: ...
    @property
    def _fired(self) -> dict[int, Firing]: ...
    @property
    def _timeline(self) -> list[tuple[int, dict[str, Any], dict[str, Any], int | None]]: ...
    @property
    def _first(self) -> State: ...
    @property
    def _slots(self) -> Any: ...
    @property
    def _codes(self) -> list[int] | None: ...
    @property
    def _at_turn(self) -> dict[int, int] | None: ...
    @property
    def _appended(self) -> bool: ...
    @property
    def _stopped_at(self) -> int | None: ...
    @property
    def _skipped(self) -> frozenset[int]: ...
    @property
    def _rechecked(self) -> frozenset[int] | set[int]: ...
    def _state_at(self, step: int, parent: State) -> State: ...


__all__ = ["Bucket", "Pass"]
