"""Upload-time refusals: every one is data ("Line N: ..."), none is an exception, none runs code."""
from __future__ import annotations

import time

import pytest

from sandbox import compile_script

RUN = "def run(event, ticket, ctx):\n    return None\n"


def refused(source: str) -> list[str]:
    result = compile_script(source)
    assert result.code is None, f"compiled: {source!r}"
    assert result.errors and all(e.startswith("Line ") for e in result.errors), result.errors
    return result.errors


def test_a_plain_script_compiles() -> None:
    result = compile_script("import json, re, math, datetime\nfrom datetime import timedelta\n" + RUN)
    assert result.ok and result.errors == []


@pytest.mark.parametrize("source, reason", [
    ("import os\n", 'import of "os" is not allowed'),
    ("import sys\n", 'import of "sys" is not allowed'),
    ("import string\n", 'import of "string" is not allowed'),          # string.Formatter advisories
    ("import json.decoder\n", 'import of "json.decoder" is not allowed'),
    ("import os.path as p\n", 'import of "os.path" is not allowed'),
    ("from json import decoder\n", '"decoder" is not available from json'),
    ("from json import JSONDecoder\n", '"JSONDecoder" is not available from json'),
    ("from re import _compiler\n", '"_compiler" is an invalid variable name'),
    ("from . import json\n", 'import from "." is not allowed'),
    ("from os import system\n", 'import from "os" is not allowed'),
    ("from json import *\n", '"*" imports are not allowed'),
])
def test_imports_outside_the_allow_list_are_refused(source: str, reason: str) -> None:
    errors = refused(source + RUN)
    assert any(reason in e for e in errors), errors
    assert errors[0].startswith("Line 1:")


@pytest.mark.parametrize("source", [
    "x = ().__class__.__bases__[0].__subclasses__()",
    "x = run.__globals__",
    "x = (lambda: 0).__code__",
    "x = [].__class__",
    "x = ctx._run",
    "def f(e):\n    return e.__traceback__.tb_frame",
    "x = (i for i in []).gi_frame.f_back.f_globals",        # CVE-2023-37271
    "x = __builtins__",
    "x = _getattr_",
    "x = __import__('os')",
    "x = ＿＿import＿＿('os')",                                # NFKC folds fullwidth low lines
])
def test_underscore_and_frame_names_are_refused(source: str) -> None:
    refused(source + "\n" + RUN)


def test_positional_only_parameters_cannot_shadow_guards() -> None:
    # CVE-2026-55830 / GHSA-ffg3-p8fm-mjx2: `def f(_getattr_, /)` disabled the guard in f's scope.
    for hook in ("_getattr_", "_getitem_", "_write_", "_print_", "_inplacevar_", "_getiter_"):
        refused(f"def f({hook}, /):\n    return 1\n" + RUN)


def test_try_star_is_refused() -> None:
    # CVE-2025-22153: try/except* type confusion.
    errors = refused("def run(e, t, c):\n    try:\n        pass\n    except* ValueError:\n        pass\n")
    assert errors[0].startswith("Line 2:")


@pytest.mark.parametrize("source, reason", [
    ("class A:\n    pass\n", "class definitions are not allowed"),
    ("class S(str):\n    def __eq__(self, o):\n        return True\n", "class definitions are not allowed"),
    ("def g():\n    yield 1\n", "yield is not allowed"),
    ("def g():\n    try:\n        yield 1\n    finally:\n        pass\n", "yield is not allowed"),
    ("def g():\n    yield from []\n", "yield from is not allowed"),
    ("x = 1\ndef g():\n    global x\n    x = 2\n", "global statements are not allowed"),
    ("async def g():\n    pass\n", "AsyncFunctionDef statements are not allowed"),
    ("x = eval('1')\n", "Eval calls are not allowed"),
    ("x = ｅｖａｌ('1')\n", "Eval calls are not allowed"),            # NFKC: fullwidth eval is eval
    ("exec('1')\n", "Exec calls are not allowed"),
    # class patterns read attributes unguarded: case str(__class__=k)
    ("def f(x):\n    match x:\n        case str(__class__=k):\n            return k\n", "Match statements are not allowed"),
])
def test_language_outside_the_policy_is_refused(source: str, reason: str) -> None:
    errors = refused(source + RUN)
    assert any(reason in e for e in errors), errors


def test_errors_carry_line_numbers_and_all_reasons() -> None:
    errors = refused("import os\n\ndef run(e, t, c):\n    x = e.__dict__\n    class K:\n        pass\n")
    assert [e.split(":")[0] for e in errors] == ["Line 1", "Line 4", "Line 5"]


@pytest.mark.parametrize("source, reason", [
    ("def run(e, t, c)\n    return 1\n", "SyntaxError"),
    ("x = 1\n", "must define run(event, ticket, ctx)"),
    ("def run(e):\n    pass\n", "must define run(event, ticket, ctx)"),
    ("x = '\x00'\n" + RUN, "NUL byte"),
    ("x = '\ud800'\n" + RUN, "surrogate"),
    ("x = " + "(" * 300 + "1" + ")" * 300 + "\n" + RUN, "nested"),
    ("x = " + "+".join(["a"] * 20000) + "\n" + RUN, "nested too deeply"),
    ("x = " + "[" * 150 + "]" * 150 + "\n" + RUN, "nested more than"),
    ("x = " + "-" * 30000 + "1\n" + RUN, "nested too deeply"),
    ("# " + "x" * 70000 + "\n" + RUN, "the limit is 65536"),
])
def test_odd_source_is_a_reason_not_a_crash(source: str, reason: str) -> None:
    errors = refused(source)
    assert any(reason in e for e in errors), errors


def test_non_text_source_is_refused() -> None:
    assert compile_script(b"def run(e, t, c): pass" ).errors == ["Line 1: the source must be text"]  # type: ignore[arg-type]


def test_constant_folding_does_not_build_huge_values_at_upload() -> None:
    started = time.perf_counter()
    assert compile_script("x = 2 ** 10 ** 10\ny = 'a' * 10 ** 12\n" + RUN).ok
    assert time.perf_counter() - started < 2
