"""A rule write makes the worker's next event compile the rules that changed, not the workspace's
rule set (server/rulecache.py, rules/compile_cache.py): a tenant renaming one of its 1,000 rules
in a loop made every worker recompile all 1,000 each time, seconds of CPU holding the GIL other
workspaces' events wait on. Counted (rules compiled), not timed."""

from __future__ import annotations

from typing import Any

import pytest

import rules.codegen as codegen
import rules.compile as engine_compile
from server.rulecache import INLINE_SOURCE_BYTES, RuleCache
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
        # nor the bucket's generated code (its source names no tenant value), here or elsewhere
        kept = cache.compiled(ws["id"])
        assert kept is not None and kept.code_compiles == 1, kept and kept.code_compiles
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


def _dense(i: int, n: int = 20) -> dict[str, Any]:
    return {"id": f"d{i:04d}", "name": f"dense {i}", "enabled": True, "position": i,
            "triggers": ["ticket.updated"],
            "conditions": {"all": [{"field": "subject", "op": "contains", "value": f"w{i}x{j:02d}"}
                                   for j in range(n)]},
            "actions": [{"type": "add_tags", "tags": ["d"]}]}


def _counting_compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the bucket sources CPython compiles in this process."""
    sizes: list[int] = []

    def bucket_compiled(source: str, filename: str, *args: Any) -> Any:
        if filename == "<rules bucket>":
            sizes.append(len(source))
        return compile(source, filename, *args)

    monkeypatch.setattr(codegen, "compile", bucket_compiled, raising=False)
    return sizes


@pytest.mark.anyio
async def test_a_big_buckets_source_is_compiled_in_a_process_of_its_own(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython's compile of a bucket's source holds the GIL in one C call (~1 s at the rule
    limits): over INLINE_SOURCE_BYTES it runs in the cache's compile process, and a shape change
    (a condition fewer) compiles the new source there too; a small set is compiled here."""
    here = _counting_compiles(monkeypatch)
    store = await open_store(settings)
    cache = RuleCache(store)
    away: list[int] = []   # the sizes of the sources sent to the process
    sent = cache._away.run

    async def run(workspace: str, op: str, *args: Any) -> Any:
        away.append(len(args[0]))
        return await sent(workspace, op, *args)

    monkeypatch.setattr(cache._away, "run", run)
    try:
        ws, _ = await catalog.create_workspace(store, "away")
        small, _ = await catalog.create_workspace(store, "small")
        await _put_all(store, ws["id"], [_dense(i) for i in range(300)])
        await _put_all(store, small["id"], [_dense(i, 2) for i in range(3)])
        event = {"type": "ticket.updated"}
        hit = {"subject": " ".join(f"w7x{j:02d}" for j in range(20))}
        first = await cache.get(ws["id"])
        assert first.evaluate(event, hit).matched == ["d0007"]
        assert here == [] and cache.compile_processes == 1
        await catalog.put_rule(store, ws["id"], _dense(7, 19))   # a shape change: a new source
        changed = await cache.get(ws["id"])
        assert changed.evaluate(event, {"subject": hit["subject"][:-6]}).matched == ["d0007"]
        kept = cache.compiled(ws["id"])
        assert kept is not None and kept.code_compiles == 2 and here == [] and len(away) == 2
        assert cache.compile_processes == 1   # the same process, again
        assert (await cache.get(small["id"])).evaluate(event, {"subject": "w1x00 w1x01"}).matched == ["d0001"]
        assert len(here) == 1 and here[0] <= INLINE_SOURCE_BYTES < min(away)
    finally:
        await cache.aclose()
        await close_store(store)


@pytest.mark.anyio
async def test_a_compile_whose_processes_are_all_held_waits_its_turn(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """503 checks_busy (other workspaces' compiles hold every process past the queue's bound) is
    asked again, not compiled here: that would stop every workspace for the compile."""
    import server.rulecache as rc
    from server.checkpool import ChecksBusy

    here = _counting_compiles(monkeypatch)
    monkeypatch.setattr(rc, "BUSY_RETRY_S", 0.01)
    store = await open_store(settings)
    cache = RuleCache(store)
    tries: list[str] = []
    sent = cache._away.run

    async def run(workspace: str, op: str, *args: Any) -> Any:
        tries.append(workspace)
        if len(tries) < 3:
            raise ChecksBusy("busy")
        return await sent(workspace, op, *args)

    monkeypatch.setattr(cache._away, "run", run)
    try:
        ws, _ = await catalog.create_workspace(store, "busy")
        await _put_all(store, ws["id"], [_dense(i) for i in range(300)])
        ruleset = await cache.get(ws["id"])
        assert ruleset.evaluate({"type": "ticket.updated"},
                                {"subject": " ".join(f"w4x{j:02d}" for j in range(20))}).matched == ["d0004"]
        assert tries == [ws["id"]] * 3 and here == []
    finally:
        await cache.aclose()
        await close_store(store)
