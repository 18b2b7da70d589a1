"""The Redis Cluster client: redis-py's asyncio `RedisCluster`, plus what deskflow needs of it.

Why a subclass and not the plain client. redis-py's cluster pipeline in transaction mode builds
each queued command in a thread running its own event loop, and a command whose keys the client
must ask the server for (XREADGROUP, XREAD: "movable keys") then reads a connection of the main
loop from that thread ("Future attached to a different loop"). So a transaction here runs on a
plain `redis.asyncio` pipeline bound to the master of its slot (`SlotPipeline`): every store
transaction stays in one hash slot (store/keys.py), so one node serves all of it, and WATCH,
MULTI and EXEC keep the semantics the store code was written against.

What is retried, and what is not (issue 16):

* Before anything was sent (connecting, the first WATCH, a transaction queued without WATCH):
  MOVED, ASK, TRYAGAIN, CLUSTERDOWN and refused connections refresh the slot map and try again,
  with backoff, for up to `retry_for_s` (a failover with `cluster-node-timeout` 1000 takes 1-3 s).
  After that the error propagates and store/errors.py turns it into StoreUnavailable: 503 with
  Retry-After while a slot has no master.
* Once keys are WATCHed, a redirection means the slot moved under the transaction: WatchError, the
  store's "lost the race" (every caller loads again and retries).
* A connection lost during EXEC is not retried (it may have been applied); it propagates as an
  outage, as on a single Redis. The store's writes are idempotent on retry by design (markers).

Plain commands and non-transactional pipelines are RedisCluster's own: it follows MOVED and ASK
and retries connection errors itself (`retry`, `cluster_error_retry_attempts`).

Connections per node and process (RedisCluster raises at once when a node's pool is exhausted):
`max_connections` for plain commands and pipelines, plus `slot_connections` in a blocking pool for
transactions and the workers' blocking reads (one per owned partition at most); see
docs/operators.md for the sizing.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from server.store.cluster_pipeline import NodesPipeline
from server.store.errors import ReplicaTimeout
from redis.exceptions import (AskError, ClusterDownError, ConnectionError, ExecAbortError,
                              MovedError, ResponseError, TimeoutError, TryAgainError, WatchError)

__all__ = ["ClusterClient", "SlotPipeline", "NodesPipeline", "ReplicaTimeout", "first_key", "REDIRECTS"]

log = logging.getLogger("deskflow.store.cluster")

# Errors that mean "this node does not serve that slot (now)": nothing was applied.
REDIRECTS = (MovedError, AskError, TryAgainError, ClusterDownError)
# Set while RedisCluster runs one command attempt (see ClusterClient.aclose).
_IN_COMMAND: contextvars.ContextVar[bool] = contextvars.ContextVar("_IN_COMMAND", default=False)
# Errors of reaching a node at all.
_UNREACHABLE = (ConnectionError, TimeoutError, OSError)
T = TypeVar("T")


def _untyped(method: Any) -> Callable[..., Awaitable[Any]]:
    """A method redis-py leaves unannotated (Pipeline.immediate_execute_command and reset,
    ConnectionPool.get_connection), to call from typed code: the call is the same, and mypy
    checks what we do with its result."""
    return cast(Callable[..., Awaitable[Any]], method)

# Commands whose first key is not their first argument.
_STREAMS_KEYED = frozenset({"XREAD", "XREADGROUP"})
_SCRIPT_KEYED = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO"})


def first_key(args: tuple[Any, ...]) -> Any:
    """The first key a command names (all keys of a store transaction share one slot)."""
    name = str(args[0]).upper()
    if name in _STREAMS_KEYED:
        upper = [str(a).upper() for a in args]
        return args[upper.index("STREAMS") + 1]
    if name in _SCRIPT_KEYED:
        if int(args[2]) < 1:
            raise ValueError(f"{name} without keys has no slot")
        return args[3]
    if len(args) < 2:
        raise ValueError(f"{name} names no key")
    return args[1]


class ClusterClient(RedisCluster):
    """RedisCluster whose transactions are SlotPipelines, with per-node error counts for /metrics.

    `wait_replicas` > 0: every EVAL (the apply commit) is followed by WAIT on its connection and
    fails (StoreUnavailable upstream) unless that many replicas confirmed it in `wait_ms`."""

    def __init__(self, *args: Any, slot_connections: int = 64, retry_for_s: float = 3.0,
                 wait_replicas: int = 0, wait_ms: int = 1000, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slot_connections = slot_connections
        self.retry_for_s = retry_for_s
        self.wait_replicas = wait_replicas
        self.wait_ms = wait_ms
        self._node_clients: dict[str, aioredis.Redis] = {}
        self._client_kwargs = {k: v for k, v in kwargs.items() if k in (
            "username", "password", "ssl", "socket_timeout", "socket_connect_timeout",
            "decode_responses", "health_check_interval")}
        # (node "host:port", error class name) -> count; retries by kind; slot-map refreshes.
        self.node_errors: Counter[tuple[str, str]] = Counter()
        self.retries: Counter[str] = Counter()
        self.refreshes = 0
        self.blocked: dict[str, asyncio.Task[Any]] = {}

    # -- routing -------------------------------------------------------------------------------

    def node_name_for(self, key: Any) -> str:
        node = self.nodes_manager.get_node_from_slot(self.keyslot(key))
        return str(node.name)

    def node_client(self, name: str) -> aioredis.Redis:
        """A plain client on one node (host:port), with a blocking pool of `slot_connections`."""
        client = self._node_clients.get(name)
        if client is None:
            host, port = name.rsplit(":", 1)
            kwargs = dict(self._client_kwargs)
            if kwargs.pop("ssl", False):
                kwargs["connection_class"] = aioredis.SSLConnection
            pool = aioredis.BlockingConnectionPool(
                host=host, port=int(port), max_connections=self.slot_connections, timeout=10,
                **kwargs)
            client = aioredis.Redis(connection_pool=pool)
            self._node_clients[name] = client
        return client

    def client_for(self, key: Any) -> aioredis.Redis:
        return self.node_client(self.node_name_for(key))

    async def refresh(self) -> None:
        """Read the slot map again (after a redirection or a dead node)."""
        self.refreshes += 1
        try:
            await self.nodes_manager.initialize()
        except Exception as exc:  # noqa: BLE001 - the next attempt reports the real error
            log.debug("slot map refresh failed: %s", exc)

    def count_error(self, node: str, exc: BaseException) -> None:
        self.node_errors[(node, type(exc).__name__)] += 1

    async def retrying(self, attempt: Callable[[], Awaitable[T]], *, what: str) -> T:
        """Run `attempt()` (nothing applied when it raises a redirection or cannot connect) until
        it succeeds or `retry_for_s` passed; refreshes the slot map between tries."""
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.02
        while True:
            try:
                return await attempt()
            except REDIRECTS + _UNREACHABLE as exc:
                kind = "moved" if isinstance(exc, MovedError) else type(exc).__name__.lower()
                self.retries[kind] += 1
                if time.monotonic() + delay > deadline:
                    raise
                log.info("%s: %s; retrying", what, exc)
                await self.refresh()
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)

    async def _execute_command(self, target_node: Any, *args: Any, **kwargs: Any) -> Any:
        """One attempt of a plain command (RedisCluster retries around it): counted per node."""
        token = _IN_COMMAND.set(True)
        try:
            return await super()._execute_command(target_node, *args, **kwargs)
        except AttributeError as exc:
            # redis-py 8's asyncio cluster can hand a command a connection that another task
            # disconnected meanwhile (during a failover a failed command disconnects the node's
            # free connections): sending on it raises "'NoneType' object has no attribute
            # 'writelines'". That is a lost connection, not a bug of ours: raised as one, so
            # RedisCluster re-reads the slot map and retries as for any connection error (it was
            # a 500 in the kill test). Other AttributeErrors are bugs and propagate.
            if "'NoneType' object has no attribute" not in str(exc):
                raise
            self.count_error(str(target_node.name), exc)
            self.retries["connectionerror"] += 1
            raise ConnectionError(f"connection closed under the command: {exc}") from exc
        except REDIRECTS + _UNREACHABLE as exc:
            self.count_error(str(target_node.name), exc)
            self.retries["moved" if isinstance(exc, MovedError) else type(exc).__name__.lower()] += 1
            raise
        finally:
            _IN_COMMAND.reset(token)

    # -- transactions, scripts, blocking reads ---------------------------------------------------

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        if transaction:
            return SlotPipeline(self)
        return NodesPipeline(self)

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        """EVAL on the master of its keys' slot, with WAIT when replicas must confirm it."""
        if not self.wait_replicas:
            return await super().eval(script, numkeys, *keys_and_args)
        async with NodesPipeline(self, wait_replicas=self.wait_replicas) as p:
            p.eval(script, numkeys, *keys_and_args)
            (result,) = await p.execute()
        return result

    async def block_until_entry(self, stream: str, last_id: str, block_ms: int) -> None:
        """XREAD BLOCK on one stream (a cluster cannot block on streams of several slots):
        returns when an entry after `last_id` exists or `block_ms` passed. Reads nothing for
        anyone (no consumer group)."""
        try:
            await self.client_for(stream).xread({stream: last_id}, count=1, block=block_ms)
        except REDIRECTS + _UNREACHABLE as exc:
            self.count_error(self.node_name_for(stream), exc)
            await self.refresh()
        except ResponseError as exc:
            if "UNBLOCKED" not in str(exc):
                raise

    async def aclose(self) -> None:
        """Close everything; but RedisCluster itself calls aclose() on a CLUSTERDOWN answer to
        drop its connections and re-read the slot map: that keeps the slot-bound pools."""
        if _IN_COMMAND.get():
            await super().aclose()
            return
        tasks = list(self.blocked.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        self.blocked.clear()
        for client in list(self._node_clients.values()):
            await client.aclose()
            await client.connection_pool.disconnect()
        self._node_clients.clear()
        await super().aclose()


class SlotPipeline(Pipeline):
    """A redis-py asyncio Pipeline bound, at its first command, to the master of that command's
    slot. The store's transactions use it exactly as on a single Redis."""

    def __init__(self, cluster: ClusterClient) -> None:
        self.owner = cluster   # not `cluster`: that is Pipeline's CLUSTER command
        placeholder = aioredis.ConnectionPool()   # replaced by the slot's pool before first use
        super().__init__(placeholder, cluster.response_callbacks, True, None)
        self.node: str | None = None

    async def _bind(self, args: tuple[Any, ...]) -> None:
        """Pick the node of `args`' slot and take a connection of it (retried while none)."""
        key = first_key(args)

        async def attempt() -> None:
            name = self.owner.node_name_for(key)
            pool = self.owner.node_client(name).connection_pool
            conn = await _untyped(pool.get_connection)()
            self.connection_pool, self.connection, self.node = pool, conn, name

        await self.owner.retrying(attempt, what=f"connect for {args[0]}")

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        if self.connection is None:
            await self._bind(args)
            if args[0] == "WATCH":
                return await self._first_watch(*args, **options)
        try:
            return await _untyped(super().immediate_execute_command)(*args, **options)
        except REDIRECTS as exc:
            self.owner.count_error(self.node or "?", exc)
            await self.owner.refresh()
            raise WatchError(f"slot moved while watching: {exc}") from exc

    async def _first_watch(self, *args: Any, **options: Any) -> Any:
        """The first WATCH: nothing is held yet, so a redirection rebinds and tries again."""
        for _ in range(50):
            try:
                return await _untyped(super().immediate_execute_command)(*args, **options)
            except REDIRECTS as exc:
                self.owner.count_error(self.node or "?", exc)
                await self._release()
                await self.owner.refresh()
                await asyncio.sleep(0.02)
                await self._bind(args)
        return await _untyped(super().immediate_execute_command)(*args, **options)

    async def _release(self) -> None:
        if self.connection is not None:
            await self.connection.disconnect()
            await self.connection_pool.release(self.connection)
            self.connection = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        watched = self.watching
        if self.connection is None and self.command_stack:
            await self._bind(self.command_stack[0][0])
        stack = list(self.command_stack)
        try:
            return await super().execute(raise_on_error)
        except REDIRECTS + (ExecAbortError,) as exc:
            self.owner.count_error(self.node or "?", exc)
            if isinstance(exc, ExecAbortError) and not _redirected(exc):
                raise
            await self.owner.refresh()
            if watched:
                raise WatchError(f"slot moved during the transaction: {exc}") from exc
        # Queued without WATCH and refused as a whole (EXECABORT): nothing ran; run it again.
        return await self.owner.retrying(lambda: self._again(stack, raise_on_error),
                                           what="MULTI/EXEC")

    async def _again(self, stack: list[Any], raise_on_error: bool) -> list[Any]:
        await _untyped(self.reset)()
        self.command_stack = list(stack)
        await self._bind(stack[0][0])
        try:
            return await super().execute(raise_on_error)
        except ExecAbortError as exc:
            if _redirected(exc):
                raise TryAgainError(str(exc)) from exc
            raise


def _redirected(exc: BaseException) -> bool:
    text = str(exc)
    return any(word in text for word in ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"))
