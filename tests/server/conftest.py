"""Fixtures of the server tests (the general ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest
from server_helpers import FakeClock, Workspace
from starlette.testclient import TestClient


@pytest.fixture
def ws(client: TestClient) -> Workspace:
    """A fresh workspace on `client`, with keys of every role on demand."""
    return Workspace(client)


@pytest.fixture
def fake_clock() -> FakeClock:
    """A wall clock that moves only on `advance(s)`, for `create_app(settings, clock=fake_clock)`."""
    return FakeClock()
