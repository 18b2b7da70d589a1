"""SLA policies over HTTP: create, order, validation with paths, replace, delete."""
from __future__ import annotations

from typing import Any

import pytest
from server_helpers import event

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


def test_every_problem_of_a_policy_in_one_answer(ws: Any) -> None:
    """Issue 12 item 10: not just the first problem, as rules already do."""
    body = {"name": "bad", "escalate": True,
            "conditions": {"all": [{"field": "nope", "op": "is", "value": 1}]},
            "targets": {"first_reply": "1h", "resolution": "soon", "first_response": "15m"},
            "warn_before": "later", "pause_on_pending": "yes",
            "business_hours": {"timezone": "Mars/Base", "week": {"mon": ["17:00", "09:00"],
                                                                 "tue": ["09:00", "17:00"], "funday": []},
                               "holidays": ["2026-12-25", "xmas"]}}
    assert post(ws, {"name": "bad", "targets": {"resolution": "1h"}}).status_code == 201
    for send in (lambda b: post(ws, b),
                 lambda b: ws.client.put("/v1/sla-policies/bad", json=b, headers=ws.h("manager"))):
        r = send(body)
        assert r.status_code == 422, r.text
        paths = [d["path"] for d in r.json()["error"]["details"]]
        assert paths == ["escalate", "conditions.all[0].field", "targets.first_reply", "targets.resolution",
                         "warn_before", "pause_on_pending", "business_hours.timezone",
                         "business_hours.week.mon", "business_hours.week.funday",
                         "business_hours.holidays[1]"], paths


def test_an_unquoted_yaml_time_read_as_a_number_is_explained(ws: Any) -> None:
    """PyYAML reads `17:00` as 1020 (17 * 60): say so, and how to write it."""
    body = {"name": "hours", "targets": {"resolution": "8h"},
            "business_hours": {"timezone": "UTC", "week": {"mon": ["09:00", 1020],
                                                           "tue": [["08:00", 720], [780, 1020]]}}}
    r = post(ws, body)
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert details[0] == {"path": "business_hours.week.mon[1]", "reason":
                          'must be a time "HH:MM"; got the number 1020; in YAML write times in quotes, '
                          'e.g. "17:00"'}
    assert [d["path"] for d in details] == ["business_hours.week.mon[1]", "business_hours.week.tue[0][1]",
                                           "business_hours.week.tue[1][0]", "business_hours.week.tue[1][1]"]
    assert '"13:00"' in details[2]["reason"]
    # the same through a YAML import (unless the loader reads such times as text: then it is fine)
    doc = ("deskflow: 1\nsla_policies:\n- name: hours\n  targets: {resolution: 8h}\n"
           "  business_hours:\n    timezone: UTC\n    week:\n      mon: [09:00, 17:00]\n")
    r = ws.client.post("/v1/import", content=doc, headers={**ws.h("manager"), "Content-Type": "application/yaml"})
    if r.status_code == 200:
        stored = ws.client.get("/v1/sla-policies/hours", headers=ws.h()).json()
        assert stored["business_hours"]["week"]["mon"] == ["09:00", "17:00"]
        return
    assert r.status_code == 422, r.text
    [detail] = r.json()["error"]["details"]
    assert detail["path"] == "sla_policies[0].business_hours.week.mon[1]"
    assert "got the number 1020; in YAML write times in quotes" in detail["reason"]


def test_tickets_filter_by_their_sla_policy(ws: Any) -> None:
    """GET /v1/tickets?sla_policy= lists a policy's tickets (the managers' SLA view shows their
    targets' states); the name is exact, and a ticket under no policy is in no such list."""
    assert post(ws, VIP).status_code == 201
    assert post(ws, {"name": "default", "targets": {"resolution": "2d"}}).status_code == 201
    ws.send(event("e1", tid="T-vip", ticket={"contact": {"id": "C-v", "groups": ["vip"]}}))
    ws.send(event("e2", tid="T-plain"))
    ws.send(event("e3", tid="T-vip2", ticket={"contact": {"id": "C-v"}}))

    def ids(q: str) -> list[str]:
        r = ws.client.get(f"/v1/tickets?{q}", headers=ws.h("viewer"))
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    assert ids("sla_policy=vip") == ["T-vip", "T-vip2"]
    assert ids("sla_policy=default") == ["T-plain"]
    assert ids("sla_policy=VIP") == [] and ids("sla_policy=nope") == []
    assert ids("sla_policy=vip&limit=1") == ["T-vip"]
    first = ws.client.get("/v1/tickets?sla_policy=vip&limit=1", headers=ws.h("viewer")).json()
    assert ids(f"sla_policy=vip&limit=1&cursor={first['next']}") == ["T-vip2"]
    ticket = ws.client.get("/v1/tickets?sla_policy=vip", headers=ws.h("viewer")).json()["items"][0]
    assert ticket["sla"]["policy"] == "vip" and "first_response" in ticket["sla"]["targets"]
