"""/metrics series of the Redis Cluster client (docs/operators.md, "What to watch").

Counted by this process since it started (store/cluster.py counts them where they happen):

  deskflow_redis_node_errors_total{node, error}   a command or batch to that node failed with a
                                                  redirection (MovedError, AskError, TryAgainError,
                                                  ClusterDownError) or could not reach it
  deskflow_redis_retries_total{kind}              attempts made again after such an error: the
                                                  failover and resharding retries
  deskflow_redis_slot_map_refreshes_total         slot map re-read (after a redirection or a
                                                  dead node)
  deskflow_redis_cluster_masters                  masters in the slot map this process holds
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from server.store.cluster import ClusterClient

__all__ = ["render_cluster"]


class _Collector:
    def __init__(self, client: ClusterClient) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        c = self.client
        errors = CounterMetricFamily("deskflow_redis_node_errors", "Failed commands or batches "
                                     "per Redis Cluster node and error.", labels=["node", "error"])
        for (node, error), n in sorted(c.node_errors.items()):
            errors.add_metric([node, error], n)
        yield errors
        retries = CounterMetricFamily("deskflow_redis_retries", "Redis Cluster attempts made "
                                      "again after a redirection or an unreachable node.",
                                      labels=["kind"])
        for kind, n in sorted(c.retries.items()):
            retries.add_metric([kind], n)
        yield retries
        yield CounterMetricFamily("deskflow_redis_slot_map_refreshes", "Redis Cluster slot map "
                                  "re-reads.", value=c.refreshes)
        masters = {nodes[0].name for nodes in (c.nodes_manager.slots_cache or {}).values() if nodes}
        yield GaugeMetricFamily("deskflow_redis_cluster_masters", "Masters in this process's "
                                "Redis Cluster slot map.", value=len(masters))


def render_cluster(client: object) -> bytes:
    """The cluster series when the store is a cluster, else nothing."""
    if not isinstance(client, ClusterClient):
        return b""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(client))
    return generate_latest(reg)
