"""Store errors. Redis client errors are translated here and nowhere else."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import redis.exceptions

__all__ = ["StoreError", "StoreUnavailable", "ReplicaTimeout", "guarded"]

P = ParamSpec("P")
T = TypeVar("T")


class StoreError(Exception):
    """Base of the store's exceptions."""


class StoreUnavailable(StoreError):
    """Redis could not be reached or answered with a server-side failure: retry later (503)."""


class ReplicaTimeout(StoreUnavailable):
    """WAIT confirmed fewer replicas than DESKFLOW_REDIS_WAIT_REPLICAS asks for: the write may not
    survive a failover, so it is not acknowledged (503; the client sends it again)."""


_OUTAGES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
            redis.exceptions.BusyLoadingError, redis.exceptions.ClusterDownError,
            redis.exceptions.TryAgainError, redis.exceptions.ReadOnlyError, OSError,
            # Redis Cluster: a slot still moving after the client's retries (resharding), a slot
            # no master serves (failover in progress), no node reachable at all.
            redis.exceptions.AskError, redis.exceptions.SlotNotCoveredError,
            # ... and redis-py's "TTL exhausted.": one command redirected 16 times (MOVED, ASK,
            # TRYAGAIN) while a slot moved, under load, or between two masters that each named
            # the other; raised as it was, it ended every worker process of the reshard test
            redis.exceptions.ClusterError)
# RedisClusterException is also what the client raises for a bug (keys of two slots in one
# command): only these messages of it are outages.
_CLUSTER_OUTAGE_TEXT = ("Redis Cluster cannot be connected", "All slots are not covered",
                        "could not agree on a valid slots cache")


def _outage(exc: BaseException) -> bool:
    if isinstance(exc, _OUTAGES):
        return True
    return isinstance(exc, redis.exceptions.RedisClusterException) and any(
        t in str(exc) for t in _CLUSTER_OUTAGE_TEXT)


def guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Re-raise an outage of Redis as StoreUnavailable (like httpx's map_httpcore_exceptions)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if not _outage(exc):
                raise
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    return wrapper
