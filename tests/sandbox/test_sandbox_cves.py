"""The RestrictedPython advisories of 2026 as classes, and the reserved exceptions.

CVE-2026-55830: positional-only (and other) parameters named like a guard (`_getattr_`, `_write_`,
...) shadowed the guard inside the function. CVE-2026-76825: `string.Formatter` and the format
methods walk attributes ("{0.__class__}"). pyproject pins restrictedpython>=8.4; these tests hold
whatever the installed version, through deskflow's own policy and guards."""
from __future__ import annotations

import pytest

from sandbox import compile_script

S = "import json, re, math, datetime\n\ndef run(event, ticket, ctx):\n"
GUARDS = ("_getattr_", "_getitem_", "_getiter_", "_write_", "_print_", "_inplacevar_", "_apply_",
          "_unpack_sequence_", "_iter_unpack_sequence_", "_print", "__builtins__")
SHADOWING_FORMS = {
    "positional_only": "def f({g}, /):\n    return 1\n",
    "positional_only_default": "def f(a, {g}=None, /):\n    return a\n",
    "positional_only_then_more": "def f({g}, /, b=1, *, c=2):\n    return b\n",
    "lambda_positional_only": "f = lambda {g}, /: 1\n",
    "keyword_only": "def f(*, {g}=None):\n    return 1\n",
    "varargs": "def f(*{g}):\n    return 1\n",
    "varkw": "def f(**{g}):\n    return 1\n",
    "nested_in_run": "def run(event, ticket, ctx):\n    def g({g}, /):\n        return json.dumps\n    return None\n",
}


def body(code: str) -> str:
    return S + "".join(f"    {line}\n" for line in code.strip("\n").split("\n"))


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("form", sorted(SHADOWING_FORMS))
def test_a_parameter_cannot_shadow_a_guard(form: str, guard: str) -> None:
    source = SHADOWING_FORMS[form].format(g=guard)
    if "def run" not in source:
        source += "def run(event, ticket, ctx):\n    return None\n"
    result = compile_script(source)
    assert result.code is None
    assert any(f'"{guard}" is an invalid variable name' in e and e.startswith("Line ") for e in result.errors), result.errors


def test_positional_only_parameters_themselves_still_work(sandbox) -> None:
    source = ("def add(a, b, /, *, scale=1):\n    return (a + b) * scale\n\n"
              "def run(event, ticket, ctx, /):\n    return {'custom': {'n': add(1, 2, scale=2)}}\n")
    result = sandbox.run(source)
    assert result.error is None and result.updates == {"custom": {"n": 6}}


def test_a_guard_named_positional_only_parameter_cannot_disable_the_write_guard(sandbox) -> None:
    result = sandbox.run(S + "    def f(_write_, /):\n        json.dumps = None\n    f(1)\n")
    assert result.error["code"] == "script_error"
    assert "_write_" in result.error["message"]


@pytest.mark.parametrize("source", [
    "import string\n",
    "from string import Formatter\n",
    "import _string\n",
    "from json import Formatter\n",
])
def test_string_formatter_cannot_be_imported(source: str) -> None:
    result = compile_script(source + "def run(event, ticket, ctx):\n    return None\n")
    assert result.code is None and result.errors[0].startswith("Line 1:")


FORMAT_WALKS = {
    "format": "x = '{0.__class__}'.format(ticket)",
    "format_index_then_attr": "x = '{0[0].__class__}'.format([1])",
    "format_map": "x = '{t.__class__}'.format_map({'t': ticket})",
    "unbound_str_format": "x = str.format('{0.__class__.__base__}', 1)",
    "unbound_format_map": "x = str.format_map('{a.__class__}', {'a': 1})",
    "format_as_value": "f = '{0.__globals__}'.format\nx = f(run)",
    "format_through_map": "x = list(map('{0.__class__}'.format, [1]))",
    "format_through_sorted_key": "x = sorted([1], key='{0.__class__}'.format)",
    "format_through_dict_get": "x = {'f': ''}.get('f').format_map({})",
    "datetime_format": "x = '{0.__class__}'.format(datetime.datetime(2026, 1, 1))",
    "json_module_attr": "x = json.format",
    "format_builtin": "x = format(1, '')",
}


@pytest.mark.parametrize("name", sorted(FORMAT_WALKS))
def test_format_strings_cannot_walk_to_dunders(sandbox, name: str) -> None:
    result = sandbox.run(body(FORMAT_WALKS[name] + "\nreturn {'custom': {'x': repr(x)}}"))
    assert result.error is not None and result.error["code"] == "script_error", result
    assert result.updates is None
    assert "<class" not in result.error["message"] and "<function" not in result.error["message"]
    sandbox.still_serving()


def test_f_strings_format_values_but_not_attributes(sandbox) -> None:
    ok = sandbox.run(body("n = 3.14159\nw = 8\nreturn {'custom': {'x': f'{n:>{w}.2f}|{n!r}'}}"))
    assert ok.error is None and ok.updates == {"custom": {"x": "    3.14|3.14159"}}
    refused = compile_script(body("return {'custom': {'x': f'{ticket.__class__}'}}"))
    assert refused.code is None and "__class__" in refused.errors[0]
    nested = compile_script(body("w = 1\nreturn {'custom': {'x': f'{w:{w.__class__}}'}}"))
    assert nested.code is None


# -- reserved exceptions (issue 13: "name 'BaseException' is not defined" said nothing useful) ---

@pytest.mark.parametrize("clause, name, line", [
    ("except BaseException:", "BaseException", 6),
    ("except BaseException as exc:", "BaseException", 6),
    ("except (ValueError, SystemExit):", "SystemExit", 6),
    ("except KeyboardInterrupt:", "KeyboardInterrupt", 6),
    ("except GeneratorExit:", "GeneratorExit", 6),
])
def test_catching_a_reserved_exception_is_refused_with_its_line(clause: str, name: str, line: int) -> None:
    result = compile_script(body(f"try:\n    x = 1\n{clause}\n    x = 2\nreturn None"))
    assert result.code is None
    assert result.errors == [f'Line {line}: catching {name} is not allowed in scripts; use "except Exception:" '
                             f"(it catches every error a script can handle)."]


@pytest.mark.parametrize("code", ["raise SystemExit(1)", "e = BaseException", "raise KeyboardInterrupt"])
def test_naming_a_reserved_exception_is_refused(code: str) -> None:
    result = compile_script(body(code))
    assert result.code is None
    assert result.errors[0].startswith("Line 4: ") and "is not allowed in scripts" in result.errors[0]
    assert 'use Exception ("except Exception:")' in result.errors[0]


def test_except_exception_still_works(sandbox) -> None:
    result = sandbox.run(body("try:\n    1 / 0\nexcept Exception as exc:\n    return {'custom': {'e': str(exc)}}"))
    assert result.error is None and result.updates == {"custom": {"e": "division by zero"}}


def test_a_stored_script_with_except_base_exception_fails_with_the_reason(sandbox) -> None:
    result = sandbox.run(body("try:\n    pass\nexcept BaseException:\n    pass\nreturn None"))
    assert result.error["code"] == "script_error"
    assert "catching BaseException is not allowed in scripts" in result.error["message"]
