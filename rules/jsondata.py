"""JSON data helpers shared by the engine's modules."""
from __future__ import annotations

from typing import Any

import orjson


def json_copy(v: Any) -> Any:
    """A deep copy of JSON data, so results never share a container with rules or inputs."""
    t = type(v)
    if t is dict:  # (str items, the common case, without a call each)
        return {k: x if type(x) is str else json_copy(x) for k, x in v.items()}
    if t is list:
        return [x if type(x) is str else json_copy(x) for x in v]
    return v


# An explain entry's `seen` is the value the condition read, copied into the run record for every
# rule it failed; a tenant's 500 KiB subject read by 1,000 failing rules would otherwise make a
# 500 MB record. Past these bounds `seen` is a string: the text (or, for a list or an object, its
# compact JSON) cut to the bound, ending in SEEN_TRUNCATED.
SEEN_MAX_CHARS = 1_000   # a string's characters
SEEN_MAX_BYTES = 2_000   # a list's or an object's compact JSON
SEEN_TRUNCATED = "…[truncated]"


def _seen_cut(raw: bytes) -> str:
    return raw[:SEEN_MAX_BYTES].decode("utf-8", "ignore") + SEEN_TRUNCATED


def seen_copy(v: Any) -> Any:
    """`seen` for an explain entry: a copy of `v`, or past the bounds above the cut string."""
    t = type(v)
    if t is str:
        return v if len(v) <= SEEN_MAX_CHARS else v[:SEEN_MAX_CHARS] + SEEN_TRUNCATED
    if t is list or t is dict:
        if t is dict or len(v) > 8 or any(type(x) is not str or len(x) > 200 for x in v):
            try:
                raw = dumps_any(v)
            except TypeError:   # data orjson cannot write (an integer past 64 bits: never from
                return json_copy(v)   # the API, which refuses it) is kept as it is
            if len(raw) > SEEN_MAX_BYTES:
                return _seen_cut(raw)
        return json_copy(v)
    return v


def dumps_any(v: Any) -> bytes:
    """orjson's bytes of a value; odd data (never from the API: a set, a non-str key) as the
    closest JSON rather than an exception in the worker."""
    try:
        return orjson.dumps(v)
    except TypeError:
        return orjson.dumps(v, default=_plain, option=orjson.OPT_NON_STR_KEYS)


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
