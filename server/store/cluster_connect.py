"""Deciding whether DESKFLOW_REDIS_URL names a cluster, and opening the cluster client.

Detection asks the node itself (`INFO cluster` -> `cluster_enabled:1`), so pointing deskflow at any
node of a cluster just works; DESKFLOW_REDIS_CLUSTER=1|0 forces either way (for a node that may be
unreachable when the process starts: a failed probe falls back to a single Redis, with a warning).

Connection budget per node and process (docs/operators.md, "Connections"): RedisCluster's pool
raises MaxConnectionsError at once when a node's `max_connections` are all in use, so it is sized
from what can be in flight: the request concurrency (64) plus one per partition, since a worker
may hold a read on each partition it owns and, after a failover, all of them can be on one node.
Transactions and the blocking reads have their own blocking pool per node of the same size
(`slot_connections`), which waits instead of raising.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from server.settings import Settings
from server.store.cluster import ClusterClient

__all__ = ["cluster_enabled", "open_cluster", "connection_budget", "REQUEST_CONCURRENCY"]

log = logging.getLogger("deskflow.store")

# Commands one process may have in flight on one node besides the partitions' reads.
REQUEST_CONCURRENCY = 64


def connection_budget(settings: Settings) -> int:
    """Connections per node and pool (plain and slot-bound pools each), see the module doc."""
    if settings.redis_max_connections > 0:
        return settings.redis_max_connections
    return REQUEST_CONCURRENCY + settings.partitions


async def cluster_enabled(client: aioredis.Redis, settings: Settings) -> bool:
    if settings.redis_cluster is not None:
        return settings.redis_cluster
    try:
        info = await client.info("cluster")
    except (RedisError, OSError) as exc:
        log.warning("could not ask %s whether it is a cluster node (%s): using it as a single "
                    "Redis; set DESKFLOW_REDIS_CLUSTER=1 to force cluster mode",
                    settings.store_description, exc)
        return False
    return str(info.get("cluster_enabled", 0)) == "1"


async def open_cluster(settings: Settings) -> ClusterClient:
    """RedisCluster seeded from the URL's node (it discovers the others from CLUSTER SLOTS)."""
    assert settings.redis_url
    url = urlsplit(settings.redis_url)
    budget = connection_budget(settings)
    # Backoff 20 ms doubling to 250 ms: enough tries to span retry_for_s (a failover).
    tries = max(1, int(settings.redis_retry_for_s / 0.2))
    client = ClusterClient(
        startup_nodes=[ClusterNode(url.hostname or "127.0.0.1", url.port or 6379)],
        username=url.username or None, password=url.password or None,
        ssl=url.scheme == "rediss", decode_responses=True, socket_connect_timeout=2,
        socket_timeout=max(5.0, settings.block_ms / 1000 * 3), health_check_interval=15,
        max_connections=budget, slot_connections=budget,
        retry=Retry(ExponentialBackoff(cap=0.25, base=0.02), tries),
        retry_for_s=settings.redis_retry_for_s, wait_replicas=settings.redis_wait_replicas,
        wait_ms=settings.redis_wait_ms)
    try:
        await client.initialize()
    except (RedisError, OSError) as exc:
        # Not fatal: the service starts and answers 503 until the cluster can be reached.
        log.warning("Redis Cluster at %s not reachable yet: %s", settings.store_description, exc)
    return client
