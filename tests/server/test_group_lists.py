"""One check of a list of group names wherever one comes in: an event's contact and company,
PUT /v1/contacts/{id}/groups and PUT /v1/companies/{id}/groups. The PUT routes used to take any
number of groups of any length (a contact with a million groups), and company groups in an event
took control characters, which the contact's refuse (group names are parts of store keys)."""

from __future__ import annotations

import pytest
from server_helpers import Workspace, event

BAD = [
    (["vip"] * 0 + [f"g{i}" for i in range(101)], "the limit is 100 groups"),
    (["x" * 201], "at most 200 characters"),
    (["vip\x00"], "control characters"),
    (["   "], "non-empty strings"),
    ("vip", "non-empty strings"),
]


@pytest.mark.parametrize("groups, reason", BAD)
def test_put_contact_groups_refuses_by_name(ws: Workspace, groups, reason) -> None:
    ws.send(event("e1", ticket={"contact": {"id": "C-1"}}))
    r = ws.client.put("/v1/contacts/C-1/groups", json={"groups": groups}, headers=ws.h("manager"))
    assert r.status_code == 422, r.text
    assert reason in r.json()["error"]["details"][0]["reason"]


@pytest.mark.parametrize("groups, reason", BAD)
def test_put_company_groups_refuses_by_name(ws: Workspace, groups, reason) -> None:
    ws.send(event("e1", ticket={"contact": {"id": "C-1", "company": {"id": "CO-1"}}}))
    r = ws.client.put("/v1/companies/CO-1/groups", json={"groups": groups}, headers=ws.h("manager"))
    assert r.status_code == 422, r.text
    assert reason in r.json()["error"]["details"][0]["reason"]


@pytest.mark.parametrize("where", ["contact", "company"])
def test_an_events_groups_get_the_same_check(ws: Workspace, where: str) -> None:
    contact = {"id": "C-1", "groups": ["ok"]}
    if where == "company":
        contact["company"] = {"id": "CO-1", "groups": ["vip\x00"]}
    else:
        contact["groups"] = ["vip\x00"]
    r = ws.client.post("/v1/events", json=event("e1", ticket={"contact": contact}),
                       headers=ws.h("ingest"))
    assert r.status_code == 422, r.text
    paths = [d["path"] for d in r.json()["error"]["details"]]
    assert paths == (["ticket.contact.company.groups"] if where == "company"
                     else ["ticket.contact.groups"])


def test_good_groups_are_set(ws: Workspace) -> None:
    ws.send(event("e1", ticket={"contact": {"id": "C-1", "company": {"id": "CO-1"}}}))
    for path in ("/v1/contacts/C-1/groups", "/v1/companies/CO-1/groups"):
        r = ws.client.put(path, json={"groups": ["VIP", "vip", "trial"]}, headers=ws.h("manager"))
        assert r.status_code == 200, r.text
        assert r.json()["groups"] == ["VIP", "trial"]
