"""Curated stand-ins for the modules a script may import (policy.ALLOWED_IMPORTS).

A script never holds a real module: `import json` binds a `ModuleProxy` whose members are vetted
functions and value types. A fresh proxy is built for every run, so nothing one run sets or
caches is seen by the next; proxies refuse attribute writes as well (guards._write_ refuses
them first).
"""
from __future__ import annotations

import datetime as _datetime
import json as _json
import math as _math
import re as _re
from typing import Any, Callable

_JSON_DUMPS_KEYWORDS = frozenset({"indent", "sort_keys", "separators", "ensure_ascii"})


def _json_dumps(obj: Any, **kwargs: Any) -> str:
    # No cls= (a script class would run inside the encoder) and no default= hook.
    unknown = set(kwargs) - _JSON_DUMPS_KEYWORDS
    if unknown:
        raise TypeError(f"json.dumps() got unexpected keyword(s): {', '.join(sorted(unknown))}")
    return _json.dumps(obj, **kwargs)


def _json_loads(s: str | bytes) -> Any:
    if type(s) not in (str, bytes):
        raise TypeError("json.loads() takes a str")
    return _json.loads(s)


_RE_FLAGS = ("A", "ASCII", "I", "IGNORECASE", "M", "MULTILINE", "S", "DOTALL", "U", "UNICODE",
             "X", "VERBOSE", "NOFLAG")
_RE_FUNCTIONS = ("compile", "search", "match", "fullmatch", "findall", "finditer", "split",
                 "sub", "subn", "escape")


def _members(name: str) -> dict[str, Any]:
    if name == "json":
        return {"dumps": _json_dumps, "loads": _json_loads, "JSONDecodeError": _json.JSONDecodeError}
    if name == "re":
        members: dict[str, Any] = {n: getattr(_re, n) for n in _RE_FUNCTIONS + _RE_FLAGS}
        members["error"] = _re.error
        return members
    if name == "math":
        return {n: getattr(_math, n) for n in dir(_math) if not n.startswith("_")}
    if name == "datetime":
        return {"date": _datetime.date, "time": _datetime.time, "datetime": _datetime.datetime,
                "timedelta": _datetime.timedelta, "timezone": _datetime.timezone,
                "MINYEAR": _datetime.MINYEAR, "MAXYEAR": _datetime.MAXYEAR,
                "UTC": _datetime.timezone.utc}
    raise KeyError(name)


# What each proxy exposes; the compile-time policy checks `from m import name` against it.
PROXY_NAMES: dict[str, frozenset[str]] = {
    name: frozenset(_members(name)) for name in ("json", "re", "math", "datetime")
}


class ModuleProxy:
    """A read-only namespace standing in for a module. Members are plain functions and types."""

    __slots__ = ("_proxy_name", "_proxy_members")

    def __init__(self, name: str, members: dict[str, Any]) -> None:
        object.__setattr__(self, "_proxy_name", name)
        object.__setattr__(self, "_proxy_members", members)

    def __getattr__(self, name: str) -> Any:
        members: dict[str, Any] = object.__getattribute__(self, "_proxy_members")
        try:
            return members[name]
        except KeyError:
            module = object.__getattribute__(self, "_proxy_name")
            raise AttributeError(f"module {module!r} has no attribute {name!r} in scripts") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise TypeError("modules are read-only in scripts")

    def __delattr__(self, name: str) -> None:
        raise TypeError("modules are read-only in scripts")

    def __repr__(self) -> str:
        return f"<module {object.__getattribute__(self, '_proxy_name')!r} (sandboxed)>"


def build_module(name: str) -> ModuleProxy:
    """A fresh proxy for one run."""
    return ModuleProxy(name, _members(name))


ModuleFactory = Callable[[str], ModuleProxy]
