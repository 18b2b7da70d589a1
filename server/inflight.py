"""Sharing one store read or compile among the callers that ask for it at once (the worker's
caches: server/rulecache.py, server/policy_cache.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["lead", "outcome"]

T = TypeVar("T")


async def outcome(pending: asyncio.Future[T]) -> T | None:
    """What another caller's read or compile gave; None when it failed (this caller then does it
    itself). A cancellation of this caller still cancels it (the shield keeps the other going)."""
    try:
        return await asyncio.shield(pending)
    except asyncio.CancelledError:
        if pending.cancelled():
            return None
        raise
    except Exception:  # noqa: BLE001 -- the caller that did it raises it; a waiter tries itself
        return None


async def lead(pending: dict[str, asyncio.Future[T]], key: str,
               work: Callable[[], Awaitable[T]]) -> T:
    """Do `work` as the caller the others wait on (`pending[key]` while it runs): they get its
    result, or, when it fails or is cancelled, do it themselves (`outcome` gives them None)."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    pending[key] = future
    try:
        result = await work()
    except BaseException:
        future.cancel()
        raise
    finally:
        if pending.get(key) is future:
            del pending[key]
    future.set_result(result)
    return result
