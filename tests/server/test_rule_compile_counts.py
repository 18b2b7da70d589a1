"""A rule write makes the worker's next event compile the rules that changed, not the workspace's
rule set (server/rulecache.py, rules/compile_cache.py): a tenant renaming one of its 1,000 rules
in a loop made every worker recompile all 1,000 each time, seconds of CPU holding the GIL other
workspaces' events wait on. Counted (rules compiled), not timed."""

from __future__ import annotations

from typing import Any

import pytest

import rules.codegen as codegen
import rules.compile as engine_compile
from server.rulecache import RuleCache
from server.store import catalog
from server.store import revisions as R
from server.store.connect import close_store, open_store

N = 1_000


def _rule(i: int, name: str | None = None) -> dict[str, Any]:
    return {"id": f"r{i:04d}", "name": name or f"rule {i}", "enabled": True, "position": i,
            "triggers": ["ticket.updated"],
            "conditions": {"all": [{"field": "subject", "op": "matches", "value": f"refund{i}(s|ed)?"},
                                   {"field": "tags", "op": "includes", "value": f"t{i % 7}"}]},
            "actions": [{"type": "add_tags", "tags": [f"x{i}"]}]}


async def _put_all(store: Any, ws: str, rules: list[dict[str, Any]]) -> None:
    """Every rule in one write (as an import does)."""
    def compute(current: dict[str, dict[str, Any]]) -> list[Any]:
        return [R.Change(r["id"], dict(r), current.get(r["id"]),
                         "update" if r["id"] in current else "create") for r in rules]
    await R.write(store, ws, R.RULE, {"key_id": None, "key_name": "test"}, compute)


@pytest.mark.anyio
async def test_a_one_rule_edit_at_1000_rules_compiles_about_one_rule(settings: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = engine_compile._problems

    def counted(*args: Any, **kwargs: Any) -> Any:   # what compiling one rule starts with
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_compile, "_problems", counted)
    buckets: list[str] = []   # CPython compiles of a trigger bucket's generated source

    def bucket_compiled(source: str, filename: str, *args: Any) -> Any:
        if filename == "<rules bucket>":
            buckets.append(filename)
        return compile(source, filename, *args)

    monkeypatch.setattr(codegen, "compile", bucket_compiled, raising=False)
    store = await open_store(settings)
    try:
        ws, _ = await catalog.create_workspace(store, "counts")
        await _put_all(store, ws["id"], [_rule(i) for i in range(N)])
        cache = RuleCache(store)
        first = await cache.get(ws["id"])
        assert len(first) == N and len(calls) == N          # a cold cache compiles every rule
        event = {"type": "ticket.updated"}
        ticket = {"subject": "refund500ed", "tags": ["t3"]}
        assert first.evaluate(event, ticket).matched == ["r0500"]

        calls.clear()
        await catalog.put_rule(store, ws["id"], _rule(500, name="renamed"))   # a name only
        renamed = await cache.get(ws["id"])
        assert renamed is not first and cache.compiles == 2
        assert len(calls) == 1, f"{len(calls)} rules compiled for a one-rule rename"
        # nor the bucket's generated code (its source names no tenant value)
        assert buckets == ["<rules bucket>"], buckets
        assert renamed.evaluate(event, ticket).matched == ["r0500"]
        assert renamed.evaluate(event, ticket).explain[500]["name"] == "renamed"

        calls.clear()   # a condition changed: that rule again, and only it (its shape: the code)
        edited = {**_rule(500), "conditions": {"field": "subject", "op": "matches", "value": "refund5"}}
        await catalog.put_rule(store, ws["id"], edited)
        changed = await cache.get(ws["id"])
        assert len(calls) == 1, f"{len(calls)} rules compiled for a one-rule condition edit"
        assert changed.evaluate(event, {"subject": "refund5"}).matched == ["r0500"]

        calls.clear()   # nothing that compiles changed (an edit written back as it was)
        await catalog.put_rule(store, ws["id"], edited)
        assert (await cache.get(ws["id"])) is not changed and calls == []
    finally:
        await close_store(store)
