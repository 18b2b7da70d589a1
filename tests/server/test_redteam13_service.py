"""Red team, session 13, against the service.

The store: an admin's allow-list naming the unspecified
address (`http://0.0.0.0:6379`) put a tenant's script on the shared Redis store's port: a
connection to 0.0.0.0 reaches this machine's loopback, where the store listens, and the broker's
own-endpoint check compared 0.0.0.0 with 127.0.0.1 and let it through (Redis's cross-protocol
guard closed the connection: `RemoteProtocolError: Server disconnected`, a defence of Redis's,
not ours). tests/server/test_attack_store_reach.py tried 0.0.0.0 only off the allow-list.

Times past datetime's range: RFC 3339 allows 9999-12-31T23:59:59-14:00, which is the year 10000
in UTC. An ingest key's event with it as `occurred_at` was a 500; a manager's rule snoozing until
it (or `for` "3000000d") raised OverflowError in every pass of the workspace, so each of its
events was dropped unapplied (no ticket, no run; only the service's log said "cannot apply
entry"); `GET /v1/rules?unused_for=100000000h` was a 500.
"""

from __future__ import annotations

from typing import Any

import pytest
from server_helpers import Workspace

PROBE = '''
def run(event, ticket, ctx):
    seen = []
    for url in URLS:
        try:
            seen.append([url, ctx.http.get(url, timeout=2).status_code])
        except Exception as exc:
            seen.append([url, str(exc)[:200]])
    return {"custom": {"seen": seen}}
'''


def _calls(ws: Workspace, urls: list[str]) -> list[dict[str, Any]]:
    r = ws.client.post("/v1/scripts", json={"name": "probe", "source": f"URLS = {urls!r}\n" + PROBE},
                       headers=ws.h("admin"))
    assert r.status_code == 201, r.text
    r = ws.client.post("/v1/scripts/probe/test", headers=ws.h("developer"), json={
        "event": {"id": "e-1", "type": "ticket.created", "ticket": {"id": "T-1"}}})
    assert r.status_code == 200, r.text
    calls: list[dict[str, Any]] = r.json()["http_calls"]
    assert [c["url"] for c in calls] == urls, calls
    return calls


@pytest.mark.redis
@pytest.mark.parametrize("store_kind", ["redis"], indirect=False)
def test_an_allow_listed_unspecified_address_does_not_reach_the_store(ws: Workspace, store_kind: str) -> None:
    hosts = ["http://0.0.0.0:6379", "http://[::ffff:0.0.0.0]:6379"]
    r = ws.client.put("/v1/allowlist", json={"hosts": hosts}, headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    for call in _calls(ws, ["http://0.0.0.0:6379/", "http://[::ffff:0.0.0.0]:6379/"]):
        assert "own API or store" in (call.get("refused") or ""), call
        assert "error" not in call and "status" not in call, call   # never connected


FAR = "9999-12-31T23:59:59-14:00"     # the year 10000 in UTC
EARLY = "0001-01-01T00:00:00+14:00"   # the year 0 in UTC


@pytest.mark.parametrize("when", [FAR, EARLY])
def test_an_occurred_at_past_datetimes_range_is_a_422_not_a_500(ws: Workspace, when: str) -> None:
    r = ws.client.post("/v1/events?wait=true", headers=ws.h("ingest"), json={
        "id": "e-1", "type": "ticket.created", "occurred_at": when, "ticket": {"id": "T-1"}})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"] == "occurred_at", r.text


def test_a_dry_runs_now_past_datetimes_range_is_a_422(ws: Workspace) -> None:
    rule = ws.rule(name="r", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["x"]}])
    r = ws.client.post(f"/v1/rules/{rule['id']}/test", headers=ws.h("manager"), json={
        "event": {"type": "ticket.created", "ticket": {"id": "T-9"}}, "now": FAR})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"] == "now", r.text


@pytest.mark.parametrize(("snooze", "saves"), [({"until": FAR}, False), ({"for": "3000000d"}, False),
                                              ({"until": "9999-12-31T23:59:59Z"}, True)])
def test_a_snooze_past_datetimes_range_snoozes_to_the_last_time_and_loses_no_event(
        ws: Workspace, snooze: dict[str, str], saves: bool) -> None:
    """A snooze past LAST_TIME is refused when saved since session 14 (test_redteam14_rules.py);
    one stored before then, written here straight to the store, still runs, capped."""
    rule = {"name": "forever", "triggers": ["ticket.created"], "actions": [{"type": "snooze", **snooze}]}
    if saves:
        ws.rule(**rule)
    else:
        r = ws.client.post("/v1/rules", json=rule, headers=ws.h("manager"))
        assert r.status_code == 422 and "LAST_TIME" in r.text, r.text
        from server.store import catalog

        ws.client.portal.call(catalog.put_rule, ws.client.app_state["store"], ws.id,  # type: ignore[union-attr,attr-defined]
                              {"id": "r_old", **rule, "enabled": True, "position": 1})
    out = ws.send({"id": "e-1", "type": "ticket.created", "ticket": {"id": "T-1"}})
    assert out["status"] == "processed", out          # before: 202 queued, then dropped
    r = ws.client.get("/v1/tickets/T-1", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "on_hold", r.json()
    assert r.json()["snoozed_until"] == "9999-12-31T23:59:59Z", r.json()
    # and the workspace's next events still apply
    assert ws.send({"id": "e-2", "type": "ticket.created", "ticket": {"id": "T-2"}})["status"] == "processed"


@pytest.mark.parametrize(("window", "status"), [("36500d", 200), ("36501d", 400), ("100000000h", 400),
                                                ("99999999999d", 400)])
def test_unused_for_is_bounded_at_100_years(ws: Workspace, window: str, status: int) -> None:
    r = ws.client.get("/v1/rules", params={"unused_for": window}, headers=ws.h("viewer"))
    assert r.status_code == status, r.text
    if status == 400:
        assert r.json()["error"]["code"] == "invalid_duration" and "36500d" in r.text, r.text
