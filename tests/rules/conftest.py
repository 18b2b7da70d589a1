"""The implementation fixture: every behaviour test runs on the oracle and on the engine."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

import pytest

import oracle


def load_engine() -> Any:
    """The engine under test. It exists now, so a broken import fails the tests, never skips."""
    return importlib.import_module("rules")


@pytest.fixture(params=["oracle", "engine"])
def impl(request: pytest.FixtureRequest) -> Any:
    """An object with `compile_rules`, the oracle's or the engine's."""
    if request.param == "oracle":
        return SimpleNamespace(name="oracle", compile_rules=oracle.compile_rules)
    engine = load_engine()
    return SimpleNamespace(name="engine", compile_rules=engine.compile_rules)


@pytest.fixture
def engine() -> Any:
    """The engine module itself, for what only it has (RuleError, validation)."""
    return load_engine()
