"""Rules report when they last fired and how often in the last 24 hours (the managers' page shows it)."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from server_helpers import ROOT_TOKEN, Workspace
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from server.store import keys as K


def test_last_fired_and_24h_count(ws: Any) -> None:
    hot = ws.rule(name="hot", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["x"]}])
    cold = ws.rule(name="cold", triggers=["ticket.updated"], actions=[{"type": "add_tags", "tags": ["y"]}])
    fresh = ws.client.get(f"/v1/rules/{hot['id']}", headers=ws.h("viewer")).json()
    assert fresh["fired_24h"] == 0 and fresh["last_fired_at"] is None
    for i in range(3):
        ws.send({"id": f"e{i}", "type": "ticket.created", "ticket": {"id": f"T-{i}"}})
    listed = {r["name"]: r for r in ws.client.get("/v1/rules", headers=ws.h("viewer")).json()["items"]}
    assert listed["hot"]["fired_24h"] == 3 and listed["hot"]["last_fired_at"] is not None
    assert listed["cold"]["fired_24h"] == 0 and listed["cold"]["last_fired_at"] is None
    one = ws.client.get(f"/v1/rules/{hot['id']}", headers=ws.h("viewer")).json()
    assert one["fired_24h"] == 3
    # what a GET returns can be PUT back as it is: the stats are read-only, not part of the rule
    r = ws.client.put(f"/v1/rules/{hot['id']}", json=one, headers=ws.h("manager"))
    assert r.status_code == 200, r.text
    assert cold["id"] != hot["id"]


def test_usage_object_on_get_and_list(ws: Any) -> None:
    hot = ws.rule(name="hot", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["x"]}])
    for i in range(2):
        ws.send({"id": f"e{i}", "type": "ticket.created", "ticket": {"id": f"T-{i}"}})
    one = ws.client.get(f"/v1/rules/{hot['id']}", headers=ws.h("viewer")).json()
    assert one["usage"]["fired"] == {"1h": 2, "24h": 2, "7d": 2, "30d": 2}
    assert one["usage"]["last_fired_at"] == one["last_fired_at"] is not None
    assert one["usage"]["checked"] is None and one["usage"]["last_error"] is None
    listed = ws.client.get("/v1/rules", headers=ws.h("viewer")).json()["items"]
    assert listed[0]["usage"] == one["usage"]
    # a rule younger than the window is not "unused for" it: it has not had the time
    assert ws.client.get("/v1/rules?unused_for=30d", headers=ws.h("viewer")).json()["items"] == []
    bad = ws.client.get("/v1/rules?unused_for=soon", headers=ws.h("viewer"))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_duration"


@pytest.mark.redis
def test_windows_and_unused_for_from_the_hour_buckets(redis_url: str) -> None:
    """Counters as the apply transaction leaves them over weeks (written straight to Redis)."""
    settings = Settings(redis_url=redis_url, data_file=None, root_token=ROOT_TOKEN, partitions=4)
    with TestClient(create_app(settings)) as client:
        ws = Workspace(client)
        rule = {"triggers": ["ticket.created"], "actions": [{"type": "close"}]}
        ids = {name: ws.rule(name=name, **rule)["id"] for name in ("used-20d-ago", "never", "new")}
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        now = datetime.now(UTC)
        hour = int(now.timestamp() // 3600)
        long_ago = (now - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for name in ("used-20d-ago", "never"):
            stored = json.loads(r.hget(K.rules(ws.id), ids[name]))
            r.hset(K.rules(ws.id), ids[name], json.dumps({**stored, "created_at": long_ago}))
        r.incr(K.rules_rev(ws.id))   # as every rule write does: the API keeps rules per revision
        r.hset(K.rule_stats(ws.id, ids["used-20d-ago"]), mapping={
            f"h:{hour - 20 * 24}": 4, f"h:{hour - 40 * 24}": 9,
            "last": (now - timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")})
        r.hset(K.rule_stats(ws.id, ids["new"]), mapping={
            f"h:{hour}": 1, f"h:{hour - 1}": 2, f"h:{hour - 30}": 3, f"h:{hour - 24 * 10}": 5,
            f"c:{hour}": 7, f"c:{hour - 30}": 1, "last": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "error": json.dumps({"at": "2026-11-23T08:00:00Z", "message": "boom"})})
        h = ws.h("viewer")
        new = client.get(f"/v1/rules/{ids['new']}", headers=h).json()
        assert new["usage"]["fired"] == {"1h": 1, "24h": 3, "7d": 6, "30d": 11}
        assert new["fired_24h"] == 3
        assert new["usage"]["checked"] == {"1h": 7, "24h": 7, "7d": 8, "30d": 8}
        assert new["usage"]["last_error"] == {"at": "2026-11-23T08:00:00Z", "message": "boom"}
        used = client.get(f"/v1/rules/{ids['used-20d-ago']}", headers=h).json()
        assert used["usage"]["fired"] == {"1h": 0, "24h": 0, "7d": 0, "30d": 4}

        def unused(window: str) -> list[str]:
            got = client.get(f"/v1/rules?unused_for={window}", headers=h).json()["items"]
            return [x["name"] for x in got]

        assert unused("30d") == ["never"]
        assert unused("7d") == ["used-20d-ago", "never"]
        page = client.get("/v1/rules?unused_for=7d&limit=1", headers=h).json()
        assert [x["name"] for x in page["items"]] == ["used-20d-ago"] and page["next"]
        r.close()
