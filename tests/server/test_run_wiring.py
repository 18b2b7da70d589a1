"""What the worker adds to a run record from the workspace: the revision of each rule that fired,
and the workspace's own guard limits (suppressed effects listed with the reason)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from server_helpers import Workspace, event

from server.store import catalog, events, tickets
from server.store import sla as sla_store
from server.store.connect import close_store, open_store
from server.worker import Worker

NOTIFY = {"name": "tell ops", "triggers": ["ticket.created", "ticket.updated"], "enabled": True,
          "actions": [{"type": "notify", "target": "ops", "message": "{{ticket.id}}"}]}


def _run(ws: Workspace, run_id: str) -> dict:
    r = ws.client.get(f"/v1/runs/{run_id}", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_run_records_name_the_revision_of_each_rule_that_fired(ws: Workspace) -> None:
    rule = ws.rule(**NOTIFY)
    first = _run(ws, ws.send(event("e1"))["run_id"])
    assert first["matched"] == [rule["id"]] and first["rule_revisions"] == {rule["id"]: 1}
    r = ws.client.patch(f"/v1/rules/{rule['id']}", json={"name": "tell ops, v2"}, headers=ws.h("manager"))
    assert r.status_code == 200
    second = _run(ws, ws.send(event("e2", "ticket.updated"))["run_id"])
    assert second["rule_revisions"] == {rule["id"]: r.json()["revision"]} and r.json()["revision"] > 1
    assert second["rules_rev"] > first["rules_rev"]
    rev = ws.client.get(f"/v1/rules/{rule['id']}/revisions/{second['rule_revisions'][rule['id']]}",
                        headers=ws.h("viewer"))
    assert rev.status_code == 200


def test_the_workspace_guard_limits_reach_the_worker(ws: Workspace) -> None:
    ws.rule(**NOTIFY)
    r = ws.client.put("/v1/workspace/guards", json={"send_caps": [{"count": 2, "per": "10m"}]},
                      headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    runs = [_run(ws, ws.send(event(f"e{i}", "ticket.updated" if i else "ticket.created"))["run_id"])
            for i in range(3)]
    assert [len(run["effects"]) for run in runs] == [1, 1, 0]
    [gone] = runs[2]["suppressed"]
    assert gone["effect"]["type"] == "notify" and "2" in gone["reason"]
    assert any("notify" in note or "suppress" in note for note in runs[2]["notes"])


async def _business_rule_fires(settings: Any, hours_start: str) -> bool:
    """A rule naming an SLA policy's calendar, applied by a real Worker: whether it matched."""
    store = await open_store(settings)
    try:
        ws, _ = await catalog.create_workspace(store, "cal")
        w = ws["id"]
        await sla_store.put_policy(store, w, {
            "name": "office", "position": 1, "targets": {"resolution": "8h"},
            "business_hours": {"timezone": "UTC", "week": {d: [hours_start, "17:00"] for d in
                                                           ("mon", "tue", "wed", "thu", "fri")}}})
        await catalog.put_rule(store, w, {
            "id": "r-biz", "name": "old in office hours", "enabled": True, "position": 1,
            "triggers": ["ticket.updated"],
            "conditions": {"all": [{"field": "created_at", "op": "older_than_business",
                                    "value": "2h", "calendar": "office"}]},
            "actions": [{"type": "add_tags", "tags": ["old"]}]})
        await events.append_events(store, w, [
            {"id": "e1", "type": "ticket.updated", "occurred_at": "2026-11-23T08:00:00Z",
             "ticket": {"id": "T-1", "created_at": "2026-11-23T09:00:00Z"}}])
        worker = Worker(store=store, burst=True,
                        clock=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC))  # a Monday
        await worker.run()
        ticket = await tickets.get_ticket(store, w, "T-1")
        assert ticket is not None
        return "old" in ticket["tags"]
    finally:
        await close_store(store)


@pytest.mark.anyio
async def test_rules_name_sla_calendars(settings: Any) -> None:
    # 09:00-12:00 on Monday is 3 business hours with a 09:00 opening, 1 hour with an 11:00 one
    assert await _business_rule_fires(settings, "09:00") is True
    assert await _business_rule_fires(settings, "11:00") is False


@pytest.mark.anyio
async def test_the_rules_cache_recompiles_when_a_calendar_changes(settings: Any) -> None:
    from rules.calendar import Calendar
    from server.worker import RuleCache

    store = await open_store(settings)
    try:
        ws, _ = await catalog.create_workspace(store, "cache")
        await catalog.put_rule(store, ws["id"], {"id": "r", "name": "r", "enabled": True, "position": 1,
                                                 "triggers": ["ticket.updated"],
                                                 "actions": [{"type": "close"}]})
        cache = RuleCache(store)
        nine = {"office": Calendar.from_spec({"timezone": "UTC", "week": {"mon": ["09:00", "17:00"]}})}
        eleven = {"office": Calendar.from_spec({"timezone": "UTC", "week": {"mon": ["11:00", "17:00"]}})}
        a = await cache.get(ws["id"], None, nine)
        assert await cache.get(ws["id"], None, dict(nine)) is a           # equal calendars: cached
        assert await cache.get(ws["id"], None, eleven) is not a           # new hours: recompiled
    finally:
        await close_store(store)


@pytest.mark.anyio
async def test_passes_that_miss_the_rules_cache_together_share_one_compile(settings: Any) -> None:
    """A worker's lanes all miss at its start (and after a rule is saved): one compile per
    workspace and revision, not one per pass in flight; a failed compile is the workspace's
    state (server/rulecache.py): its waiters get RulesUnavailable too, not a compile each, and
    the retry compiles once for all."""
    import asyncio

    from server import rulecache
    from server.worker import RuleCache

    store = await open_store(settings)
    try:
        spaces = []
        for name in ("one", "two"):
            ws, _ = await catalog.create_workspace(store, name)
            await catalog.put_rule(store, ws["id"], {"id": "r", "name": "r", "enabled": True,
                                                     "position": 1, "triggers": ["ticket.updated"],
                                                     "actions": [{"type": "close"}]})
            spaces.append(ws["id"])
        cache = RuleCache(store)
        got = await asyncio.gather(*(cache.get(w) for w in spaces for _ in range(20)))
        assert cache.compiles == 2
        assert all(r is got[0] for r in got[:20]) and all(r is got[20] for r in got[20:])
        assert got[0] is not got[20]
        await catalog.put_rule(store, spaces[0], {"id": "s", "name": "s", "enabled": True,
                                                  "position": 2, "triggers": ["ticket.updated"],
                                                  "actions": [{"type": "close"}]})
        real, calls = rulecache.compile_stored_rules, []

        def failing_once(*args: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("the first compile fails")
            return real(*args)

        rulecache.compile_stored_rules = failing_once
        retry = rulecache.RETRY_FIRST_S
        rulecache.RETRY_FIRST_S = 0.05
        try:
            again = await asyncio.gather(*(cache.get(spaces[0]) for _ in range(5)),
                                         return_exceptions=True)
            assert all(isinstance(r, rulecache.RulesUnavailable) for r in again), again
            assert [isinstance(r.__cause__, RuntimeError) for r in again].count(True) == 1  # the compiler's
            assert len(calls) == 1 and "the first compile fails" in again[0].reason
            await asyncio.sleep(0.06)
            fresh = await asyncio.gather(*(cache.get(spaces[0]) for _ in range(4)))
        finally:
            rulecache.compile_stored_rules = real
            rulecache.RETRY_FIRST_S = retry
        assert len(calls) == 2 and all(r is fresh[0] for r in fresh)
        assert fresh[0] is not got[0]
    finally:
        await close_store(store)


def test_usage_counts_checks_and_keeps_the_last_error(ws: Workspace) -> None:
    import time

    quiet = ws.rule(name="never", triggers=["ticket.updated"], enabled=True,
                    conditions={"all": [{"field": "subject", "op": "is", "value": "no such"}]},
                    actions=[{"type": "close"}])
    broken = ws.rule(name="calls a host off the allow-list", triggers=["ticket.updated"], enabled=True,
                     actions=[{"type": "http_request", "url": "https://crm.example.com/x", "map": {"a": "$.a"}}])
    ws.send(event("e0"))
    for i in range(1, 4):
        run = _run(ws, ws.send(event(f"e{i}", "ticket.updated"))["run_id"])
    by_id = {e["id"]: e for e in run["rules"]}
    assert by_id[quiet["id"]]["revision"] == 1 and by_id[broken["id"]]["errors"]
    deadline = time.monotonic() + 10
    while True:
        usage = {r["id"]: r["usage"] for r in ws.client.get("/v1/rules", headers=ws.h("viewer")).json()["items"]}
        if (usage[quiet["id"]]["checked"] or {}).get("1h") == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert usage[quiet["id"]]["checked"]["1h"] == 3 and usage[quiet["id"]]["fired"]["1h"] == 0
    assert usage[quiet["id"]]["last_error"] is None
    err = usage[broken["id"]]["last_error"]
    assert err is not None and "allow-list" in err["message"] and err["at"] == run["at"]


OFFICE = {"name": "office", "targets": {"resolution": "8h"},
          "business_hours": {"timezone": "UTC", "week": {"mon": ["09:00", "17:00"]}}}
BIZ_RULE = {"name": "old in office hours", "triggers": ["ticket.updated"], "enabled": True,
            "conditions": {"all": [{"field": "created_at", "op": "older_than_business",
                                    "value": "2h", "calendar": "office"}]},
            "actions": [{"type": "add_tags", "tags": ["old"]}]}


def test_the_api_accepts_rules_naming_sla_calendars(ws: Workspace) -> None:
    h = ws.h("manager")
    r = ws.client.post("/v1/rules", json=BIZ_RULE, headers=h)
    assert r.status_code == 422 and "office" in r.text                     # no such calendar yet
    assert ws.client.post("/v1/sla-policies", json=OFFICE, headers=h).status_code == 201
    r = ws.client.post("/v1/rules", json=BIZ_RULE, headers=h)
    assert r.status_code == 201, r.text
    test = ws.client.post(f"/v1/rules/{r.json()['id']}/test", headers=h, json={
        "now": "2026-11-23T12:00:00Z",
        "ticket": {"id": "T-9", "created_at": "2026-11-23T09:00:00Z"},
        "event": {"type": "ticket.updated", "ticket": {"id": "T-9"}}})
    assert test.status_code == 200, test.text
    assert test.json()["matched"] is True


def test_an_import_may_name_a_calendar_it_brings(ws: Workspace) -> None:
    doc = {"deskflow": 1, "sla_policies": [OFFICE], "rules": [BIZ_RULE]}
    r = ws.client.post("/v1/import?dry_run=true", json=doc, headers=ws.h("manager"))
    assert r.status_code == 200, r.text


def test_guard_setting_changes_are_audited(ws: Workspace) -> None:
    assert ws.client.put("/v1/workspace/guards", json={"generated_per_minute": 5},
                         headers=ws.h()).status_code == 200
    assert ws.client.delete("/v1/workspace/guards", headers=ws.h()).status_code == 204
    items = ws.client.get("/v1/audit?target=guards", headers=ws.h()).json()["items"]
    assert [e["action"] for e in items] == ["guards.reset", "guards.set"]
    assert items[1]["detail"]["generated_per_minute"] == 5


def test_an_events_own_actor_is_kept_and_checked(ws: Workspace) -> None:
    rule = ws.rule(name="bridge said agent", triggers=["message.received"], enabled=True,
                   conditions={"all": [{"field": "event.actor", "op": "is", "value": "agent"}]},
                   actions=[{"type": "add_tags", "tags": ["by-agent"]}])
    ws.send(event("e0"))
    derived = _run(ws, ws.send(event("e1", "message.received"))["run_id"])          # author: customer
    assert rule["id"] not in derived["matched"]
    told = _run(ws, ws.send(event("e2", "message.received", actor="agent"))["run_id"])
    assert told["matched"] == [rule["id"]]
    r = ws.client.post("/v1/events", json=event("e3", actor="robot"), headers=ws.h("ingest"))
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "actor"
