"""SandboxHarness: a ScriptPool + Broker on a background event loop, driven synchronously.

Shared by tests/sandbox (conftest.py) and tests/test_example_scripts.py.
"""
from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Mapping
from typing import Any

from crm_app import BILLING_TOKEN, CRM_TOKEN

from sandbox import Broker, BrokerConfig, Limits, ScriptPool, ScriptResult, parse_allowlist

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
            broker: Broker | None = None, version: int | None = None,
            workspace: str = "acme", ctx: Mapping[str, Any] | None = None) -> ScriptResult:
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
                {"workspace": workspace, "vars": vars or {}, **(ctx or {})}, limits or Limits(),
                config))
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
