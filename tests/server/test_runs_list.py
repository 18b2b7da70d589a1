"""GET /v1/runs: the workspace's recent runs, newest first, paged, filtered by rule, ticket and
outcome, with the filters validated (the managers' page lists runs from it)."""

from __future__ import annotations

from typing import Any

from server_helpers import Workspace, event

NOTIFY = {"name": "tell ops", "triggers": ["ticket.created"], "enabled": True,
          "actions": [{"type": "notify", "target": "ops", "message": "{{ticket.id}}"}]}
TAG = {"name": "tag updates", "triggers": ["ticket.updated"], "enabled": True,
       "actions": [{"type": "add_tags", "tags": ["seen"]}]}


def _list(ws: Workspace, **params: Any) -> Any:
    r = ws.client.get("/v1/runs", params=params, headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    return r.json()


def test_recent_runs_are_newest_first_and_filter_by_rule_ticket_and_outcome(ws: Workspace) -> None:
    notify, tag = ws.rule(**NOTIFY), ws.rule(**TAG)
    ids = [ws.send(event("e1", tid="T-1"))["run_id"],
           ws.send(event("e2", "ticket.updated", tid="T-1"))["run_id"],
           ws.send(event("e3", tid="T-2"))["run_id"]]
    assert [r["id"] for r in _list(ws)["items"]] == ids[::-1]
    assert [r["id"] for r in _list(ws, rule=notify["id"])["items"]] == [ids[2], ids[0]]
    assert [r["id"] for r in _list(ws, rule=tag["id"])["items"]] == [ids[1]]
    assert [r["id"] for r in _list(ws, ticket="T-1")["items"]] == [ids[1], ids[0]]
    assert [r["id"] for r in _list(ws, ticket="T-1", rule=notify["id"])["items"]] == [ids[0]]
    assert [r["id"] for r in _list(ws, outcome="fired")["items"]] == ids[::-1]
    assert _list(ws, outcome="errored")["items"] == []
    assert _list(ws, ticket="T-nope")["items"] == []


def test_recent_runs_page_with_a_cursor(ws: Workspace) -> None:
    ids = [ws.send(event(f"e{i}", tid=f"T-{i}"))["run_id"] for i in range(5)]
    first = _list(ws, limit=2)
    second = _list(ws, limit=2, cursor=first["next"])
    third = _list(ws, limit=2, cursor=second["next"])
    got = [r["id"] for page in (first, second, third) for r in page["items"]]
    assert got == ids[::-1] and third["next"] is None


def test_recent_runs_filters_are_validated(ws: Workspace) -> None:
    bad = ws.client.get("/v1/runs", params={"outcome": "exploded"}, headers=ws.h("viewer"))
    assert bad.status_code == 422 and "suppressed" in bad.text
    unknown = ws.client.get("/v1/runs", params={"rulez": "x"}, headers=ws.h("viewer"))
    assert unknown.status_code == 422 and "rulez" in unknown.text
    assert ws.client.get("/v1/runs").status_code == 401


def test_rule_days_count_fires_per_utc_day_today_last(ws: Workspace) -> None:
    notify = ws.rule(**NOTIFY)
    for i in range(3):
        ws.send(event(f"d{i}", tid=f"T-{i}"))
    r = ws.client.get(f"/v1/rules/{notify['id']}/days", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    days = r.json()["days"]
    assert len(days) == 30 and sum(d["fired"] for d in days) == 3 and days[-1]["fired"] == 3
    assert [d["date"] for d in days] == sorted(d["date"] for d in days)
    week = ws.client.get(f"/v1/rules/{notify['id']}/days", params={"days": 7},
                         headers=ws.h("viewer")).json()["days"]
    # `checked` may grow between the two reads (workers flush check counts in batches)
    assert len(week) == 7 and [(d["date"], d["fired"]) for d in week] == [
        (d["date"], d["fired"]) for d in days[-7:]]
    bad = ws.client.get(f"/v1/rules/{notify['id']}/days", params={"days": 31},
                        headers=ws.h("viewer"))
    assert bad.status_code == 400 and "30" in bad.text
    assert ws.client.get("/v1/rules/nope/days", headers=ws.h("viewer")).status_code == 404
