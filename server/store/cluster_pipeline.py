"""Non-transactional pipelines on a Redis Cluster: each command to the master of its slot.

Why not redis-py's ClusterPipeline: it refuses commands the store pipelines use (MGET of keys of
one slot: "blocked when running redis in cluster mode"), and it cannot end a node's batch with a
WAIT on the connection that wrote it. This pipeline queues like a plain one, then sends each
node's commands on one connection of that node (all nodes at once), in queue order per node, and
puts the replies back in queue order. A command answered with a redirection (MOVED, ASK, TRYAGAIN,
CLUSTERDOWN) did not run: the slot map is refreshed and those commands alone go again; so does a
node batch that could not be sent (a dead master, until its replica is promoted). Every command
must name keys of one slot (the store's do; store/keys.py).

`wait_replicas` > 0 ends each node's batch with `WAIT n ms`; fewer confirmations raise
ReplicaTimeout (an outage: 503).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from redis.asyncio.client import Pipeline
from redis.asyncio.connection import ConnectionPool

if TYPE_CHECKING:
    from server.store.cluster import ClusterClient

__all__ = ["NodesPipeline"]


class NodesPipeline(Pipeline):
    def __init__(self, cluster: ClusterClient, *, wait_replicas: int = 0) -> None:
        super().__init__(ConnectionPool(), cluster.response_callbacks, False, None)
        self.owner = cluster   # not `cluster`: that is Pipeline's CLUSTER command
        self.wait_replicas = wait_replicas

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        from server.store.cluster import REDIRECTS, first_key

        stack = list(self.command_stack)
        self.command_stack = []
        if not stack:
            return []
        replies: list[Any] = [None] * len(stack)
        todo = list(range(len(stack)))

        async def attempt() -> None:
            by_node: dict[str, list[int]] = defaultdict(list)
            for i in todo:
                by_node[self.owner.node_name_for(first_key(stack[i][0]))].append(i)
            results = await asyncio.gather(
                *(self._node_batch(node, [stack[i] for i in idx]) for node, idx in by_node.items()),
                return_exceptions=True)
            redirected: list[int] = []
            failure: BaseException | None = None
            for (node, idx), got in zip(by_node.items(), results, strict=True):
                if isinstance(got, BaseException):
                    self.owner.count_error(node, got)
                    redirected.extend(idx)
                    failure = failure or got
                    continue
                for i, reply in zip(idx, got, strict=True):
                    if isinstance(reply, REDIRECTS):
                        self.owner.count_error(node, reply)
                        redirected.append(i)
                        failure = failure or reply
                    else:
                        replies[i] = reply
            todo[:] = sorted(redirected)
            if failure is not None:
                raise failure

        await self.owner.retrying(attempt, what="pipeline")
        if raise_on_error:
            for i, reply in enumerate(replies):
                if isinstance(reply, Exception):
                    self.annotate_exception(reply, i + 1, stack[i][0])
                    raise reply
        return replies

    async def _node_batch(self, node: str, commands: list[tuple[Any, Any]]) -> list[Any]:
        from redis.exceptions import TryAgainError

        from server.store.cluster import ReplicaTimeout

        async with self.owner.node_client(node).pipeline(transaction=False) as p:
            p.command_stack = list(commands)
            if self.wait_replicas:
                p.execute_command("WAIT", self.wait_replicas, self.owner.wait_ms)
            got = list(await p.execute(raise_on_error=False))
        if self.wait_replicas:
            acked = got.pop()
            if isinstance(acked, Exception):
                if "replica" in str(acked).lower():
                    # the node was demoted (an old master back as a replica after a failover)
                    # and our slot map still named it: its writes were answered MOVED and ran
                    # nowhere, so the batch goes again on the slot's master (a 500 before)
                    raise TryAgainError(f"{node} is a replica now: {acked}")
                raise acked
            if int(acked) < self.wait_replicas:
                raise ReplicaTimeout(f"WAIT on {node}: {acked} of {self.wait_replicas} replicas "
                                     f"within {self.owner.wait_ms} ms")
        return got
