"""Store errors. Redis client errors are translated here and nowhere else."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import redis.exceptions

__all__ = ["StoreError", "StoreUnavailable", "guarded"]

P = ParamSpec("P")
T = TypeVar("T")


class StoreError(Exception):
    """Base of the store's exceptions."""


class StoreUnavailable(StoreError):
    """Redis could not be reached or answered with a server-side failure: retry later (503)."""


_OUTAGES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
            redis.exceptions.BusyLoadingError, redis.exceptions.ClusterDownError,
            redis.exceptions.TryAgainError, redis.exceptions.ReadOnlyError, OSError)


def guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Re-raise an outage of Redis as StoreUnavailable (like httpx's map_httpcore_exceptions)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except _OUTAGES as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    return wrapper
