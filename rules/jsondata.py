"""JSON data helpers shared by the engine's modules."""
from __future__ import annotations

from typing import Any


def json_copy(v: Any) -> Any:
    """A deep copy of JSON data, so results never share a container with rules or inputs."""
    t = type(v)
    if t is dict:  # (str items, the common case, without a call each)
        return {k: x if type(x) is str else json_copy(x) for k, x in v.items()}
    if t is list:
        return [x if type(x) is str else json_copy(x) for x in v]
    return v
