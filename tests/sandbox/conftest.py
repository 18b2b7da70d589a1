"""Fixtures for the sandbox tests: one real worker pool and real local CRM apps for the session.

The pool lives on an event loop in a background thread (sandbox_harness.py), so tests stay plain
functions: `sandbox.run(source, ...)` returns the ScriptResult. The pool is shared by design:
the attack tests assert that after each attack the same pool still serves an ordinary script.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from crm_app import CrmServer  # noqa: E402
from sandbox_harness import SandboxHarness  # noqa: E402


@pytest.fixture(scope="session")
def crm() -> Iterator[CrmServer]:
    with CrmServer() as server:
        yield server


@pytest.fixture(scope="session")
def crm2() -> Iterator[CrmServer]:
    """A second origin, for redirects that leave the first one."""
    with CrmServer() as server:
        yield server


@pytest.fixture(scope="session")
def sandbox(crm: CrmServer) -> Iterator[SandboxHarness]:
    harness = SandboxHarness(crm.url)
    yield harness
    harness.close()

