"""GET /v1/stats/events and /v1/stats/sla: the workspace charts' counters (server/store/stats.py)
after real events, their query bounds, and the pure count of one event."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio as aredis
from server_helpers import ROOT_TOKEN, Workspace, event
from starlette.testclient import TestClient
from testkit import wait_until

from server.app import create_app
from server.settings import Settings
from server.store import keys as K
from server.store.catalog import add_rule_checks
from server.store.stats import count_event
from server.store.usage import Usage, queue_writes


def _get(ws: Workspace, path: str, **params: Any) -> Any:
    r = ws.client.get(path, params=params, headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    return r.json()


def _wait(fetch: Any, ok: Any) -> Any:
    """The counters trail the commit by one round trip: poll with a deadline."""
    return wait_until(fetch, ok, timeout=8.0, interval=0.05, what="the chart counters")


def test_events_per_hour_count_applied_events_in_the_current_hour(ws: Workspace) -> None:
    for i in range(4):
        ws.send(event(f"e{i}", tid=f"T-{i}"))
    ws.send(event("e0", tid="T-0"))   # a duplicate is not applied again
    got = _wait(lambda: _get(ws, "/v1/stats/events"), lambda v: v["total"] >= 4)
    assert len(got["hours"]) == 48 and got["total"] == 4 and got["hours"][-1]["events"] == 4
    assert [h["hour"] for h in got["hours"]] == sorted(h["hour"] for h in got["hours"])
    now = time.gmtime()
    assert got["hours"][-1]["hour"] == time.strftime("%Y-%m-%dT%H:00:00Z", now)
    assert _get(ws, "/v1/stats/events", hours=1)["hours"] == got["hours"][-1:]
    other = Workspace(ws.client, "other")
    assert _get(other, "/v1/stats/events")["total"] == 0


def test_sla_met_and_breached_per_day(ws: Workspace) -> None:
    r = ws.client.post("/v1/sla-policies", json={"name": "all", "targets": {"first_response": "1s"}},
                       headers=ws.h("manager"))
    assert r.status_code == 201, r.text
    ws.send({"id": "a1", "type": "ticket.created", "ticket": {"id": "T-met"}})
    ws.send({"id": "a2", "type": "message.sent", "ticket": {"id": "T-met"},
             "message": {"author": "agent", "body": "Hi"}})
    ws.send({"id": "b1", "type": "ticket.created", "ticket": {"id": "T-late"}})
    got = _wait(lambda: _get(ws, "/v1/stats/sla"), lambda v: v["breached"] >= 1)
    # T-late's reply after the breach is not a second count of anything
    ws.send({"id": "b2", "type": "message.sent", "ticket": {"id": "T-late"},
             "message": {"author": "agent", "body": "Sorry"}})
    got = _wait(lambda: _get(ws, "/v1/stats/sla"),
                lambda v: _get(ws, "/v1/stats/events")["total"] >= 5)
    assert len(got["days"]) == 30 and (got["met"], got["breached"]) == (1, 1)
    today = got["days"][-1]
    assert today["date"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert today["targets"]["first_response"] == {"met": 1, "breached": 1}
    assert today["targets"]["resolution"] == {"met": 0, "breached": 0}
    assert len(_get(ws, "/v1/stats/sla", days=7)["days"]) == 7


def test_stats_queries_are_bounded_and_need_a_key(ws: Workspace) -> None:
    for path, name, top in (("/v1/stats/events", "hours", 168), ("/v1/stats/sla", "days", 30)):
        for bad in (0, top + 1, "x"):
            r = ws.client.get(path, params={name: bad}, headers=ws.h("viewer"))
            assert r.status_code == 400 and str(top) in r.text, r.text
        assert _get(ws, path, **{name: top})[name if name == "days" else "hours"]
        unknown = ws.client.get(path, params={"hourz": 1}, headers=ws.h("viewer"))
        assert unknown.status_code == 422 and "hourz" in unknown.text
        assert ws.client.get(path).status_code == 401
        assert ws.client.get(path, headers=ws.h("ingest")).status_code == 403


def test_count_event_reads_the_clock_the_event_left() -> None:
    at = "2026-12-02T10:15:00.000Z"
    day, fields = count_event({"type": "ticket.created"}, {}, at)
    hour = int(datetime(2026, 12, 2, 10, tzinfo=UTC).timestamp()) // 3600
    assert (day, dict(fields)) == (hour // 24, {f"e:{hour}": 1})
    met = {"sla": {"targets": {"first_response": {"state": "met", "met_at": at},
                               "resolution": {"state": "met", "met_at": "2026-12-01T09:00:00Z"}}}}
    assert dict(count_event({"type": "message.sent"}, met, at)[1]) == {
        f"e:{hour}": 1, "met:first_response": 1}
    late = {"sla": {"targets": {"first_response": {"state": "breached", "met_at": at}}}}
    assert dict(count_event({"type": "message.sent"}, late, at)[1]) == {f"e:{hour}": 1}
    breach = {"type": "sla.breached", "timer": {"target": "first_response"}}
    assert dict(count_event(breach, late, at)[1]) == {f"e:{hour}": 1, "breached:first_response": 1}
    other = {"type": "sla.breached", "timer": {"target": "resolution"}}
    assert dict(count_event(other, late, at)[1]) == {f"e:{hour}": 1}


def test_every_rules_fires_per_day_in_one_answer(ws: Workspace) -> None:
    fires = ws.rule(name="tell ops", triggers=["ticket.created"],
                    actions=[{"type": "notify", "target": "ops", "message": "new"}])
    quiet = ws.rule(name="never", triggers=["ticket.updated"],
                    actions=[{"type": "add_tags", "tags": ["x"]}])
    for i in range(3):
        ws.send(event(f"r{i}", tid=f"T-{i}"))
    got = _wait(lambda: _get(ws, "/v1/stats/rules"), lambda v: sum(v["rules"][fires["id"]]) >= 3)
    assert len(got["dates"]) == 30 and got["dates"][-1] == time.strftime("%Y-%m-%d", time.gmtime())
    assert got["rules"][fires["id"]] == [0] * 29 + [3]
    assert got["rules"][quiet["id"]] == [0] * 30
    days = _get(ws, f"/v1/rules/{fires['id']}/days")["days"]
    assert [d["fired"] for d in days] == got["rules"][fires["id"]]
    week = _get(ws, "/v1/stats/rules", days=7)
    assert week["rules"][fires["id"]] == [0] * 6 + [3] and len(week["dates"]) == 7
    assert ws.client.get("/v1/stats/rules", params={"days": 31},
                         headers=ws.h("viewer")).status_code == 400


@pytest.mark.redis
@pytest.mark.parametrize("scripted", [True, False], ids=["script", "commands"])
def test_rules_per_day_reads_daily_counters_and_the_hours_from_before_them(
        redis_url: str, scripted: bool) -> None:
    """The chart reads each rule's daily counters ("d:<day>", 31 fields a rule, not its 720
    hourly buckets); only the days before the hash's "dsince" -- the day the daily counters
    began, or every day of a hash written before them -- are summed from the hours."""
    settings = Settings(redis_url=redis_url, data_file=None, root_token=ROOT_TOKEN, partitions=4)
    with TestClient(create_app(settings)) as client:
        ws = Workspace(client)
        rule = {"triggers": ["ticket.created"], "actions": [{"type": "close"}]}
        legacy, new, checked = (ws.rule(name=n, **rule)["id"] for n in ("legacy", "new", "checked"))
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        r.delete(K.rule_fires_since(ws.id))   # a workspace from before the packed day counters
        hour = int(time.time() // 3600)
        today = hour // 24
        r.hset(K.rule_stats(ws.id, legacy), mapping={   # as the worker left it before "d:"
            f"h:{(today - 3) * 24 + 5}": 2, f"h:{today * 24}": 1, "last": "2026-11-23T08:00:00Z"})
        r.hset(K.rule_stats(ws.id, new), mapping={f"h:{(today - 2) * 24 + 1}": 4})   # from before
        usage = Usage(runs_kept=10)
        usage.add(ws.id, "run-1", "2026-11-23T08:00:00Z", (today - 2) * 24 + 3, [new])
        usage.add(ws.id, "run-2", "2026-11-23T09:00:00Z", hour, [new, new])
        with r.pipeline(transaction=False) as p:
            queue_writes(p, usage.take(), 10, scripted=scripted)
            p.execute()
        assert r.hget(K.rule_stats(ws.id, new), "dsince") == (str(today - 1) if scripted else "0")
        assert r.get(K.rule_fires_since(ws.id)) == str(today + 1)   # packed from tomorrow on
        r.hset(K.rule_stats(ws.id, new), f"h:{hour}", 50)   # a day past dsince reads "d:" only
        anyio.run(_checks, redis_url, {(ws.id, checked, hour): 3})
        got = _get(ws, "/v1/stats/rules", days=5)["rules"]
        assert got[legacy] == [0, 2, 0, 0, 1]
        # the day dsince follows: its hours, 4 + 1 (the in-process store keeps no hours from before)
        assert got[new] == ([0, 0, 5, 0, 2] if scripted else [0, 0, 1, 0, 2])
        assert got[checked] == [0] * 5


@pytest.mark.redis
@pytest.mark.parametrize("scripted", [True, False], ids=["script", "commands"])
def test_rules_per_day_reads_the_packed_day_counters_from_their_first_day(
        redis_url: str, scripted: bool) -> None:
    """Fires go to the workspace's packed day counters too (one hash a day, a field a rule), and
    the chart reads the days from keys.rule_fires_since on there: a new workspace's from its
    first day, an older one's from the day after the packed counters' first write; the days
    before, from each rule's own counters."""
    settings = Settings(redis_url=redis_url, data_file=None, root_token=ROOT_TOKEN, partitions=4)
    with TestClient(create_app(settings)) as client:
        ws = Workspace(client)
        rule = {"triggers": ["ticket.created"], "actions": [{"type": "close"}]}
        a, b = (ws.rule(name=n, **rule)["id"] for n in ("a", "b"))
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        assert r.get(K.rule_fires_since(ws.id)) == "0"
        hour = int(time.time() // 3600)
        today = hour // 24
        usage = Usage(runs_kept=10)
        usage.add(ws.id, "run-1", "2026-11-23T08:00:00Z", (today - 2) * 24 + 3, [a])
        usage.add(ws.id, "run-2", "2026-11-23T09:00:00Z", hour, [a, b, a])
        with r.pipeline(transaction=False) as p:
            queue_writes(p, usage.take(), 10, scripted=scripted)
            p.execute()
        assert r.hgetall(K.rule_fires_day(ws.id, today)) == {a: "2", b: "1"}
        assert r.hgetall(K.rule_fires_day(ws.id, today - 2)) == {a: "1"}
        assert 0 < r.ttl(K.rule_fires_day(ws.id, today)) <= 32 * 86400
        assert r.get(K.rule_fires_since(ws.id)) == "0"   # (kept: it was set)
        got = _get(ws, "/v1/stats/rules", days=4)["rules"]
        assert got == {a: [0, 1, 0, 2], b: [0, 0, 0, 1]}
        r.hset(K.rule_stats(ws.id, b), f"d:{today - 3}", 7)   # the per-rule counter is not read ...
        assert _get(ws, "/v1/stats/rules", days=4)["rules"][b] == [0, 0, 0, 1]
        r.set(K.rule_fires_since(ws.id), today - 1)   # ... before the packed counters' first day
        got = _get(ws, "/v1/stats/rules", days=4)["rules"]
        assert got == {a: [0, 1, 0, 2], b: [7, 0, 0, 1]}
        c = ws.rule(name="c", **rule)["id"]   # a kept answer is not one of before a rule change ...
        assert _get(ws, "/v1/stats/rules", days=4)["rules"][c] == [0] * 4
        usage.add(ws.id, "run-3", "2026-11-23T10:00:00Z", hour, [c])   # ... nor of before a fire
        with r.pipeline(transaction=False) as p:
            queue_writes(p, usage.take(), 10, scripted=scripted)
            p.execute()
        assert _get(ws, "/v1/stats/rules", days=4)["rules"][c] == [0, 0, 0, 1]


async def _checks(redis_url: str, counts: dict[tuple[str, str, int], int]) -> None:
    """add_rule_checks as a worker calls it (it reads only the store's client)."""
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await add_rule_checks(SimpleNamespace(redis=client), counts)  # type: ignore[arg-type]
    finally:
        await client.aclose()
