"""Growth without bound in the apply path (issue 13 A7): a script's custom, run records (size and
retention), effects per event, and a group's contact count reading only its workspace's keys."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from server_helpers import Workspace

from rules import compile_rules
from server.automation import MAX_MERGED_CUSTOM_BYTES, Snapshot, process
from server.runrecord import MAX_EFFECTS_PER_EVENT, MAX_RUN_RECORD_BYTES
from server.store import keys as K

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _event(n: int) -> dict[str, Any]:
    return {"id": f"e{n}", "type": "ticket.updated" if n else "ticket.created",
            "occurred_at": "2026-11-23T08:00:00Z", "ticket": {"id": "T-1"}}


def test_a_scripts_custom_updates_are_capped_like_an_events() -> None:
    rules = compile_rules([{"id": "s", "name": "s", "triggers": ["ticket.created", "ticket.updated"],
                            "actions": [{"type": "run_script", "script": "grow"}]}])
    n = [0]

    def run_script(action: Any, event: Any, ticket: Any) -> dict[str, Any]:
        n[0] += 1
        return {"custom": {f"k{n[0]}": "x" * 60_000}}

    previous = None
    for i in range(30):
        out = process(Snapshot(None, previous, None, None, 1), _event(i), rules, [], None, NOW,
                      {"run_script": run_script})
        previous = out.ticket
        assert len(orjson.dumps(out.ticket["custom"])) <= MAX_MERGED_CUSTOM_BYTES
    assert "k30" in previous["custom"]          # the newest key is kept, the oldest went
    assert len(orjson.dumps(previous)) < 2 * MAX_MERGED_CUSTOM_BYTES


def test_effects_per_event_are_capped_with_a_reason() -> None:
    rules = compile_rules([{"id": "w", "name": "w", "triggers": ["ticket.created"],
                            "actions": [{"type": "webhook", "url": f"https://hooks.example.com/{i}"}
                                        for i in range(300)]}])
    out = process(Snapshot(None, None, None, None, 1), _event(0), rules, [], None, NOW)
    assert len(out.effects) == MAX_EFFECTS_PER_EVENT
    assert len(out.record["effects"]) == MAX_EFFECTS_PER_EVENT
    over = [s for s in out.record["suppressed"] if "MAX_EFFECTS_PER_EVENT" in s["reason"]]
    assert len(over) == 300 - MAX_EFFECTS_PER_EVENT
    assert over[0]["effect"]["url"] == f"https://hooks.example.com/{MAX_EFFECTS_PER_EVENT}"


def test_a_run_record_is_bounded_and_says_what_it_trimmed() -> None:
    rules = compile_rules([{"id": "s", "name": "s", "triggers": ["ticket.created"],
                            "actions": [{"type": "run_script", "script": "chatty"}]}])

    class View:
        handlers = {"run_script": lambda *a: {"add_tags": ["ran"]}}
        scripts = [{"name": "chatty", "logs": ["y" * 1000] * 400, "http_calls": [{"url": "u" * 500}] * 200,
                    "updates": {"add_tags": ["ran"]}, "error": None}]
        http_calls = [{"url": "v" * 500}] * 400

    out = process(Snapshot(None, None, None, None, 1), _event(0), rules, [], None, NOW, View())
    size = len(orjson.dumps(out.record))
    assert size <= MAX_RUN_RECORD_BYTES
    assert out.record["trimmed"] and "trimmed" in out.record["notes"][-1]
    assert out.record["matched"] == ["s"] and out.record["rules"][0]["id"] == "s"   # explain kept
    assert "ran" in out.ticket["tags"]    # the ticket itself is whole


def test_run_records_expire_and_lists_point_only_at_live_ones(ws: Workspace) -> None:
    ws.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["x"]}])
    out = ws.send(_event(0))
    store = ws.client.app_state["store"]  # type: ignore[attr-defined]

    async def ttls() -> tuple[int, int]:
        return (await store.redis.ttl(K.run(ws.id, out["run_id"])),
                await store.redis.ttl(K.ticket_runs(ws.id, "T-1")))

    run_ttl, list_ttl = ws.client.portal.call(ttls)  # type: ignore[union-attr]
    assert 29 * 24 * 3600 < run_ttl <= 30 * 24 * 3600 and 0 < list_ttl <= 30 * 24 * 3600

    async def expire() -> None:
        await store.redis.delete(K.run(ws.id, out["run_id"]))   # as its TTL does

    ws.client.portal.call(expire)  # type: ignore[union-attr]
    assert ws.client.get("/v1/tickets/T-1/runs", headers=ws.h("viewer")).json()["items"] == []


def test_a_groups_contact_count_reads_only_its_workspaces_keys(ws: Workspace) -> None:
    assert ws.client.post("/v1/groups", json={"name": "vip"}, headers=ws.h("manager")).status_code in (200, 201)
    for i in range(3):
        assert ws.client.put(f"/v1/contacts/C-{i}/groups", json={"groups": ["vip"]},
                             headers=ws.h("manager")).status_code == 200
    ws.send({**_event(0), "ticket": {"id": "T-1", "contact": {"id": "C-9", "groups": ["VIP"]}}})
    store = ws.client.app_state["store"]  # type: ignore[attr-defined]
    scanned: list[Any] = []
    real = store.redis.scan_iter

    def spy(*args: Any, **kw: Any) -> Any:
        scanned.append(kw.get("match"))
        return real(*args, **kw)

    store.redis.scan_iter = spy
    try:
        r = ws.client.get("/v1/groups/vip", headers=ws.h("viewer"))
    finally:
        store.redis.scan_iter = real
    assert r.status_code == 200 and r.json()["contacts"] == 4
    assert scanned == [], "a group read walked the whole keyspace"
