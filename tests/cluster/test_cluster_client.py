"""The cluster client's own retries, on the real cluster (issue 16); and the read-retry tests of
tests/server/test_read_retry.py again, where RedisCluster's own retry loop (not redis-py's Retry)
sends a read again after its reply was lost."""
from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from test_read_retry import (  # noqa: F401 - the read-retry tests again, on the cluster client
    lost_replies,
    test_a_pending_entry_deleted_after_delivery_is_acked_not_handed_out,
    test_a_read_sent_again_after_its_reply_was_lost_returns_what_the_reply_held,
    test_a_ticket_is_applied_in_order_when_a_read_reply_is_lost,
)

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


async def test_a_wait_batch_sent_to_a_demoted_master_goes_again_to_the_master(
        settings: Settings, local_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a failover the old master comes back as a replica; a client whose slot map still
    names it sends it the ingest batch: the writes are answered MOVED and WAIT with "WAIT cannot
    be used with replica instances" (a 500 in the kill test with WAIT). The batch is redirected:
    the writes land on the master, and WAIT there confirms them."""
    from server.store.cluster_pipeline import NodesPipeline

    store = await open_store(settings)
    client = store.redis
    assert isinstance(client, ClusterClient)
    key = "df:{q:3}:probe"
    master = client.node_name_for(key)
    _, rows = local_cluster._view(local_cluster.nodes_alive()[0])
    master_id = next(r["id"] for r in rows if r["addr"] == master)
    replica = next(r["addr"] for r in rows if r["master"] == master_id)
    real = client.node_name_for
    stale = [replica]
    monkeypatch.setattr(client, "node_name_for",
                        lambda k: stale.pop() if stale and k == key else real(k))
    try:
        async with NodesPipeline(client, wait_replicas=1) as p:
            p.execute_command("SET", key, "v")
            assert await p.execute() == [True]
        assert not stale and await client.get(key) == "v"
    finally:
        await close_store(store)


async def test_redirections_that_outlast_the_client_are_an_outage(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py gives up on a command after 16 redirections ("TTL exhausted.", a ClusterError):
    under load a slot's move outlasted them, and the error went up raw from the lease round and
    the partition read, ending every worker process of the reshard test. It is an outage
    (StoreUnavailable: a worker retries, the API answers 503), like the redirections themselves."""
    from redis.exceptions import ClusterError

    from server.store import events
    from server.store.errors import StoreUnavailable

    store = await open_store(settings)
    real = RedisCluster._execute_command
    exhausted = [ClusterError("TTL exhausted."), ClusterError("TTL exhausted.")]

    async def redirected(self: Any, node: Any, *args: Any, **kwargs: Any) -> Any:
        if exhausted:
            raise exhausted.pop()
        return await real(self, node, *args, **kwargs)

    monkeypatch.setattr(RedisCluster, "_execute_command", redirected)
    try:
        with pytest.raises(StoreUnavailable, match="TTL exhausted"):
            await events.acquire_lease(store, 0, "w1")
        with pytest.raises(StoreUnavailable, match="TTL exhausted"):
            await events.read_entries(store, "w1", [0], count=10, block_ms=None)
        assert not exhausted and await events.acquire_lease(store, 0, "w1")
    finally:
        await close_store(store)
