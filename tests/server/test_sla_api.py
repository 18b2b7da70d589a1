"""SLA policies over HTTP: create, order, validation with paths, replace, delete."""
from __future__ import annotations

from typing import Any

import pytest

VIP = {"name": "vip", "conditions": {"field": "contact.groups", "op": "includes", "value": "vip"},
       "targets": {"first_response": "15m", "next_response": "1h", "resolution": "8h"}, "warn_before": "5m",
       "business_hours": {"timezone": "Europe/Oslo", "week": {"mon": ["09:00", "17:00"]}, "holidays": ["2026-12-25"]}}


def post(ws: Any, body: dict[str, Any]) -> Any:
    return ws.client.post("/v1/sla-policies", json=body, headers=ws.h("manager"))


def test_create_list_in_order_replace_delete(ws: Any) -> None:
    r = post(ws, VIP)
    assert r.status_code == 201, r.text
    assert r.json()["targets"] == VIP["targets"] and r.json()["position"] == 1
    assert post(ws, {"name": "default", "targets": {"resolution": "2d"}}).status_code == 201
    assert post(ws, VIP).status_code == 409
    listed = ws.client.get("/v1/sla-policies", headers=ws.h("viewer")).json()
    assert [p["name"] for p in listed["items"]] == ["vip", "default"]
    r = ws.client.put("/v1/sla-policies/vip", json={**VIP, "targets": {"first_response": "10m"}}, headers=ws.h("manager"))
    assert r.status_code == 200 and r.json()["targets"] == {"first_response": "10m"} and r.json()["position"] == 1
    assert ws.client.get("/v1/sla-policies/vip", headers=ws.h("viewer")).json()["targets"] == {"first_response": "10m"}
    assert ws.client.delete("/v1/sla-policies/vip", headers=ws.h("manager")).status_code == 204
    assert ws.client.get("/v1/sla-policies/vip", headers=ws.h("viewer")).status_code == 404


@pytest.mark.parametrize("change, path", [
    ({"targets": {}}, "targets"),
    ({"targets": {"first_reply": "1h"}}, "targets.first_reply"),
    ({"warn_before": "soon"}, "warn_before"),
    ({"business_hours": {"timezone": "Mars/Base", "week": {"mon": ["09:00", "17:00"]}}}, "business_hours.timezone"),
    ({"business_hours": {"timezone": "UTC", "week": {"mon": ["17:00", "09:00"]}}}, "business_hours.week.mon"),
    ({"conditions": {"field": "subject", "op": "gt", "value": 3}}, "conditions.op"),
    ({"name": "has space"}, "name"),
    ({"escalate": True}, "escalate"),
])
def test_invalid_policies_are_422_with_the_path(ws: Any, change: dict[str, Any], path: str) -> None:
    r = post(ws, {**VIP, **change})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"] == path


def test_a_policy_cannot_be_renamed_by_put(ws: Any) -> None:
    post(ws, VIP)
    r = ws.client.put("/v1/sla-policies/vip", json={**VIP, "name": "gold"}, headers=ws.h("manager"))
    assert r.status_code == 422
