"""Per-key request counting for the rate limit, in the same round trip as the key lookup.

A sliding one-second window estimated from two fixed windows (the approach of Cloudflare's and
nginx's limiters): with `cur` requests so far in this second and `prev` in the last one, the rate
is prev * (1 - elapsed fraction of this second) + cur. Counters live in the store, so every API
process sees the same count; each is one INCR with a two-second expiry, keyed by the key's hash
(known before the lookup answers, so counting costs no extra round trip).
"""
from __future__ import annotations

from typing import Any

import orjson

from server.store import keys as K
from server.store.catalog import hash_key
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["lookup_and_count", "estimate"]


@guarded
async def lookup_and_count(store: Store, secret: str, now: float) -> tuple[dict[str, Any] | None, float]:
    """(the key's record or None, the key's request rate over the last second, this one included)."""
    digest = hash_key(secret)
    second = int(now)
    async with store.redis.pipeline(transaction=False) as p:
        p.get(K.apikey(digest))
        p.incr(K.ratelimit(digest, second))
        p.pexpire(K.ratelimit(digest, second), 2000)
        p.get(K.ratelimit(digest, second - 1))
        raw, cur, _, prev = await p.execute()
    record = orjson.loads(raw) if raw else None
    return record, estimate(int(cur), int(prev or 0), now - second)


def estimate(cur: int, prev: int, elapsed: float) -> float:
    return prev * (1.0 - elapsed) + cur
