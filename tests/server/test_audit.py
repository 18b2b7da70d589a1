"""The audit log (issue 7 part 4): who changed which rule, SLA policy, group, script, allow-list,
secret (name only) and key, newest first, filtered by target and actor; admin only."""

from __future__ import annotations

from typing import Any

SOURCE = "def run(event, ticket, ctx):\n    return None\n"
RULE = {"name": "r", "triggers": ["ticket.created"], "actions": [{"type": "close"}]}


def audit(ws: Any, **params: Any) -> Any:
    r = ws.client.get("/v1/audit", params=params, headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    return r.json()


def test_changes_of_every_kind_are_logged_newest_first(ws: Any) -> None:
    c = ws.client
    rule = ws.rule(**RULE)  # the manager key (created by the admin key: key.create first)
    c.patch(f"/v1/rules/{rule['id']}", json={"name": "renamed"}, headers=ws.h("manager"))
    c.post("/v1/sla-policies", json={"name": "p", "targets": {"resolution": "8h"}}, headers=ws.h("manager"))
    c.post("/v1/groups", json={"name": "vip", "color": "#ff8800"}, headers=ws.h("manager"))
    c.patch("/v1/groups/vip", json={"color": "#000000"}, headers=ws.h("manager"))
    c.post("/v1/scripts", json={"name": "s1", "source": SOURCE}, headers=ws.h("developer"))
    c.put("/v1/allowlist", json={"hosts": ["crm.example.com"]}, headers=ws.h())
    c.put("/v1/secrets/CRM_TOKEN", json={"value": "hunter2-very-secret"}, headers=ws.h())
    c.delete("/v1/secrets/CRM_TOKEN", headers=ws.h())
    c.delete("/v1/groups/vip", headers=ws.h("manager"))
    c.delete(f"/v1/rules/{rule['id']}", headers=ws.h("manager"))
    items = audit(ws, limit=500)["items"]
    got = [(e["action"], e["target"]) for e in items]
    tail = got[::-1]
    assert tail[0][0] == "key.create"  # the manager key
    want = [("rule.create", f"rule:{rule['id']}"), ("rule.rename", f"rule:{rule['id']}"),
            ("sla_policy.create", "sla_policy:p"), ("group.create", "group:vip"),
            ("group.update", "group:vip"), ("script.upload", "script:s1"),
            ("allowlist.update", "allowlist"), ("secret.put", "secret:CRM_TOKEN"),
            ("secret.delete", "secret:CRM_TOKEN"), ("group.delete", "group:vip"),
            ("rule.delete", f"rule:{rule['id']}")]
    assert [g for g in tail if not g[0].startswith("key.")] == want
    assert "hunter2" not in str(items)
    by_action = {e["action"]: e for e in items}
    assert by_action["rule.rename"]["actor"] == {"key_id": by_action["rule.rename"]["actor"]["key_id"],
                                                 "key_name": "manager key", "role": "manager"}
    assert by_action["rule.rename"]["detail"]["revision"] == 2
    assert by_action["script.upload"]["actor"]["key_name"] == "developer key"
    assert by_action["script.upload"]["detail"] == {"version": 1}
    assert by_action["allowlist.update"]["detail"] == {"hosts": ["crm.example.com"]}
    assert by_action["secret.put"]["actor"]["key_name"] == "initial admin key"
    assert all(e["at"].endswith("Z") and e["id"] for e in items)


def test_keys_are_logged_without_secrets(ws: Any) -> None:
    made = ws.client.post("/v1/keys", json={"role": "viewer", "name": "bridge"}, headers=ws.h()).json()
    ws.client.delete(f"/v1/keys/{made['id']}", headers=ws.h())
    items = audit(ws, target=f"key:{made['id']}")["items"]
    assert [e["action"] for e in items] == ["key.revoke", "key.create"]
    assert items[1]["detail"] == {"name": "bridge", "role": "viewer"}
    assert made["key"] not in str(audit(ws, limit=500))


def test_filters_and_paging(ws: Any) -> None:
    c = ws.client
    rules = [ws.rule(**{**RULE, "name": f"r{i}"}) for i in range(3)]
    c.post("/v1/groups", json={"name": "vip"}, headers=ws.h())
    only = audit(ws, target=f"rule:{rules[1]['id']}")["items"]
    assert [(e["action"], e["target"]) for e in only] == [("rule.create", f"rule:{rules[1]['id']}")]
    kinds = audit(ws, target="rule")["items"]
    assert [e["target"] for e in kinds] == [f"rule:{r['id']}" for r in reversed(rules)]
    by_admin = audit(ws, actor="initial admin key")["items"]
    assert {e["action"] for e in by_admin} == {"key.create", "group.create"}
    manager_id = kinds[0]["actor"]["key_id"]
    assert [e["target"] for e in audit(ws, actor=manager_id)["items"]] == [e["target"] for e in kinds]
    first = audit(ws, target="rule", limit=2)
    assert len(first["items"]) == 2 and first["next"]
    rest = audit(ws, target="rule", limit=2, cursor=first["next"])
    assert [e["target"] for e in first["items"] + rest["items"]] == [e["target"] for e in kinds]
    assert rest["next"] is None or audit(ws, target="rule", cursor=rest["next"])["items"] == []
    assert c.get("/v1/audit?cursor=zzz", headers=ws.h()).status_code == 400
    assert c.get("/v1/audit?limit=0", headers=ws.h()).status_code == 400


def test_only_admins_read_it(ws: Any) -> None:
    for role in ("viewer", "manager", "developer", "ingest"):
        r = ws.client.get("/v1/audit", headers=ws.h(role))
        assert r.status_code == 403, role
