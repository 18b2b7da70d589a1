"""Escapes that start from the values ctx.history and ctx.customer hand a script: they are plain
JSON data decoded in the worker (lists, dicts, strings, numbers), so every way from a value to
its class, its frames or the trusted run state fails as from any other value, and the pool keeps
serving. A regression would be handing in live objects (a store reply, a lazy loader, a proxy)."""
from __future__ import annotations

import pytest

S = "import json\n\ndef run(event, ticket, ctx):\n"
CTX = {"history": [{"type": "message.received", "at": "2026-11-23T08:00:00Z", "actor": "customer",
                    "message": {"author": "customer", "body": "hi", "channel": "email"},
                    "changes": {}}],
       "customer": {"id": "C-1", "email": "c@example.com", "name": "C", "groups": ["vip"],
                    "custom": {}, "open_tickets": 1, "tickets_30d": 1,
                    "recent": [{"id": "T-1", "subject": "s", "status": "open", "created_at": None}]}}


def body(code: str) -> str:
    return S + "".join(f"    {line}\n" for line in code.strip("\n").split("\n"))


ESCAPES = {
    "history_class": "return {'custom': {'x': repr(ctx.history.__class__)}}",
    "customer_class_chain": "return {'custom': {'x': repr(ctx.customer['recent'][0].__class__.__mro__)}}",
    "history_type": "return {'custom': {'x': repr(type(ctx.history))}}",
    "customer_getattr": "return {'custom': {'x': repr(getattr(ctx.customer, 'get'))}}",
    "generator_frame": "g = (h for h in ctx.history)\nreturn {'custom': {'x': repr(g.gi_frame)}}",
    "generator_code": "g = (h for h in ctx.history)\nreturn {'custom': {'x': repr(g.gi_code)}}",
    "format_on_customer": "return {'custom': {'x': '{0[id]}{0.__class__}'.format(ctx.customer)}}",
    "format_map_on_history": "return {'custom': {'x': '{m}'.format_map(ctx.history[0])}}",
    "bound_method_self": "return {'custom': {'x': repr(ctx.customer.get.__self__)}}",
    "ctx_run_through_history": "return {'custom': {'x': repr(ctx._run)}}",
    "history_write_back": "ctx.history = []\nreturn None",
    "customer_write_back": "ctx.customer = {'id': 'C-2'}\nreturn None",
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_an_escape_from_a_ctx_value_fails_and_the_pool_keeps_serving(sandbox, name: str) -> None:
    result = sandbox.run(body(ESCAPES[name]), ctx=CTX)
    assert result.error is not None, result
    assert result.error["code"] == "script_error", result.error
    assert result.updates is None
    sandbox.still_serving()


def test_the_values_are_plain_data_the_script_can_use(sandbox) -> None:
    code = """
h = ctx.history
c = ctx.customer
ok = isinstance(h, list) and isinstance(c, dict) and isinstance(h[0], dict)
return {'custom': {'ok': ok, 'body': h[0]['message']['body'], 'groups': c['groups'] + ['x'],
                   'pct': '%(id)s' % c, 'dumped': len(json.dumps(c)) > 10}}
"""
    result = sandbox.run(body(code), ctx=CTX)
    assert result.error is None, result.error
    assert result.updates == {"custom": {"ok": True, "body": "hi", "groups": ["vip", "x"],
                                         "pct": "C-1", "dumped": True}}
