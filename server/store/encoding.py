"""How the store writes JSON values: compact orjson, as str (the clients decode replies)."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["dumps"]


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
