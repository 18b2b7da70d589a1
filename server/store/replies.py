"""Typed views of redis-py replies.

The store's clients are opened with `decode_responses=True`, so every reply is `str`, but redis-py
types them `bytes | str` (or `Any`) because it cannot know the flag. These helpers say "this
client decodes" once, with a check that fails loudly if a client ever stops decoding, instead of a
`# type: ignore` at each call site.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import orjson

__all__ = ["text", "text_or_none", "texts", "text_map", "scored", "entries", "json_or_none"]


def text(reply: Any) -> str:
    """A reply that must be a string (a decoded bulk string)."""
    if type(reply) is not str:
        raise TypeError(f"expected a decoded str reply, got {type(reply).__name__}")
    return reply


def text_or_none(reply: Any) -> str | None:
    """A reply that is a string or nil (GET, HGET on a missing key or field)."""
    return None if reply is None else text(reply)


def texts(replies: Iterable[Any]) -> list[str]:
    """A multi-bulk reply of strings (SMEMBERS, ZRANGE, HKEYS)."""
    return [text(r) for r in replies]


def text_map(reply: Mapping[Any, Any] | None) -> dict[str, str]:
    """A hash reply (HGETALL, a stream entry's fields); nil reads as empty."""
    return {text(k): text(v) for k, v in (reply or {}).items()}


def scored(replies: Iterable[Any]) -> list[tuple[str, float]]:
    """A sorted-set reply read `withscores=True`: (member, score) pairs."""
    return [(text(m), float(s)) for m, s in replies]


def entries(replies: Iterable[Any] | None) -> list[tuple[str, dict[str, str]]]:
    """A stream reply (XRANGE, XREVRANGE): (entry id, fields) pairs; nil reads as empty."""
    return [(text(i), text_map(f)) for i, f in (replies or [])]


def json_or_none(reply: Any) -> dict[str, Any] | None:
    """A stored JSON object (GET, HGET), or None when the key or field is missing."""
    return cast("dict[str, Any]", orjson.loads(reply)) if reply else None
