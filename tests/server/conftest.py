"""Fixtures of the server tests (the general ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest
from server_helpers import Workspace
from starlette.testclient import TestClient


@pytest.fixture
def ws(client: TestClient) -> Workspace:
    """A fresh workspace on `client`, with keys of every role on demand."""
    return Workspace(client)
