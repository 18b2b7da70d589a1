"""Script-made values -> exact built-in JSON types, before trusted code looks at them.

Runs in the worker. Type checks are `type(x) is str`, never isinstance, and the walk uses an
explicit stack: a 300,000-deep list cannot overflow the C stack here, and a self-referencing dict
stops at the depth or size cap. The result shares no mutable object with the input.
"""
from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 64
_INT_RANGE = (-(2**63), 2**64 - 1)   # what orjson (and most JSON peers) carry exactly


class Unconvertible(ValueError):
    """`too_large` tells a size-cap breach from a wrong type."""

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        self.too_large = too_large
        super().__init__(reason)


def to_plain(value: Any, *, max_bytes: int, what: str = "value") -> Any:
    budget = max_bytes
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int, str]] = [(value, holder, 0, 0, what)]
    while stack:
        src, parent, key, depth, path = stack.pop()
        kind = type(src)
        cost = 4
        if src is None or kind is bool:
            out = src
        elif kind is int:
            if not _INT_RANGE[0] <= src <= _INT_RANGE[1]:
                raise Unconvertible(f"{path}: integer out of the 64-bit range")
            out = src
        elif kind is float:
            if not math.isfinite(src):
                raise Unconvertible(f"{path}: {src!r} is not a JSON number")
            out = src
        elif kind is str:
            cost += len(src)
            if not src.isascii() and not _is_utf8(src):
                raise Unconvertible(f"{path}: text with a lone surrogate is not valid JSON")
            out = src
        elif kind is dict or kind is list or kind is tuple:
            if depth >= MAX_DEPTH:
                raise Unconvertible(f"{path}: nested more than {MAX_DEPTH} levels")
            if len(src) > budget:
                raise Unconvertible(f"{what} is over the {max_bytes}-byte limit", too_large=True)
            if kind is dict:
                out = {}
                for k, v in list(src.items()):
                    if type(k) is not str:
                        raise Unconvertible(f"{path}: keys must be strings, not {type(k).__name__}")
                    if not k.isascii() and not _is_utf8(k):
                        raise Unconvertible(f"{path}: a key with a lone surrogate is not valid JSON")
                    cost += len(k) + 4
                    out[k] = None
                    stack.append((v, out, k, depth + 1, f"{path}.{k}"))
            else:
                items = list(src)
                out = [None] * len(items)
                for i, v in enumerate(items):
                    stack.append((v, out, i, depth + 1, f"{path}[{i}]"))
        else:
            raise Unconvertible(f"{path}: {kind.__name__} is not a JSON value")
        budget -= cost
        if budget < 0:
            raise Unconvertible(f"{what} is over the {max_bytes}-byte limit", too_large=True)
        parent[key] = out
    return holder[0]


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(text: str) -> str:
    """Text that can cross the pipe: lone surrogates become "?" (orjson refuses them)."""
    return text if text.isascii() or _is_utf8(text) else text.encode("utf-8", "replace").decode("utf-8")


# What one outbound request may carry besides its body (checked by the worker before the call
# crosses the pipe, and again by the broker): every header, query value and form field costs the
# event loop work when the trusted side checks, encodes and sends it, so their number and size are
# bounded, not only the frame's 16 MiB. 100,000 headers cost the loop 1.3 s per call.
MAX_HEADERS = 100                 # header names of one request
MAX_HEADER_CHARS = 32 * 1024      # their names and values together
MAX_PARAMS = 1000                 # query values of one request (a list value counts each item)
MAX_PARAMS_CHARS = 8192           # their names and values together (the URL's own limit)
MAX_FORM_FIELDS = 1000            # `data=` given as a dict of form fields


def fields_problem(value: Any, what: str, max_items: int, max_chars: int) -> str | None:
    """Why `value` (a dict of strings, or of strings, numbers and lists of them) is over its
    bounds, or None; reads at most `max_items` entries, whatever the dict's size. Values of other
    types are left to the caller's own type checks."""
    if type(value) is not dict:
        return None
    if len(value) > max_items:
        return f"{what}: {len(value)} entries are over the limit of {max_items}"
    items = chars = 0
    for key, v in value.items():
        values = v if type(v) in (list, tuple) else (v,)
        items += len(values)
        if items > max_items:
            return f"{what}: more than {max_items} values (the limit)"
        chars += len(key) if type(key) is str else 0
        for one in values:
            chars += len(one) if type(one) is str else 24
        if chars > max_chars:
            return f"{what}: more than {max_chars} characters of names and values (the limit)"
    return None
