"""The cluster client's own retries, on the real cluster (issue 16)."""
from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from server.settings import Settings
from server.store.cluster import ClusterClient
from server.store.connect import close_store, open_store

pytestmark = [pytest.mark.redis, pytest.mark.anyio]


async def test_a_connection_closed_under_a_command_is_retried(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """During a failover redis-py's asyncio cluster handed a command a connection that another
    task had just disconnected, and the send raised AttributeError ('NoneType' object has no
    attribute 'writelines'): a 500 at ingest in the kill test. It is retried as the lost
    connection it is; any other AttributeError still propagates (a bug must not be retried)."""
    store = await open_store(settings)
    assert isinstance(store.redis, ClusterClient)
    real = RedisCluster._execute_command
    failures = ["'NoneType' object has no attribute 'writelines'"]

    async def flaky(self: Any, node: Any, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise AttributeError(failures.pop())
        return await real(self, node, *args, **kwargs)

    monkeypatch.setattr(RedisCluster, "_execute_command", flaky)
    try:
        assert await store.redis.set("df:probe", "1")
        assert not failures and await store.redis.get("df:probe") == "1"
        assert store.redis.retries["connectionerror"] >= 1
        failures.append("'Foo' object has no attribute 'bar'")
        with pytest.raises(AttributeError):
            await store.redis.get("df:probe")
    finally:
        await close_store(store)
