"""The rules package's exceptions.

    RuleError          an invalid rule (compile time): names the rule, the path inside it, the reason
    UpdateError        an invalid update dict (a script's return value)
"""
from __future__ import annotations


class RuleError(ValueError):
    """A rule that cannot be compiled. `errors` lists every problem found, this one first."""

    def __init__(self, rule: str, path: str, reason: str, *, index: int | None = None,
                 errors: list[RuleError] | None = None) -> None:
        self.rule = rule
        self.path = path
        self.reason = reason
        self.index = index
        self.errors: list[RuleError] = errors if errors is not None else [self]
        where = f"{path}: " if path else ""
        super().__init__(f"rule {rule!r}: {where}{reason}")

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "index": self.index, "path": self.path, "reason": self.reason}


class UpdateError(ValueError):
    """An update dict (a script's return value) outside the update vocabulary. `path` names the key."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)
