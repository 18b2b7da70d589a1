"""The request and response schemas of /openapi.json, one per operation (docs/api.md in JSON Schema).

Built from the engine's and the validators' own tables (triggers, action types, fields' sets,
roles, name patterns, limits), so a generated client -- and schemathesis, which sends bodies drawn
from these -- meets what the handlers check. Request schemas say what a valid body is; response
schemas name the keys an answer always has (more may be added: additionalProperties stays open).
Conditions nest to any depth in a rule; the schema spells out two levels and leaves deeper groups
as objects, since recursive references are hard on generators and add nothing to a reader.
"""

from __future__ import annotations

from typing import Any

from rules import TRIGGERS
from rules.actions import ACTION_KEYS, METHODS
from rules.sla import TARGETS
from server.api.validate import GROUP_NAME

__all__ = ["BODIES", "RESPONSES", "COMPONENTS", "PLANNED"]

ROLES = ("ingest", "viewer", "manager", "developer", "admin")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SCRIPT_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def page(item: dict[str, Any]) -> dict[str, Any]:
    """The shape of every listing: {"items": [...], "next": cursor | null}."""
    return {"type": "object", "required": ["items", "next"], "properties": {
        "items": {"type": "array", "items": item}, "next": {"type": ["string", "null"]}}}


def _obj(required: list[str] | tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


_STR = {"type": "string"}
_TEXT = {"type": "string", "minLength": 1}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"]}  # also any optional text an answer may leave null
_ANY_OBJ = {"type": "object"}
_DURATION = {"type": "string", "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$", "minLength": 2,
             "description": "a duration like 90s, 5m, 1h30m, 2d"}
_NAMES = {"type": "array", "items": _TEXT}

_BUSINESS_HOURS = _obj(["week"], timezone={"type": "string", "examples": ["Europe/Oslo"]},
                       week={"type": "object", "minProperties": 1, "additionalProperties": False,
                             "properties": {d: {"type": "array", "items": _STR} for d in _DAYS}},
                       holidays={"type": "array", "items": {"type": "string", "format": "date"}})
_LEAF = _obj(["field", "op"], field=_TEXT, op=_TEXT, value={}, case_sensitive=_BOOL,
             calendar={"anyOf": [_TEXT, ref("BusinessHours")]})
_GROUP_DEEP = {"type": "array", "items": _ANY_OBJ}
_GROUP = {"anyOf": [_obj(["all"], all=_GROUP_DEEP), _obj(["any"], any=_GROUP_DEEP)]}
_CONDITION = {"anyOf": [ref("Leaf"), _obj(["all"], all={"type": "array", "items": {
    "anyOf": [ref("Leaf"), _GROUP]}}), _obj(["any"], any={"type": "array", "items": {
        "anyOf": [ref("Leaf"), _GROUP]}})]}
_ACTION = {"type": "object", "required": ["type"], "properties": {
    "type": {"enum": sorted(ACTION_KEYS)}, "method": {"enum": sorted(METHODS)}},
    "description": "keys by type: " + "; ".join(
        f"{t}: {', '.join(sorted(req)) or '-'}" + (f" (optional {', '.join(sorted(opt))})" if opt else "")
        for t, (req, opt) in sorted(ACTION_KEYS.items()))}
_RULE_PROPS = {
    "name": _TEXT, "description": _TEXT, "enabled": _BOOL,
    "triggers": {"type": "array", "minItems": 1, "items": {"enum": sorted(TRIGGERS)}},
    "conditions": {"anyOf": [ref("Condition"), {"type": "object", "maxProperties": 0},
                             {"type": "null"}]},
    "actions": {"type": "array", "minItems": 1, "items": ref("Action")},
    "stop": _BOOL,
}
_RULE_OWNED = {"id": _STR, "position": _INT, "created_at": _STR, "updated_at": _STR,
               "revision": _INT}
_POLICY_PROPS = {
    "name": {"type": "string", "pattern": GROUP_NAME.pattern}, "description": _TEXT,
    "conditions": {"anyOf": [ref("Condition"), {"type": "object", "maxProperties": 0},
                             {"type": "null"}]},
    "targets": {"type": "object", "minProperties": 1, "additionalProperties": False,
                "properties": {t: _DURATION for t in TARGETS}},
    "warn_before": _DURATION, "pause_on_pending": _BOOL, "business_hours": ref("BusinessHours"),
    "position": {"type": "integer", "minimum": 1},
}
_EVENT_SUMMARY = _obj(["event_id", "status"], event_id=_STR,
                      status={"enum": ["queued", "duplicate", "processed"]}, run_id=_STR,
                      changes=_ANY_OBJ, effects={"type": "array"}, ticket=_ANY_OBJ)
_REVISION = _obj(["n", "action", "at", "by"], n=_INT, action=_STR, at=_STR, by=_ANY_OBJ)

COMPONENTS: dict[str, Any] = {
    "BusinessHours": _BUSINESS_HOURS,
    "Leaf": _LEAF,
    "Condition": _CONDITION,
    "Action": _ACTION,
    "Rule": {**_obj(["name", "triggers", "actions"], **_RULE_PROPS), "additionalProperties": False},
    "RulePatch": {**_obj((), **_RULE_PROPS), "additionalProperties": False},
    "StoredRule": _obj(["id", "name", "enabled", "triggers", "actions", "position", "revision"],
                       **_RULE_PROPS, **_RULE_OWNED, last_fired_at=_TIME_OR_NULL,
                       fired_24h=_INT, usage=_ANY_OBJ),
    "SlaPolicy": {**_obj(["name", "targets"], **_POLICY_PROPS), "additionalProperties": False},
    "StoredSlaPolicy": _obj(["name", "targets", "position", "revision"], **_POLICY_PROPS,
                            created_at=_STR, updated_at=_STR, revision=_INT),
    "Group": _obj(["name"], name=_STR, color={"type": ["string", "null"]},
                  text_color={"type": ["string", "null"]},
                  description={"type": ["string", "null"]},
                  created_at=_STR, contacts=_INT),
    "ScriptMeta": _obj(["name"], name=_STR, version=_INT, latest=_INT, timeout=_TIME_OR_NULL,
                       description=_TIME_OR_NULL, created_at=_STR, updated_at=_STR,
                       created_by=_TIME_OR_NULL),
    "ScriptRun": _obj(["updates", "logs", "http_calls", "duration_ms", "error"], name=_STR,
                      version=_INT, updates={}, logs={"type": "array"},
                      http_calls={"type": "array"}, duration_ms={"type": "number"},
                      error={"type": ["object", "null"]}),
    "Key": _obj(["id", "role"], id=_STR, name=_STR, role={"enum": list(ROLES)}, prefix=_STR,
                created_at=_STR),
    "Run": _obj(["id", "rules"], id=_STR, event_id={"type": ["string", "null"]},
                ticket_id=_STR, at=_STR, rules={"type": "array", "items": _ANY_OBJ},
                changes=_ANY_OBJ, effects={"type": "array"}),
    "StoredTicket": _obj(["id", "version"], id=_STR, version=_INT,
                         status={"type": ["string", "null"]}, priority={"type": ["string", "null"]},
                         tags={"type": "array"}, custom=_ANY_OBJ),
    "Delivery": _obj(["id"], id=_STR, state=_STR),
    "Webhook": _obj(["url", "secret_set"], url=_STR, secret_set=_BOOL),
    "Guards": _obj(["send_caps", "generated_per_minute"],
                   send_caps={"type": "array", "items": _obj(["count", "per"], count=_INT, per=_STR)},
                   generated_per_minute=_INT, default=_BOOL),
    "ImportPlan": _obj(["dry_run", "applied", "summary", "items"], dry_run=_BOOL, applied=_BOOL,
                       missing=_STR, summary=_ANY_OBJ, items={"type": "array", "items": _ANY_OBJ},
                       notes={"type": "array"}),
    "Document": _obj((), deskflow=_INT, rules={"type": "array", "items": _ANY_OBJ},
                     groups={"type": "array", "items": _ANY_OBJ},
                     sla_policies={"type": "array", "items": _ANY_OBJ},
                     scripts={"type": "array", "items": _ANY_OBJ},
                     allowlist={"type": "array", "items": _STR},
                     secrets={"type": "array", "items": _STR}),
}

_SEND_CAPS = {"type": "array", "items": {**_obj(["count", "per"], count={
    "type": "integer", "minimum": 1}, per=_DURATION), "additionalProperties": False}}
_HOSTS = {"type": "array", "maxItems": 100, "items": _TEXT}

# (method, path) -> the request body's schema. POST /v1/events is openapi.py's own (Event).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/workspaces"): _obj(["name"], name=_TEXT),
    ("POST", "/v1/keys"): _obj(["role"], role={"enum": list(ROLES)}, name=_STR),
    ("POST", "/v1/rules"): ref("Rule"),
    ("PUT", "/v1/rules/{rule_id}"): ref("Rule"),
    ("PATCH", "/v1/rules/{rule_id}"): ref("RulePatch"),
    ("PUT", "/v1/rules/order"): _obj(["ids"], ids={"type": "array", "items": _TEXT}),
    ("POST", "/v1/rules/{rule_id}/test"): _obj(["event"], event=ref("Event"), ticket=_ANY_OBJ,
                                               now=_TIME),
    ("POST", "/v1/groups"): _obj(["name"], name={"type": "string", "pattern": GROUP_NAME.pattern},
                                 color={"type": "string", "pattern": r"^#[0-9a-fA-F]{6}$"},
                                 text_color={"type": "string", "pattern": r"^#[0-9a-fA-F]{6}$"},
                                 description=_STR),
    ("PATCH", "/v1/groups/{name}"): _obj((), color={"type": ["string", "null"]},
                                         text_color={"type": ["string", "null"]},
                                         description={"type": ["string", "null"]}),
    ("PUT", "/v1/contacts/{contact_id}/groups"): _obj(["groups"], groups={
        "type": "array", "maxItems": 100, "items": {"type": "string", "pattern": GROUP_NAME.pattern}}),
    ("PUT", "/v1/companies/{company_id}/groups"): _obj(["groups"], groups={
        "type": "array", "maxItems": 100, "items": {"type": "string", "minLength": 1,
                                                    "maxLength": 200}}),
    ("POST", "/v1/scripts"): _obj(["name", "source"],
                                  name={"type": "string", "pattern": _SCRIPT_NAME},
                                  source={"type": "string", "minLength": 1, "maxLength": 65536},
                                  timeout=_DURATION, description=_STR),
    ("POST", "/v1/scripts/{name}/test"): _obj(["event"], event=ref("Event"), ticket=_ANY_OBJ,
                                              version={"type": "integer", "minimum": 1}),
    ("PUT", "/v1/allowlist"): _obj(["hosts"], hosts=_HOSTS),
    ("PUT", "/v1/secrets/{name}"): _obj(["value"], value={"type": "string", "minLength": 1,
                                                           "maxLength": 8192}, hosts=_HOSTS),
    ("PUT", "/v1/workspace/settings"): {**_obj((), strict_events=_BOOL),
                                        "additionalProperties": False},
    ("POST", "/v1/sla-policies"): ref("SlaPolicy"),
    ("PUT", "/v1/sla-policies/{name}"): ref("SlaPolicy"),
    ("PUT", "/v1/webhook"): _obj(["url"], url={"type": "string", "format": "uri"},
                                 secret={"type": "string", "minLength": 1}),
    ("PUT", "/v1/workspace/guards"): {**_obj((), send_caps=_SEND_CAPS, generated_per_minute={
        "type": "integer", "minimum": 1}), "additionalProperties": False},
    ("POST", "/v1/import"): ref("Document"),
    ("PUT", "/v1/sla-policies/order"): _obj(["names"], names={"type": "array", "items": _TEXT}),
    # drafts and backtests (server/api/drafts.py, backtest.py)
    ("POST", "/v1/rules/backtest"): {**_obj(["rule"], rule=ref("Rule"), limit={
        "type": "integer", "minimum": 1, "maximum": 1000}, rule_id=_STR),
        "additionalProperties": False},
    ("POST", "/v1/rules/{rule_id}/draft"): _obj((), rule=ref("Rule")),
    ("PUT", "/v1/rules/{rule_id}/draft"): ref("Rule"),
    ("POST", "/v1/rules/{rule_id}/draft/test"): _obj(["event"], event=ref("Event"),
                                                     ticket=_ANY_OBJ, now=_TIME),
    ("POST", "/v1/rules/{rule_id}/draft/publish"): _obj((), revision={"type": "integer"}),
}

# Routes the 2026-12-02 additions bring (docs/api.md), described ahead of their handlers.
PLANNED: frozenset[tuple[str, str]] = frozenset()

# A delete that enabled rules stood in the way of, with ?force=true (a plain delete is a 204).
_FORCED_DELETE = _obj(["deleted", "disabled_rules"],
                      deleted=_obj((), script=_STR, sla_policy=_STR, group=_STR),
                      disabled_rules={"type": "array",
                                      "items": _obj(["id", "name"], id=_STR, name=_STR)})
_SETTINGS = _obj(["strict_events", "default"], strict_events=_BOOL, default=_BOOL)

_RULE_PAGE = page(ref("StoredRule"))
_DRAFT = _obj(["rule_id", "base_revision", "live_revision", "stale", "rule"], rule_id=_STR,
              base_revision={"type": ["integer", "null"]}, live_revision={"type": ["integer", "null"]},
              stale=_BOOL, rule=_ANY_OBJ, created_at=_STR, updated_at=_STR, by=_ANY_OBJ)
# (method, path) -> the schema of the success answer.
RESPONSES: dict[tuple[str, str], Any] = {
    ("GET", "/healthz"): _obj(["status"], status={"const": "ok"}),
    ("GET", "/readyz"): _obj(["status", "store"], status={"const": "ready"},
                             store={"enum": ["embedded", "redis"]}),
    ("POST", "/v1/workspaces"): _obj(["id", "name", "admin_key"], id=_STR, name=_STR,
                                     admin_key=_STR),
    ("GET", "/v1/workspace"): _obj(["id", "name", "role"], id=_STR, name=_STR,
                                   role={"enum": list(ROLES)}),
    ("POST", "/v1/keys"): {"allOf": [ref("Key"), _obj(["key"], key=_STR)]},
    ("GET", "/v1/keys"): page(ref("Key")),
    ("POST", "/v1/events"): {"anyOf": [_EVENT_SUMMARY, _obj(["results"], results={
        "type": "array", "items": _EVENT_SUMMARY})]},
    ("GET", "/v1/tickets"): page(ref("StoredTicket")),
    ("GET", "/v1/tickets/{ticket_id}"): ref("StoredTicket"),
    ("GET", "/v1/tickets/{ticket_id}/runs"): page(ref("Run")),
    ("GET", "/v1/runs"): page(ref("Run")),
    ("GET", "/v1/runs/{run_id}"): ref("Run"),
    ("GET", "/v1/updates"): _obj(["updates", "next"], updates={"type": "array", "items": _obj(
        ["cursor", "ticket_id", "changes", "effects", "at"], cursor=_STR, ticket_id=_STR,
        event_id={"type": ["string", "null"]}, run_id={"type": ["string", "null"]},
        changes=_ANY_OBJ, effects={"type": "array"}, at=_STR)}, next={"type": ["string", "null"]}),
    ("POST", "/v1/rules"): ref("StoredRule"),
    ("GET", "/v1/rules"): _RULE_PAGE,
    ("PUT", "/v1/rules/order"): {"anyOf": [_RULE_PAGE, {"type": "array"}]},
    ("GET", "/v1/rules/{rule_id}"): ref("StoredRule"),
    ("PUT", "/v1/rules/{rule_id}"): ref("StoredRule"),
    ("PATCH", "/v1/rules/{rule_id}"): ref("StoredRule"),
    ("POST", "/v1/rules/{rule_id}/enable"): ref("StoredRule"),
    ("POST", "/v1/rules/{rule_id}/disable"): ref("StoredRule"),
    ("POST", "/v1/rules/{rule_id}/test"): _obj(["matched", "rule", "changes", "effects"],
                                               matched=_BOOL, rule=_ANY_OBJ, changes=_ANY_OBJ,
                                               effects={"type": "array"}),
    ("GET", "/v1/rules/{rule_id}/runs"): page(ref("Run")),
    ("GET", "/v1/rules/{rule_id}/days"): _obj(["rule_id", "days"], rule_id=_STR, days={
        "type": "array", "items": _obj(["date", "fired", "checked"], date=_STR,
                                       fired={"type": "integer"},
                                       checked={"type": ["integer", "null"]})}),
    ("GET", "/v1/stats/events"): _obj(["hours", "total"], total={"type": "integer"}, hours={
        "type": "array", "items": _obj(["hour", "events"], hour=_STR, events={"type": "integer"})}),
    ("GET", "/v1/stats/rules"): _obj(["dates", "rules"], dates={"type": "array", "items": _STR},
                                     rules={"type": "object", "additionalProperties": {
                                         "type": "array", "items": {"type": "integer"}}}),
    ("GET", "/v1/stats/sla"): _obj(["days", "met", "breached"], met={"type": "integer"},
                                   breached={"type": "integer"}, days={
        "type": "array", "items": _obj(["date", "met", "breached", "targets"], date=_STR,
                                       met={"type": "integer"}, breached={"type": "integer"},
                                       targets=_ANY_OBJ)}),
    ("GET", "/v1/rules/{rule_id}/revisions"): page(_REVISION),
    ("GET", "/v1/rules/{rule_id}/revisions/{n}"): _REVISION,
    ("POST", "/v1/rules/{rule_id}/revisions/{n}/restore"): ref("StoredRule"),
    ("POST", "/v1/rules/backtest"): _obj(
        ["checked", "fired", "hits", "conflicts", "truncated"], checked=_INT, fired=_INT,
        hits={"type": "array", "items": _obj(["event_id", "ticket_id", "changes"], event_id=_STR,
                                             ticket_id=_STR, changes=_ANY_OBJ)},
        conflicts={"type": "array", "items": _obj(["event_id", "rule", "field"], event_id=_STR,
                                                  rule=_ANY_OBJ, field=_STR)},
        truncated=_BOOL, skipped=_ANY_OBJ, approximate=_ANY_OBJ),
    ("POST", "/v1/rules/{rule_id}/draft"): _DRAFT,
    ("GET", "/v1/rules/{rule_id}/draft"): _DRAFT,
    ("PUT", "/v1/rules/{rule_id}/draft"): _DRAFT,
    ("GET", "/v1/drafts"): page(_DRAFT),
    ("POST", "/v1/rules/{rule_id}/draft/test"): _obj(["matched", "rule", "changes", "effects"],
                                                     matched=_BOOL, rule=_ANY_OBJ,
                                                     changes=_ANY_OBJ, effects={"type": "array"}),
    ("POST", "/v1/rules/{rule_id}/draft/publish"): ref("StoredRule"),
    ("POST", "/v1/rules/{rule_id}/duplicate"): ref("StoredRule"),
    ("POST", "/v1/groups"): ref("Group"),
    ("GET", "/v1/groups"): page(ref("Group")),
    ("GET", "/v1/groups/{name}"): ref("Group"),
    ("PATCH", "/v1/groups/{name}"): ref("Group"),
    ("GET", "/v1/contacts/{contact_id}"): _obj(["id"], id=_STR, groups={"type": "array"},
                                               open_tickets=_INT, tickets_30d=_INT),
    ("GET", "/v1/contacts"): page(_obj(["id"], id=_STR, groups={"type": "array"})),
    ("PUT", "/v1/contacts/{contact_id}/groups"): _obj(["id", "groups"], id=_STR,
                                                      groups={"type": "array", "items": _STR}),
    ("GET", "/v1/companies/{company_id}"): _obj(["id"], id=_STR, name={"type": ["string", "null"]},
                                                domain={"type": ["string", "null"]},
                                                groups={"type": "array"}),
    ("GET", "/v1/companies"): page(_obj(["id"], id=_STR, groups={"type": "array"})),
    ("PUT", "/v1/companies/{company_id}/groups"): _obj(["id", "groups"], id=_STR,
                                                       groups={"type": "array", "items": _STR}),
    ("POST", "/v1/scripts"): ref("ScriptMeta"),
    ("GET", "/v1/scripts"): page(ref("ScriptMeta")),
    ("GET", "/v1/scripts/{name}"): ref("ScriptMeta"),
    ("GET", "/v1/scripts/{name}/versions/{n}"): ref("ScriptMeta"),
    ("POST", "/v1/scripts/{name}/test"): ref("ScriptRun"),
    ("PUT", "/v1/allowlist"): _obj(["hosts"], hosts={"type": "array", "items": _STR}),
    ("GET", "/v1/allowlist"): _obj(["hosts"], hosts={"type": "array", "items": _STR}),
    ("GET", "/v1/secrets"): page(_obj(["name"], name=_STR)),
    ("PUT", "/v1/secrets/{name}"): _obj(["name"], name=_STR),
    ("POST", "/v1/sla-policies"): ref("StoredSlaPolicy"),
    ("GET", "/v1/sla-policies"): page(ref("StoredSlaPolicy")),
    ("PUT", "/v1/sla-policies/order"): page(ref("StoredSlaPolicy")),
    ("DELETE", "/v1/sla-policies/{name}"): _FORCED_DELETE,
    ("DELETE", "/v1/scripts/{name}"): _FORCED_DELETE,
    ("DELETE", "/v1/groups/{name}"): _FORCED_DELETE,
    ("GET", "/v1/workspace/settings"): _SETTINGS,
    ("PUT", "/v1/workspace/settings"): _SETTINGS,
    ("GET", "/v1/sla-policies/{name}"): ref("StoredSlaPolicy"),
    ("PUT", "/v1/sla-policies/{name}"): ref("StoredSlaPolicy"),
    ("GET", "/v1/sla-policies/{name}/revisions"): page(_REVISION),
    ("GET", "/v1/sla-policies/{name}/revisions/{n}"): _REVISION,
    ("POST", "/v1/sla-policies/{name}/revisions/{n}/restore"): ref("StoredSlaPolicy"),
    ("PUT", "/v1/webhook"): ref("Webhook"),
    ("GET", "/v1/webhook"): ref("Webhook"),
    ("GET", "/v1/webhook/deliveries"): page(ref("Delivery")),
    ("GET", "/v1/webhook/deliveries/{id}"): ref("Delivery"),
    ("POST", "/v1/webhook/deliveries/{id}/resend"): ref("Delivery"),
    ("POST", "/v1/webhook/deliveries/resend"): _obj(["resent"], resent=_INT),
    ("GET", "/v1/audit"): page(_obj(["id", "at", "action"], id=_STR, at=_STR, action=_STR,
                                    actor=_ANY_OBJ, target={"type": ["string", "null"]})),
    ("GET", "/v1/export"): ref("Document"),
    ("POST", "/v1/import"): ref("ImportPlan"),
    ("GET", "/v1/workspace/guards"): ref("Guards"),
    ("PUT", "/v1/workspace/guards"): ref("Guards"),
}
