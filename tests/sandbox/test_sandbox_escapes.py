"""Escape attempts that compile: each fails at run time with script_error (or invalid_output), in
the worker, and the same pool then serves an ordinary script. Advisories are named where they apply."""
from __future__ import annotations

import pytest

from sandbox.guards import guarded_getattr

S = "import json, re, math, datetime\n\ndef run(event, ticket, ctx):\n"


def body(code: str) -> str:
    return S + "".join(f"    {line}\n" for line in code.strip("\n").split("\n"))


RUNTIME_ESCAPES = {
    # CVE-2023-41039: format strings walk attributes ("{0.__class__}") - format/format_map refused
    "str_format": "return {'custom': {'x': '{0.__class__}'.format(1)}}",
    "str_format_via_type": "return {'custom': {'x': str.format('{0.__class__.__mro__}', 1)}}",
    "format_map": "return {'custom': {'x': '{a.__class__}'.format_map({'a': 1})}}",
    "format_through_map": "f = map('{0.__class__}'.format, [1])\nreturn None",
    # CVE-2024-47532: AttributeError.obj hands back the object the guard protected
    "attribute_error_obj": "try:\n    ctx.nothing\nexcept AttributeError as e:\n    return {'custom': {'x': repr(e.obj)}}",
    "with_traceback": "try:\n    1/0\nexcept Exception as e:\n    return {'custom': {'x': repr(e.with_traceback(None))}}",
    # the builtins a sandbox escape starts from are simply absent
    "type": "return {'custom': {'x': repr(type(1))}}",
    "vars": "return {'custom': {'x': repr(vars())}}",
    "dir": "return {'custom': {'x': dir(ctx)}}",
    "globals": "return {'custom': {'x': repr(globals())}}",
    "locals": "return {'custom': {'x': repr(locals())}}",
    "getattr": "return {'custom': {'x': repr(getattr(ctx, '_run'))}}",
    "setattr": "setattr(json, 'dumps', None)",
    "open": "return {'custom': {'x': open('/etc/passwd').read()}}",
    "object": "return {'custom': {'x': repr(object)}}",
    "hash_builtin": "return {'custom': {'x': hash('a')}}",
    "compile_builtin": "c = compile\nreturn None",
    "iter_two_argument": "return {'custom': {'x': list(iter(int, 1))}}",
    "mro": "return {'custom': {'x': repr(datetime.datetime.mro())}}",
    # ctx exposes only its documented surface
    "ctx_http_client": "return {'custom': {'x': repr(ctx.http.client)}}",
    "ctx_broker": "return {'custom': {'x': repr(ctx.broker)}}",
    "ctx_secrets": "return {'custom': {'x': repr(ctx.secrets)}}",
    "ctx_write": "ctx.workspace = 'other'\nreturn None",
    "ctx_http_write": "ctx.http.get = None\nreturn None",
    # modules are curated proxies: no way back to the real module or its imports
    "json_internals": "return {'custom': {'x': repr(json.decoder)}}",
    "json_codecs": "return {'custom': {'x': repr(json.codecs)}}",
    "re_internals": "return {'custom': {'x': repr(re.sre_compile)}}",
    "re_functools": "return {'custom': {'x': repr(re.functools)}}",
    "datetime_sys": "return {'custom': {'x': repr(datetime.sys)}}",
    "module_write": "json.dumps = None\nreturn None",
    "module_item": "return {'custom': {'x': repr(json['dumps'])}}",
    "module_iter": "return {'custom': {'x': [m for m in json]}}",
    "json_encoder_class": "return {'custom': {'x': json.dumps({}, cls=dict)}}",
    "json_default_hook": "return {'custom': {'x': json.dumps(ctx, default=repr)}}",
    # guarded item access and writes
    "function_attribute_write": "run.x = 1\nreturn None",
    "function_globals_prefix": "return {'custom': {'x': repr(run.func_globals)}}",
    "frame_prefix": "g = (i for i in [1])\nreturn {'custom': {'x': repr(g.gi_running)}}",
    "response_internals": "return {'custom': {'x': repr(ctx.http.get.im_self)}}",
    "printed_is_text_not_an_object": "print(1)\nreturn {'custom': {'x': repr(printed.run)}}",
    "del_module_member": "del json.dumps\nreturn None",
    "del_ctx_member": "del ctx.http\nreturn None",
    "with_on_ctx": "with ctx as c:\n    pass\nreturn None",
    "json_loads_hook": "return {'custom': {'x': json.loads('{}', object_hook=repr)}}",
    "print_to_a_file": "print('x', file=ctx)\nreturn {'custom': {'x': repr(printed.run)}}",
    "tuple_write": "t = (1, 2)\nt[0] = 3\nreturn None",
    "string_index_write": "s = 'abc'\ns[0] = 'x'\nreturn None",
}


@pytest.mark.parametrize("name", sorted(RUNTIME_ESCAPES))
def test_runtime_escape_fails_cleanly_and_pool_keeps_serving(sandbox, name: str) -> None:
    result = sandbox.run(body(RUNTIME_ESCAPES[name]))
    assert result.error is not None, result
    assert result.error["code"] == "script_error", result.error
    assert result.error["message"].startswith("Line "), result.error
    assert result.updates is None
    sandbox.still_serving()


def test_escape_attempts_are_refused_at_upload_when_the_pool_sees_them(sandbox) -> None:
    # The pool compiles with the same policy: an uncompilable script is a script_error, not a crash.
    result = sandbox.run(body("x = ().__class__.__base__.__subclasses__()\nreturn None"))
    assert result.error["code"] == "script_error"
    assert "__class__" in result.error["message"]
    sandbox.still_serving()


def test_guarded_getattr_refuses_frames_even_without_the_compiler() -> None:
    # CVE-2023-37271 defence in depth: were gi_frame ever reached dynamically, the guard refuses it.
    gen = (i for i in [1])
    for name in ("gi_frame", "gi_code", "f_back", "tb_frame", "co_code", "cr_frame", "ag_frame",
                 "format", "format_map", "mro", "obj", "__class__", "_x"):
        with pytest.raises(AttributeError):
            guarded_getattr(gen if name.startswith("gi_") else "s", name)
    with pytest.raises(AttributeError):
        guarded_getattr(gen, "send")                 # generators are opaque to scripts
    assert guarded_getattr("s", "upper")() == "S"


def test_guards_cannot_be_disabled_by_a_guard_named_parameter(sandbox) -> None:
    # CVE-2026-55830: positional-only parameters named like a guard. Refused before running.
    result = sandbox.run(S + "    def f(_write_, /):\n        json.dumps = None\n    f(1)\n")
    assert result.error["code"] == "script_error"
    sandbox.still_serving()


def test_nothing_a_run_leaves_behind_reaches_the_next_run(sandbox) -> None:
    source = (
        "import json\nSEEN = []\n\n"
        "def run(event, ticket, ctx, seen=[]):\n"
        "    SEEN.append(1)\n    seen.append(1)\n    ctx.vars['x'] = 1\n    ticket['tags'].append('x')\n"
        "    try:\n        json.dumps = None\n    except TypeError:\n        pass\n"
        "    return {'custom': {'module': len(SEEN), 'default': len(seen), 'vars': len(ctx.vars),\n"
        "                       'tags': len(ticket['tags']), 'dumps': json.dumps([1])}}\n")
    ticket = {"id": "T-1", "tags": [], "custom": {}}
    first = sandbox.run(source, ticket=ticket, version=10_001)
    # the same version again on every worker (cached code, fresh globals and inputs)
    for _ in range(4):
        again = sandbox.run(source, ticket=ticket, version=10_001)
        assert again.error is None, again.error
        assert again.updates == first.updates == {"custom": {"module": 1, "default": 1, "vars": 1,
                                                             "tags": 1, "dumps": "[1]"}}
    assert ticket == {"id": "T-1", "tags": [], "custom": {}}     # the caller's objects untouched


def test_print_goes_to_the_logs_not_the_workers_channel(sandbox) -> None:
    # A script that prints a well-formed frame cannot speak for its worker.
    source = body("print('\\x00\\x00\\x00\\x0e{\"op\":\"done\"}')\nctx.log('after')\n"
                  "return {'add_tags': ['printed']}")
    result = sandbox.run(source)
    assert result.error is None, result.error
    assert result.updates == {"add_tags": ["printed"]}
    assert len(result.logs) == 2 and result.logs[1] == "after"
    sandbox.still_serving()


@pytest.mark.parametrize("returned, code", [
    ("ctx", "invalid_output"),
    ("{'custom': {'x': ctx}}", "invalid_output"),
    ("{'custom': {'x': re.compile('a')}}", "invalid_output"),
    ("{'custom': {'x': float('nan')}}", "invalid_output"),
    ("{'custom': {'x': 2 ** 70}}", "invalid_output"),
    ("{'custom': {1: 'int key'}}", "invalid_output"),
    ("{'custom': {'x': {1, 2}}}", "invalid_output"),
    ("{'custom': {'x': (i for i in [1])}}", "invalid_output"),
    ("{'custom': {'x': datetime.datetime(2026, 1, 1)}}", "invalid_output"),
    ("{'colour': 'red'}", "invalid_output"),                      # outside the update vocabulary
    ("[1, 2]", "invalid_output"),
    ("'urgent'", "invalid_output"),
])
def test_only_plain_json_in_the_update_vocabulary_comes_out(sandbox, returned: str, code: str) -> None:
    result = sandbox.run(body(f"return {returned}"))
    assert result.error is not None and result.error["code"] == code, result
    assert result.updates is None
    sandbox.still_serving()


def test_self_referencing_and_deep_output_is_refused_without_recursion(sandbox) -> None:
    loop = sandbox.run(body("d = {}\nd['d'] = d\nreturn {'custom': d}"))
    assert loop.error["code"] in ("invalid_output", "output_size_limit")
    deep = sandbox.run(body("x = []\nfor i in range(300000):\n    x = [x]\nreturn {'custom': {'x': x}}"))
    assert deep.error["code"] == "invalid_output"
    assert "nested" in deep.error["message"]
    sandbox.still_serving()


def test_script_errors_name_the_line(sandbox) -> None:
    result = sandbox.run(S + "    x = 1\n    y = ticket['missing']\n")
    assert result.error == {"code": "script_error", "message": "Line 5: KeyError: 'missing'"}


def test_what_scripts_may_use_works(sandbox) -> None:
    source = body("""
from datetime import timedelta
m = re.search(r'order (\\d+)', ticket['subject'], re.I)
when = datetime.datetime(2026, 11, 23, tzinfo=datetime.timezone.utc) + timedelta(hours=2)
data = json.loads(json.dumps({'a': [1, 2]}, sort_keys=True))
total = 0
for k, v in {'a': 1, 'b': 2}.items():
    total += v
a, (b, c) = 1, (2, 3)
tags = sorted({t.lower() for t in ticket['tags']})
ctx.log('now is aware:', ctx.now().tzinfo is not None)
return {'custom': {'order': int(m[1]), 'when': when.isoformat(), 'a': data['a'],
                   'total': total + a + b + c, 'sqrt': math.sqrt(16), 'f': f'{total:>4}|{m.group(1)!r}',
                   'ws': ctx.workspace, 'v': ctx.vars.get('k')},
        'add_tags': tags}
""")
    result = sandbox.run(source, ticket={"id": "T-1", "subject": "Order 42 late", "tags": ["B", "a"]},
                         vars={"k": "v"})
    assert result.error is None, result.error
    assert result.updates == {"custom": {"order": 42, "when": "2026-11-23T02:00:00+00:00", "a": [1, 2],
                                         "total": 9, "sqrt": 4.0, "f": "   3|'42'", "ws": "acme", "v": "v"},
                              "add_tags": ["a", "b"]}
    assert result.logs == ["now is aware: True"]
    # the shape of API.md's test-run answer
    assert list(result.as_dict()) == ["updates", "logs", "http_calls", "duration_ms", "error"]


def test_printed_reads_back_what_was_printed(sandbox) -> None:
    result = sandbox.run(body("print('a', 1)\nprint('b')\nreturn {'custom': {'p': printed}}"))
    assert result.updates == {"custom": {"p": "a 1\nb"}}
    assert result.logs == ["a 1", "b"]


def test_a_reused_name_and_version_with_other_source_runs_the_other_source(sandbox) -> None:
    one = sandbox.run(body("return {'add_tags': ['one']}"), version=20_001)
    two = sandbox.run(body("return {'add_tags': ['two']}"), version=20_001)
    assert (one.updates, two.updates) == ({"add_tags": ["one"]}, {"add_tags": ["two"]})


@pytest.mark.parametrize("code, expected", [
    ("return {'custom': {'x': '\\ud800'}}", "invalid_output"),
    ("return {'custom': {'\\ud800': 1}}", "invalid_output"),
    ("ctx.log('\\ud800')\nreturn {'add_tags': ['logged']}", None),
    ("raise ValueError('\\ud800')", "script_error"),
])
def test_lone_surrogates_cannot_crash_the_worker(sandbox, code: str, expected: str | None) -> None:
    # orjson refuses lone surrogates: before this was checked, each of these killed its worker.
    before = sandbox.pool.replaced
    result = sandbox.run(body(code))
    assert (result.error or {}).get("code") == expected, result
    assert sandbox.pool.replaced == before
