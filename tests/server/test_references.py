"""Issue 12 item 4: what an enabled rule names must exist; deleting what enabled rules use is a
409 (or, with ?force=true, deletes and disables them)."""

from __future__ import annotations

import concurrent.futures
from typing import Any

SOURCE = "def run(event, ticket, ctx):\n    return None\n"
POLICY = {"name": "gold", "targets": {"first_response": "1h"}}


def _rule(actions: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "refs", "enabled": True, "triggers": ["ticket.created"], "actions": actions, **extra}


def _upload(ws: Any, name: str, times: int = 1) -> None:
    for _ in range(times):
        r = ws.client.post("/v1/scripts", json={"name": name, "source": SOURCE}, headers=ws.h("developer"))
        assert r.status_code == 201, r.text


DANGLING = [{"type": "add_tags", "tags": ["x"]}, {"type": "run_script", "script": "nope"},
            {"type": "apply_sla", "policy": "platinum"}, {"type": "add_to_group", "group": "vip"},
            {"type": "remove_from_group", "group": "trial"}]


def test_an_enabled_rule_naming_missing_things_is_a_422_naming_each(ws: Any) -> None:
    r = ws.client.post("/v1/rules", json=_rule(DANGLING), headers=ws.h("manager"))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "unknown_reference"
    assert [d["path"] for d in err["details"]] == ["actions[1].script", "actions[2].policy",
                                                   "actions[3].group", "actions[4].group"]
    assert "no script named 'nope'" in err["details"][0]["reason"]
    assert ws.client.get("/v1/rules", headers=ws.h()).json()["items"] == []
    # a pinned version that does not exist
    _upload(ws, "crm", times=2)
    r = ws.client.post("/v1/rules", json=_rule([{"type": "run_script", "script": "crm", "version": 3}]),
                       headers=ws.h("manager"))
    assert r.status_code == 422
    assert r.json()["error"]["details"] == [{"path": "actions[0].script", "reason":
                                             "script 'crm' has versions 1 to 2; there is no version 3"}]
    ok = ws.client.post("/v1/rules", json=_rule([{"type": "run_script", "script": "crm", "version": 2}]),
                        headers=ws.h("manager"))
    assert ok.status_code == 201


def test_a_disabled_draft_may_dangle_but_enabling_it_is_a_422(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    draft = c.post("/v1/rules", json=_rule(DANGLING, enabled=False), headers=h)
    assert draft.status_code == 201
    rid = draft.json()["id"]
    assert c.post(f"/v1/rules/{rid}/enable", headers=h).status_code == 422
    assert c.patch(f"/v1/rules/{rid}", json={"enabled": True}, headers=h).status_code == 422
    assert c.put(f"/v1/rules/{rid}", json=_rule(DANGLING), headers=h).status_code == 422
    assert c.get(f"/v1/rules/{rid}", headers=h).json()["enabled"] is False
    # once everything exists the same rule enables
    _upload(ws, "nope")
    assert c.post("/v1/sla-policies", json={**POLICY, "name": "platinum"}, headers=h).status_code == 201
    for g in ("VIP", "trial"):  # group names compare case-insensitively, as memberships do
        assert c.post("/v1/groups", json={"name": g}, headers=h).status_code == 201
    assert c.post(f"/v1/rules/{rid}/enable", headers=h).json()["enabled"] is True


def test_restoring_a_revision_that_dangles_is_a_422(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    _upload(ws, "crm")
    rule = c.post("/v1/rules", json=_rule([{"type": "run_script", "script": "crm"}]), headers=h).json()
    c.put(f"/v1/rules/{rule['id']}", json=_rule([{"type": "add_tags", "tags": ["a"]}]), headers=h)
    assert c.delete("/v1/scripts/crm", headers=ws.h("developer")).status_code == 204  # unused now
    r = c.post(f"/v1/rules/{rule['id']}/revisions/1/restore", headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "actions[0].script"


def test_deleting_a_script_in_use_is_a_409_and_force_disables_the_rules(ws: Any) -> None:
    c, h, dev = ws.client, ws.h("manager"), ws.h("developer")
    assert c.delete("/v1/scripts/none", headers=dev).status_code == 404
    _upload(ws, "crm", times=2)
    users = [c.post("/v1/rules", json=_rule([{"type": "run_script", "script": "crm"}], name=f"u{i}"),
                    headers=h).json() for i in range(2)]
    draft = c.post("/v1/rules", json=_rule([{"type": "run_script", "script": "crm"}], enabled=False),
                   headers=h).json()
    assert c.delete("/v1/scripts/crm", headers=ws.h("manager")).status_code == 403
    r = c.delete("/v1/scripts/crm", headers=dev)
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "in_use"
    assert [d["rule"] for d in err["details"]] == [{"id": u["id"], "name": u["name"]} for u in users]
    assert "?force=true" in err["message"]
    assert c.get("/v1/scripts/crm", headers=dev).status_code == 200
    assert c.delete("/v1/scripts/crm?force=maybe", headers=dev).status_code == 422
    r = c.delete("/v1/scripts/crm?force=true", headers=dev)
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": {"script": "crm"},
                        "disabled_rules": [{"id": u["id"], "name": u["name"]} for u in users]}
    assert c.get("/v1/scripts/crm", headers=dev).status_code == 404
    assert c.get("/v1/scripts/crm/versions/1", headers=dev).status_code == 404
    for u in users:
        now = c.get(f"/v1/rules/{u['id']}", headers=h).json()
        assert now["enabled"] is False and now["revision"] == 2
        rev = c.get(f"/v1/rules/{u['id']}/revisions/2", headers=h).json()
        assert rev["action"] == "disable" and rev["reason"] == "Script 'crm' was deleted"
    assert c.get(f"/v1/rules/{draft['id']}", headers=h).json()["revision"] == 1  # untouched
    audit = c.get("/v1/audit", headers=ws.h("admin")).json()["items"]
    actions = [a["action"] for a in audit]
    assert actions.count("rule.disable") == 2 and "script.delete" in actions
    # uploaded again, it starts over at version 1
    _upload(ws, "crm")
    assert c.get("/v1/scripts/crm", headers=dev).json()["latest"] == 1


def test_deleting_a_policy_or_group_in_use_is_a_409(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    c.post("/v1/sla-policies", json=POLICY, headers=h)
    c.post("/v1/groups", json={"name": "vip"}, headers=h)
    rule = c.post("/v1/rules", json=_rule([{"type": "apply_sla", "policy": "gold"},
                                           {"type": "add_to_group", "group": "VIP"}]), headers=h).json()
    for path, label in (("/v1/sla-policies/gold", "sla_policy"), ("/v1/groups/vip", "group")):
        r = c.delete(path, headers=h)
        assert r.status_code == 409 and r.json()["error"]["details"][0]["rule"]["id"] == rule["id"]
        assert c.get(path, headers=h).status_code == 200
    r = c.delete("/v1/sla-policies/gold?force=1", headers=h)
    assert r.status_code == 200 and r.json()["disabled_rules"] == [{"id": rule["id"], "name": "refs"}]
    assert c.get("/v1/sla-policies/gold", headers=h).status_code == 404
    assert c.get(f"/v1/rules/{rule['id']}", headers=h).json()["enabled"] is False
    # the rule is disabled now: the group goes with a plain 204
    assert c.delete("/v1/groups/vip", headers=h).status_code == 204


def test_a_group_is_still_there_when_another_spelling_remains(ws: Any) -> None:
    c, h = ws.client, ws.h("manager")
    for g in ("vip", "VIP"):
        c.post("/v1/groups", json={"name": g}, headers=h)
    c.post("/v1/rules", json=_rule([{"type": "add_to_group", "group": "vip"}]), headers=h)
    assert c.delete("/v1/groups/vip", headers=h).status_code == 204  # "VIP" still answers to it
    assert c.delete("/v1/groups/VIP", headers=h).status_code == 409


def test_an_import_is_checked_against_the_workspace_after_it(ws: Any) -> None:
    c, h = ws.client, {**ws.h("manager"), "Content-Type": "application/json"}
    rule = _rule([{"type": "apply_sla", "policy": "gold"}, {"type": "add_to_group", "group": "vip"},
                  {"type": "run_script", "script": "crm"}])
    doc = {"deskflow": 1, "rules": [rule]}
    r = c.post("/v1/import?dry_run=true", json=doc, headers=h)
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == [
        "rules[0].actions[0].policy", "rules[0].actions[1].group", "rules[0].actions[2].script"]
    _upload(ws, "crm")
    # the policy and group the document brings count
    full = {**doc, "groups": [{"name": "vip", "color": None}], "sla_policies": [POLICY]}
    r = c.post("/v1/import", json=full, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["applied"] is True
    # a prune that would delete the group an enabled rule kept in place uses is refused
    kept = c.post("/v1/rules", json=_rule([{"type": "add_to_group", "group": "vip"}], name="kept"),
                  headers=ws.h("manager")).json()
    r = c.post("/v1/import?missing=delete", json={"deskflow": 1, "groups": []}, headers=h)
    assert r.status_code == 422
    paths = {d["path"] for d in r.json()["error"]["details"]}
    assert f"rule:{kept['id']}.actions[0].group" in paths and len(paths) == 2  # and the imported one


def test_a_delete_racing_rule_creates_never_leaves_an_enabled_dangling_rule(ws: Any) -> None:
    """Rule writes WATCH the scripts hash and deletes WATCH the rules hash: whatever interleaving,
    afterwards no enabled rule names the deleted script."""
    c, h, dev = ws.client, ws.h("manager"), ws.h("developer")
    for round_ in range(3):
        _upload(ws, "race")

        def create(i: int) -> int:
            return c.post("/v1/rules", json=_rule([{"type": "run_script", "script": "race"}],
                                                  name=f"r{round_}-{i}"), headers=h).status_code

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(create, i) for i in range(6)]
            deleted = pool.submit(lambda: c.delete("/v1/scripts/race?force=true", headers=dev).status_code)
            codes = [f.result() for f in futures]
        assert deleted.result() == 200 and set(codes) <= {201, 422}
        if c.get("/v1/scripts/race", headers=dev).status_code == 404:
            rules = c.get("/v1/rules?limit=500", headers=h).json()["items"]
            assert not [r for r in rules if r["enabled"] and r["actions"][0].get("script") == "race"]
        for r in c.get("/v1/rules?limit=500", headers=h).json()["items"]:
            c.delete(f"/v1/rules/{r['id']}", headers=h)


def test_a_policy_whose_hours_a_rule_uses_as_its_calendar_is_in_use(ws: Any) -> None:
    """A business-time condition names a policy's business hours; deleting the policy or taking its
    hours away would leave the rule uncompilable (the worker skips it, silently to the user)."""
    c, h = ws.client, ws.h("manager")
    hours = {"timezone": "UTC", "week": {"mon": ["09:00", "17:00"]}}
    assert c.post("/v1/sla-policies", json={**POLICY, "business_hours": hours}, headers=h).status_code == 201
    rule = c.post("/v1/rules", json={"name": "late", "enabled": True, "triggers": ["time.reached"],
                                     "conditions": {"all": [{"field": "last_customer_message_at",
                                                             "op": "older_than_business", "value": "4h",
                                                             "calendar": "gold"}]},
                                     "actions": [{"type": "add_tags", "tags": ["late"]}]}, headers=h)
    assert rule.status_code == 201, rule.text
    rid = rule.json()["id"]
    r = c.put("/v1/sla-policies/gold", json=POLICY, headers=h)  # without business_hours
    assert r.status_code == 409, r.text
    assert r.json()["error"]["details"][0]["rule"]["id"] == rid
    assert c.get("/v1/sla-policies/gold", headers=h).json()["business_hours"] == hours
    assert c.put("/v1/sla-policies/gold", json={**POLICY, "business_hours": hours, "warn_before": "5m"},
                 headers=h).status_code == 200
    assert c.delete("/v1/sla-policies/gold", headers=h).status_code == 409
    doc = c.get("/v1/export", headers=h).json()
    doc["sla_policies"][0].pop("business_hours")
    r = c.post("/v1/import", json=doc, headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "rules[0].conditions.all[0].calendar"
    r = c.delete("/v1/sla-policies/gold?force=yes", headers=h)
    assert r.status_code == 200 and r.json()["disabled_rules"] == [{"id": rid, "name": "late"}]
