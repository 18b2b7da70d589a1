"""Run-time guards for restricted code: the functions RestrictedPython's output calls.

compile_restricted rewrites `a.b` to `_getattr_(a, "b")`, `a[b]` to `_getitem_(a, b)`, loops to
`_getiter_(x)`, assignments into objects to `_write_(a)`, `x += y` to `_inplacevar_("+=", x, y)`,
`f(*a, **k)` to `_apply_(f, *a, **k)` and `print` to `_print_`. `script_globals()` builds a fresh
namespace for one run with these and the minimal builtins of policy.SAFE_BUILTINS.
"""
from __future__ import annotations

import builtins
import operator
import re
import types
from collections.abc import Callable
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from .modules import ModuleProxy, build_module
from .policy import ALLOWED_IMPORTS, BLOCKED_ATTRIBUTES, BLOCKED_PREFIXES, SAFE_BUILTINS

# Objects whose items a script may read: plain data, regex matches (m[1]) and nothing with a
# __getitem__ of its own (mappingproxy, type.__dict__ ... are unreachable, and stay refused here).
SUBSCRIPTABLE: frozenset[type] = frozenset({dict, list, tuple, str, range, re.Match})
# Objects a script may write into (`d[k] = v`, `l[0] = v`): only the plain containers it owns.
WRITABLE: frozenset[type] = frozenset({dict, list, set})
# Results never handed to a script, whatever attribute led to them (defence in depth).
FORBIDDEN_RESULTS: tuple[type, ...] = (
    types.ModuleType, types.FrameType, types.CodeType, types.TracebackType,
    types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType,
)
_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior, "^=": operator.ixor,
    "@=": operator.imatmul,
}


def guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    if type(name) is not str:
        raise TypeError("attribute names must be strings")
    if name.startswith("_") or name in BLOCKED_ATTRIBUTES or name.startswith(BLOCKED_PREFIXES):
        raise AttributeError(f'"{name}" is not accessible in scripts')
    if isinstance(obj, FORBIDDEN_RESULTS):
        raise AttributeError(f"{type(obj).__name__} objects are not accessible in scripts")
    value = getattr(obj, name, *default)
    if isinstance(value, FORBIDDEN_RESULTS):
        raise AttributeError(f'"{name}" is not accessible in scripts')
    return value


def guarded_getitem(obj: Any, key: Any) -> Any:
    if type(obj) not in SUBSCRIPTABLE:
        raise TypeError(f"{type(obj).__name__} objects cannot be indexed in scripts")
    return obj[key]


def guarded_write(obj: Any) -> Any:
    if type(obj) not in WRITABLE:
        raise TypeError(f"{type(obj).__name__} objects are read-only in scripts")
    return obj


def guarded_inplacevar(op: str, x: Any, y: Any) -> Any:
    fn = _INPLACE.get(op)
    if fn is None:
        raise SyntaxError(f"{op} is not supported")
    return fn(x, y)


def guarded_apply(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return f(*args, **kwargs)


def guarded_iter(obj: Any) -> Any:
    if type(obj) is ModuleProxy:
        raise TypeError("modules are not iterable in scripts")
    return iter(obj)


class _Importer:
    """`import json` -> this run's proxy; anything else is ImportError (policy refuses it first)."""

    def __init__(self) -> None:
        self.modules: dict[str, ModuleProxy] = {}

    def __call__(self, name: str, globals: Any = None, locals: Any = None,
                 fromlist: Any = (), level: int = 0) -> ModuleProxy:
        if level != 0 or type(name) is not str or name not in ALLOWED_IMPORTS:
            raise ImportError(f"import of {name!r} is not allowed")
        if name not in self.modules:
            self.modules[name] = build_module(name)
        return self.modules[name]


def caught(exc: BaseException) -> None:
    """Called first in every `except` handler of a script (sandbox/policy.py): a MemoryError goes
    on up, so the run ends memory_limit whatever the script catches."""
    if isinstance(exc, MemoryError):
        raise exc


def script_globals(print_factory: Callable[..., Any]) -> dict[str, Any]:
    """A fresh namespace for one run. `print_factory` is RestrictedPython's `_print_` hook."""
    safe = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
    safe["__import__"] = _Importer()
    return {
        "__builtins__": safe,
        "__name__": "script",
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": guarded_iter,
        "_write_": guarded_write,
        "_inplacevar_": guarded_inplacevar,
        "_apply_": guarded_apply,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_print_": print_factory,
        "_caught_": caught,
    }
