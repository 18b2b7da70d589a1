"""What a script may write (compile time) and touch (run time): deny by default.

RestrictingNodeTransformer already rejects every AST node without a `visit_` method, `_`-names,
`exec`/`eval`-style names and `try/except*`. `ScriptPolicy` narrows it further for deskflow:
no classes, no generators, no async, imports only from ALLOWED_IMPORTS — each refusal a
"Line N: ..." string, so an upload gets all its reasons at once (API.md: 422, line-numbered).

The run-time half (guarded getattr etc.) lives in guards.py; the constants both halves share are
here, at module top, each with its reason.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable

from RestrictedPython.transformer import RestrictingNodeTransformer

from .modules import PROXY_NAMES

_Visited = ast.AST | Iterable[ast.AST] | None  # what a NodeTransformer visitor may return

# Modules a script may import, and the names each proxy exposes (modules.py builds the proxies).
# The real module objects never reach a script: a module leads to its own imports (sys, os, codecs).
ALLOWED_IMPORTS: frozenset[str] = frozenset({
    "json",      # dumps/loads only; no encoder classes (cls=, default hooks into trusted code)
    "re",        # matching; catastrophic backtracking is stopped by RLIMIT_CPU and the wall clock
    "math",      # pure functions; huge results hit the CPU or memory limit
    "datetime",  # date, time, datetime, timedelta, timezone: value types, no I/O
})

# Builtins a script gets. Everything else is absent, for the reason given in EXCLUDED_BUILTINS.
SAFE_BUILTINS: frozenset[str] = frozenset({
    "None", "True", "False", "abs", "all", "any", "bool", "callable", "chr", "dict", "divmod",
    "enumerate", "filter", "float", "int", "isinstance", "len", "list", "map", "max", "min",
    "next", "ord", "pow", "range", "repr", "reversed", "round", "set", "frozenset", "sorted",
    "str", "sum", "tuple", "zip",
    # exceptions a script may raise or catch (no BaseException: KeyboardInterrupt/SystemExit stay ours)
    "Exception", "ArithmeticError", "AssertionError", "AttributeError", "IndexError", "KeyError",
    "LookupError", "NameError", "NotImplementedError", "OverflowError", "RuntimeError",
    "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
})

EXCLUDED_BUILTINS: dict[str, str] = {
    "type": "walks to object and its __subclasses__(), and creates classes",
    "object": "the root of every escape through __subclasses__()",
    "vars": "reads any namespace, guards included",
    "dir": "lists internals to look up by name",
    "globals": "the module namespace holds the guards",
    "locals": "namespace introspection",
    "getattr": "bypasses the guarded attribute access",
    "setattr": "bypasses _write_",
    "delattr": "bypasses _write_",
    "hasattr": "probes names the guard refuses",
    "eval": "unrestricted code", "exec": "unrestricted code", "compile": "unrestricted code",
    "__import__": "replaced by the guarded importer",
    "open": "file system", "input": "stdin is the worker's channel", "print": "rewritten to _print_",
    "breakpoint": "debugger", "help": "imports pydoc", "exit": "ends the worker", "quit": "ends the worker",
    "super": "class machinery", "classmethod": "class machinery", "staticmethod": "class machinery",
    "property": "class machinery", "issubclass": "only useful with classes",
    "memoryview": "raw buffers", "bytearray": "mutable raw buffers", "bytes": "not needed; raw buffers",
    "id": "leaks addresses", "hash": "recursing hash of a deep tuple crashes CPython (C stack)",
    "format": "format specs reach __format__ of arbitrary objects; use f-strings",
    "iter": "two-argument form calls script callables from C; for loops suffice",
    "aiter": "async", "anext": "async", "ExceptionGroup": "only for try/except*, refused",
    "BaseException": "would catch our KeyboardInterrupt/SystemExit",
}

# Attribute names refused on every object at run time, on top of every "_"-prefixed name.
BLOCKED_ATTRIBUTES: frozenset[str] = frozenset({
    "format", "format_map",    # CVE-2023-41039: "{0.__class__}".format(x) reads any attribute
    "mro",                     # type.mro() reaches object
    "obj",                     # CVE-2024-47532: AttributeError.obj hands back the guarded object
    "with_traceback",          # exceptions -> tracebacks -> frames
})

# Prefixes of frame/code/generator/coroutine/traceback internals (CVE-2023-37271: gi_frame.f_back).
BLOCKED_PREFIXES: tuple[str, ...] = ("gi_", "cr_", "ag_", "f_", "tb_", "co_", "func_")

# Exceptions outside Exception. They are not builtins of a script (EXCLUDED_BUILTINS), and naming
# one is refused at compile time with a message that says so: "name 'BaseException' is not
# defined" at run time told a script writer nothing (issue 13).
RESERVED_EXCEPTIONS: frozenset[str] = frozenset({
    "BaseException",       # catches the three below as well as every Exception
    "SystemExit",          # the worker's own way out
    "KeyboardInterrupt",   # a signal to the worker, not to the script
    "GeneratorExit",       # generator machinery; scripts have no generators
})

MAX_SOURCE_BYTES = 64 * 1024
MAX_NESTING = 100          # AST depth; checked without recursion before RestrictedPython walks it
SCRIPT_FILENAME = "<script>"


class ScriptPolicy(RestrictingNodeTransformer):
    """RestrictedPython's transformer with deskflow's narrower language."""

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        # Classes bring metaclasses, descriptors and user-defined dunders (__eq__ on a "str").
        self.error(node, "class definitions are not allowed; use dicts and functions.")
        return node

    def visit_Yield(self, node: ast.Yield) -> ast.AST:
        # A suspended generator's finally would run after run() returns (issue 4: nothing outlives run()).
        self.error(node, "yield is not allowed (generators are not allowed).")
        return node

    def visit_YieldFrom(self, node: ast.YieldFrom) -> ast.AST:
        self.error(node, "yield from is not allowed (generators are not allowed).")
        return node

    def visit_Global(self, node: ast.Global) -> ast.AST:
        # Rebinding module names from inside run() is the shared-state trick; scripts don't need it.
        self.error(node, "global statements are not allowed.")
        return node

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        self.error(node, "nonlocal statements are not allowed.")
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> _Visited:
        for name in ast.walk(node.type) if node.type is not None else ():
            if isinstance(name, ast.Name) and name.id in RESERVED_EXCEPTIONS:
                self._reserved_reported().add(id(name))
                self.error(name, f"catching {name.id} is not allowed in scripts; "
                                 f'use "except Exception:" (it catches every error a script can handle).')
        out = super().visit_ExceptHandler(node)
        if isinstance(out, ast.ExceptHandler):
            # Every handler first hands what it caught to `_caught_` (sandbox/guards.py), which
            # raises a MemoryError again: a script that catches its own memory limit must not
            # go on as if it had not hit it (it would return whatever it could still allocate).
            # Added after the checks, so the names it needs (leading underscore) are ours alone.
            if out.name is None:
                out.name = "_caught_exc_"
            call = ast.Expr(ast.Call(func=ast.Name("_caught_", ast.Load()),
                                     args=[ast.Name(out.name, ast.Load())], keywords=[]))
            out.body.insert(0, ast.copy_location(call, out))
            ast.fix_missing_locations(out)
        return out

    def visit_Name(self, node: ast.Name) -> _Visited:
        if node.id in RESERVED_EXCEPTIONS and id(node) not in self._reserved_reported():
            self.error(node, f'"{node.id}" is not allowed in scripts: catching or raising '
                             f"{', '.join(sorted(RESERVED_EXCEPTIONS))} is reserved to the sandbox; "
                             f'use Exception ("except Exception:").')
        return super().visit_Name(node)

    def _reserved_reported(self) -> set[int]:
        reported: set[int] | None = getattr(self, "_reserved_names", None)
        if reported is None:
            reported = set()
            self._reserved_names = reported
        return reported

    def visit_Import(self, node: ast.Import) -> _Visited:
        for alias in node.names:
            if alias.name not in ALLOWED_IMPORTS:
                self.error(node, f'import of "{alias.name}" is not allowed; '
                                 f'allowed: {", ".join(sorted(ALLOWED_IMPORTS))}.')
        return super().visit_Import(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> _Visited:
        module = node.module or ""
        if node.level or module not in ALLOWED_IMPORTS:
            self.error(node, f'import from "{"." * node.level}{module}" is not allowed; '
                             f'allowed: {", ".join(sorted(ALLOWED_IMPORTS))}.')
        else:
            for alias in node.names:
                if alias.name not in PROXY_NAMES[module]:
                    self.error(node, f'"{alias.name}" is not available from {module}.')
        return super().visit_ImportFrom(node)
