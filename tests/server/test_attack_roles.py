"""Hostile manager vs the admin's decisions: a rule that sends a stored secret needs an admin key
to be created or changed (README, "No role acts above itself"). Restoring a revision is a change
too: an admin who took a secret out of a rule (say the CRM's host moved) must not see a manager
put it back by restoring the revision from before."""

from __future__ import annotations

from typing import Any

import pytest
from server_helpers import Workspace


def _sender(url: str) -> dict[str, Any]:
    return {"name": "crm", "triggers": ["ticket.created"], "enabled": True,
            "actions": [{"type": "http_request", "method": "GET", "url": url, "secret": "CRM"}]}


@pytest.fixture
def removed(ws: Workspace) -> str:
    """A rule whose secret-sending action an admin wrote (revision 1), then took out (2)."""
    c = ws.client
    assert c.put("/v1/allowlist", json={"hosts": ["crm.example.com"]}, headers=ws.h("admin")).status_code == 200
    assert c.put("/v1/secrets/CRM", json={"value": "s3cret", "hosts": ["crm.example.com"]},
                 headers=ws.h("admin")).status_code in (200, 201)
    r = c.post("/v1/rules", json=_sender("https://crm.example.com/v1/who"), headers=ws.h("admin"))
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    r = c.put(f"/v1/rules/{rule_id}", headers=ws.h("admin"), json={
        "name": "crm", "triggers": ["ticket.created"], "enabled": True,
        "actions": [{"type": "add_tags", "tags": ["crm-off"]}]})
    assert r.status_code == 200, r.text
    return str(rule_id)


def test_a_manager_cannot_restore_a_secret_the_admin_removed(ws: Workspace, removed: str) -> None:
    r = ws.client.post(f"/v1/rules/{removed}/revisions/1/restore", headers=ws.h("manager"))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["details"][0]["path"] == "actions[0]"
    actions = ws.client.get(f"/v1/rules/{removed}", headers=ws.h("viewer")).json()["actions"]
    assert actions == [{"type": "add_tags", "tags": ["crm-off"]}]


def test_an_admin_may_restore_it(ws: Workspace, removed: str) -> None:
    r = ws.client.post(f"/v1/rules/{removed}/revisions/1/restore", headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["actions"][0]["secret"] == "CRM"


def test_a_manager_may_restore_a_revision_that_keeps_the_admins_action(ws: Workspace) -> None:
    """Renaming an admin's rule is a manager's right; so is undoing the rename."""
    c = ws.client
    assert c.put("/v1/secrets/CRM", json={"value": "s3cret", "hosts": ["crm.example.com"]},
                 headers=ws.h("admin")).status_code in (200, 201)
    assert c.put("/v1/allowlist", json={"hosts": ["crm.example.com"]}, headers=ws.h("admin")).status_code == 200
    rule_id = c.post("/v1/rules", json=_sender("https://crm.example.com/v1/who"),
                     headers=ws.h("admin")).json()["id"]
    assert c.patch(f"/v1/rules/{rule_id}", json={"name": "crm2"}, headers=ws.h("manager")).status_code == 200
    r = c.post(f"/v1/rules/{rule_id}/revisions/1/restore", headers=ws.h("manager"))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "crm"
