"""Fixtures for the sandbox tests: one real worker pool and one real local CRM for the session.

The pool lives on an event loop in a background thread, so tests stay plain functions:
`sandbox.run(source, ...)` returns the ScriptResult. Both pools are shared by design: the attack
tests assert that after each attack the same pool still serves an ordinary script.
"""
from __future__ import annotations

import asyncio
import itertools
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from crm_app import BILLING_TOKEN, CRM_TOKEN, CrmServer  # noqa: E402

from sandbox import Broker, BrokerConfig, Limits, ScriptPool, ScriptResult, parse_allowlist  # noqa: E402

OK_SCRIPT = "def run(event, ticket, ctx):\n    return {'add_tags': ['still-serving']}\n"


class SandboxHarness:
    """A ScriptPool + Broker on their own loop; `run` is synchronous for the tests."""

    def __init__(self, crm_url: str, size: int = 2) -> None:
        self.crm_url = crm_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.versions = itertools.count(1)
        self.broker: Broker = self.call(self._make_broker())
        self.pool = ScriptPool(size, broker=self.broker)
        self.call(self.pool.start())

    async def _make_broker(self) -> Broker:
        return Broker.create()

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, source: str, *, event: Any = None, ticket: Any = None,
            limits: Limits | None = None, allow: list[str] | None = None,
            secrets: Mapping[str, str] | None = None, vars: Any = None,
            broker: Broker | None = None, version: int | None = None) -> ScriptResult:
        config = BrokerConfig(parse_allowlist(allow if allow is not None else [self.crm_url]),
                              dict(secrets or {"CRM_TOKEN": CRM_TOKEN, "BILLING_TOKEN": BILLING_TOKEN}))
        pool = self.pool
        if broker is not None:
            pool.broker = broker
        try:
            return self.call(pool.run(
                "test-script", version or next(self.versions), source,
                event if event is not None else {"type": "ticket.created"},
                ticket if ticket is not None else {"id": "T-1", "tags": [], "custom": {}},
                {"workspace": "acme", "vars": vars or {}}, limits or Limits(), config))
        finally:
            pool.broker = self.broker

    def still_serving(self) -> None:
        result = self.run(OK_SCRIPT)
        assert result.error is None, result.error
        assert result.updates == {"add_tags": ["still-serving"]}

    def close(self) -> None:
        self.call(self.pool.close())
        self.call(self.broker.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


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

