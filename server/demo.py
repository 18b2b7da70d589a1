"""`deskflow serve --demo`: a workspace named "demo" with sample rules, and fresh keys for it."""

from __future__ import annotations

from typing import Any

from server.store import catalog
from server.store.connect import Store

__all__ = ["DEMO_RULES", "setup_demo"]

DEMO_RULES: list[dict[str, Any]] = [
    {"name": "VIP refunds go to the VIP desk", "enabled": True,
     "triggers": ["ticket.created", "message.received"],
     "conditions": {"all": [
         {"field": "contact.groups", "op": "includes", "value": "vip"},
         {"any": [{"field": "subject", "op": "contains", "value": "refund"},
                  {"field": "message.body", "op": "matches", "value": "(?i)money back"}]}]},
     "actions": [{"type": "set", "field": "priority", "value": "urgent"},
                 {"type": "set", "field": "department", "value": "vip-desk"},
                 {"type": "add_tags", "tags": ["vip", "refund"]}]},
    {"name": "Unhappy customers are tagged", "enabled": True, "triggers": ["message.received"],
     "conditions": {"all": [{"field": "message.author", "op": "is", "value": "customer"},
                            {"field": "message.body", "op": "matches",
                             "value": "feel(s|ing)? bad|angry|terrible"}]},
     "actions": [{"type": "add_tags", "tags": ["feels-bad"]},
                 {"type": "remove_tags", "tags": ["feels-good"]},
                 {"type": "notify", "target": "team-leads",
                  "message": "Unhappy customer on {{ticket.subject}}"}]},
    {"name": "Urgent in the subject raises priority", "enabled": True,
     "triggers": ["ticket.created", "ticket.updated"],
     "conditions": {"all": [{"field": "subject", "op": "contains", "value": "urgent"},
                            {"field": "priority", "op": "in", "value": ["low", "normal"]}]},
     "actions": [{"type": "set", "field": "priority", "value": "high"}]},
    {"name": "Acknowledge new tickets", "enabled": False, "triggers": ["ticket.created"],
     "conditions": {},
     "actions": [{"type": "send_message",
                  "template": "Hi {{contact.name}}, we got your message about "
                              "\"{{ticket.subject}}\" and will answer soon."}]},
]

_DEMO_KEY_NAMES = ("demo admin (serve --demo)", "demo ingest (serve --demo)")


async def setup_demo(store: Store) -> dict[str, str]:
    """Create (or reuse) the demo workspace; replace its demo keys (secrets are stored hashed, so
    the old ones cannot be shown again). Returns {workspace, admin_key, ingest_key}."""
    ws_id = await catalog.find_workspace_by_name(store, "demo")
    if ws_id is None:
        ws, _ = await catalog.create_workspace(store, "demo")
        ws_id = ws["id"]
        for record in await catalog.list_keys(store, ws_id):
            await catalog.revoke_key(store, ws_id, record["id"])
    for record in await catalog.list_keys(store, ws_id):
        if record["name"] in _DEMO_KEY_NAMES:
            await catalog.revoke_key(store, ws_id, record["id"])
    _, admin = await catalog.create_key(store, ws_id, "admin", _DEMO_KEY_NAMES[0])
    _, ingest = await catalog.create_key(store, ws_id, "ingest", _DEMO_KEY_NAMES[1])
    if not await catalog.list_rules(store, ws_id):
        now = catalog.now_iso()
        for pos, rule in enumerate(DEMO_RULES, start=1):
            rule_id = catalog.new_rule_id()
            await catalog.put_rule(store, ws_id, {"id": rule_id, **rule, "position": pos,
                                                  "created_at": now, "updated_at": now,
                                                  "revision": 1})
    return {"workspace": ws_id, "admin_key": admin, "ingest_key": ingest}
