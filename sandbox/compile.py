"""compile_script(source) -> CompileResult: the upload-time check (API.md: 422 with line numbers).

Parses and transforms only: no script code runs here, so it is safe in the API process. Every way
odd source can make the compiler fail (SyntaxError, RecursionError on deep expressions,
MemoryError, ValueError on NUL bytes) comes back as a "Line N: ..." reason, never an exception.
The worker calls the same function and caches the code object per script version.
"""
from __future__ import annotations

import ast
import dataclasses
import types

from RestrictedPython.compile import compile_restricted_exec

from .policy import MAX_NESTING, MAX_SOURCE_BYTES, SCRIPT_FILENAME, ScriptPolicy


@dataclasses.dataclass(frozen=True)
class CompileResult:
    code: types.CodeType | None
    errors: list[str]
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code is not None


def compile_script(source: str) -> CompileResult:
    if type(source) is not str:
        return _refuse(1, "the source must be text")
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError:
        return _refuse(1, "the source is not valid UTF-8 text (lone surrogate)")
    if size > MAX_SOURCE_BYTES:
        return _refuse(1, f"the source is {size} bytes; the limit is {MAX_SOURCE_BYTES}")
    if "\x00" in source:
        return _refuse(source[: source.index("\x00")].count("\n") + 1, "the source contains a NUL byte")
    try:
        tree = ast.parse(source, filename=SCRIPT_FILENAME)
    except SyntaxError as exc:
        return _refuse(exc.lineno or 1, f"SyntaxError: {exc.msg}")
    except (RecursionError, MemoryError):
        return _refuse(1, "the source is nested too deeply to compile")
    except ValueError as exc:
        return _refuse(1, f"the source cannot be parsed: {exc}")
    deep = _too_deep(tree)
    if deep is not None:
        return _refuse(deep, f"code is nested more than {MAX_NESTING} levels deep")
    try:
        result = compile_restricted_exec(tree, filename=SCRIPT_FILENAME, policy=ScriptPolicy)
    except (RecursionError, MemoryError):
        return _refuse(1, "the source is nested too deeply to compile")
    except (SyntaxError, ValueError, TypeError) as exc:
        return _refuse(getattr(exc, "lineno", None) or 1, f"{type(exc).__name__}: {exc}")
    errors = list(result.errors)
    if not errors and not _defines_run(tree):
        errors.append("Line 1: the script must define run(event, ticket, ctx) at the top level")
    if errors:
        return CompileResult(None, errors, list(result.warnings))
    return CompileResult(result.code, [], list(result.warnings))


def _refuse(line: int, reason: str) -> CompileResult:
    return CompileResult(None, [f"Line {line}: {reason}"])


def _too_deep(tree: ast.AST) -> int | None:
    """The line of the first node deeper than MAX_NESTING, walking with a stack (no recursion)."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return getattr(node, "lineno", 1)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return None


def _defines_run(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "run":
            args = node.args
            positional = len(args.posonlyargs) + len(args.args)
            return positional >= 3 or args.vararg is not None
    return False
