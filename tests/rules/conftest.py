"""The implementation fixture: every behaviour test runs on the oracle and on the engine."""

from __future__ import annotations

import importlib
import os
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import oracle

# Profiles for test_property.py, registered but not loaded (other packages' tests keep theirs).
# DESKFLOW_RULES_PROFILE=rules-thorough runs ten times the examples.
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("rules", max_examples=300, deadline=None, suppress_health_check=_QUIET)
settings.register_profile("rules-thorough", max_examples=3000, deadline=None,
                          suppress_health_check=_QUIET)


def rules_profile(scale: float = 1.0) -> settings:
    """The active rules profile, with `scale` times its examples."""
    base = settings.get_profile(os.environ.get("DESKFLOW_RULES_PROFILE", "rules"))
    return settings(base, max_examples=max(1, int(base.max_examples * scale)))


def load_engine() -> Any:
    """The engine under test (`rules`), or a skip while it is not importable yet."""
    try:
        engine = importlib.import_module("rules")
        engine.compile_rules  # noqa: B018 - the attribute must exist
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"the rules engine is not importable yet: {exc}")
    return engine


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
