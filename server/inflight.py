"""Sharing one store read or compile among the callers that ask for it at once (the worker's
caches: server/rulecache.py, server/policy_cache.py)."""

from __future__ import annotations

import asyncio
from typing import TypeVar

__all__ = ["outcome"]

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
