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


def _admins_sender(ws: Workspace, **extra: Any) -> str:
    """The CRM secret and host set by an admin, and the admin's rule that sends it (its id)."""
    c = ws.client
    assert c.put("/v1/allowlist", json={"hosts": ["crm.example.com"]}, headers=ws.h("admin")).status_code == 200
    assert c.put("/v1/secrets/CRM", json={"value": "s3cret", "hosts": ["crm.example.com"]},
                 headers=ws.h("admin")).status_code in (200, 201)
    r = c.post("/v1/rules", json={**_sender("https://crm.example.com/v1/who"), **extra}, headers=ws.h("admin"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.fixture
def removed(ws: Workspace) -> str:
    """A rule whose secret-sending action an admin wrote (revision 1), then took out (2)."""
    c = ws.client
    rule_id = _admins_sender(ws)
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


# -- widening when an admin's secret goes: a copy, or new triggers and conditions -------------

VIP_ONLY = {"field": "tags", "op": "includes", "value": "vip"}


@pytest.fixture
def vip_sender(ws: Workspace) -> str:
    """An admin's rule that sends the CRM secret on new tickets tagged vip, and nothing else."""
    return _admins_sender(ws, conditions=VIP_ONLY)


def _secret_reach(ws: Workspace, event: dict[str, Any]) -> list[str]:
    """Ids of the rules that send the CRM secret and would fire on `event` (a dry run each)."""
    out = []
    for rule in ws.client.get("/v1/rules", headers=ws.h("viewer")).json()["items"]:
        if any(a.get("secret") == "CRM" for a in rule["actions"]):
            r = ws.client.post(f"/v1/rules/{rule['id']}/test", json={"event": event}, headers=ws.h("manager"))
            assert r.status_code == 200, r.text
            if r.json()["matched"]:
                out.append(rule["id"])
    return out


PLAIN = {"type": "ticket.created", "ticket": {"id": "T-plain", "subject": "hello", "tags": []}}
WIDER = {"triggers": ["ticket.created", "ticket.updated"], "conditions": None}


def test_a_managers_copy_and_edit_cannot_send_the_admins_secret_further(ws: Workspace, vip_sender: str) -> None:
    """On main the copy was checked as an edit of the original (its actions "kept"), and so was
    every edit of the copy: a manager duplicated the rule, dropped its conditions, enabled it, and
    the CRM got the admin's secret on every ticket."""
    c, m = ws.client, ws.h("manager")
    assert _secret_reach(ws, PLAIN) == []
    dup = c.post(f"/v1/rules/{vip_sender}/duplicate", headers=m)
    for copy_id in ([dup.json()["id"]] if dup.status_code == 201 else []):   # (main: edit the copy)
        c.patch(f"/v1/rules/{copy_id}", json={**WIDER, "enabled": True}, headers=m)
    assert _secret_reach(ws, PLAIN) == [], "the admin's secret now goes on tickets it never went on"
    assert dup.status_code == 403, dup.text
    assert dup.json()["error"]["details"][0]["path"] == "actions[0]"
    assert len(c.get("/v1/rules", headers=m).json()["items"]) == 1


@pytest.mark.parametrize("change", [{"conditions": None}, {"triggers": ["ticket.created", "ticket.updated"]},
                                    {"conditions": {"field": "subject", "op": "contains", "value": "h"}}])
def test_a_manager_cannot_widen_when_the_admins_secret_is_sent(ws: Workspace, vip_sender: str,
                                                              change: dict[str, Any]) -> None:
    """The same widening on the admin's own rule (PATCH, PUT, a draft's publish): the triggers and
    conditions of a rule that sends a secret are the admin's."""
    c, m = ws.client, ws.h("manager")
    rule = c.get(f"/v1/rules/{vip_sender}", headers=m).json()
    r = c.patch(f"/v1/rules/{vip_sender}", json=change, headers=m)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["details"][0]["path"] == next(iter(change))
    body = {k: rule[k] for k in ("name", "triggers", "conditions", "actions", "enabled")}
    assert c.put(f"/v1/rules/{vip_sender}", json={**body, **change}, headers=m).status_code == 403
    assert c.put(f"/v1/rules/{vip_sender}/draft", json={**body, **change}, headers=m).status_code == 403
    assert c.get(f"/v1/rules/{vip_sender}", headers=m).json()["revision"] == 1
    assert _secret_reach(ws, PLAIN) == []


def test_a_manager_may_still_rename_disable_and_reorder_it_and_an_admin_may_widen_it(
        ws: Workspace, vip_sender: str) -> None:
    c, m = ws.client, ws.h("manager")
    rule = c.get(f"/v1/rules/{vip_sender}", headers=m).json()
    assert c.patch(f"/v1/rules/{vip_sender}", json={"name": "crm vip"}, headers=m).status_code == 200
    assert c.post(f"/v1/rules/{vip_sender}/disable", headers=m).status_code == 200
    body = {k: rule[k] for k in ("triggers", "conditions", "actions")}   # the same scope, resent
    assert c.put(f"/v1/rules/{vip_sender}", json={**body, "name": "crm", "triggers": ["ticket.created"]},
                 headers=m).status_code == 200
    assert c.patch(f"/v1/rules/{vip_sender}", json={"conditions": None, "enabled": True},
                   headers=ws.h("admin")).status_code == 200
    assert _secret_reach(ws, PLAIN) == [vip_sender]
    copy = c.post(f"/v1/rules/{vip_sender}/duplicate", headers=ws.h("admin"))
    assert copy.status_code == 201, copy.text
