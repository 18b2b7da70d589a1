"""Rules report when they last fired and how often in the last 24 hours (the managers' page shows it)."""
from __future__ import annotations

from typing import Any


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
