"""The rules-as-code document, pure: how the export orders it and how an import is checked
(no store, no request). Its format:

  deskflow: 1
  rules:         [...]  in evaluation order: id, name, description, enabled, triggers, conditions,
                        actions, stop (no bookkeeping: no position, revision, timestamps, usage)
  groups:        [...]  by name: name, color, description
  sla_policies:  [...]  in the order they are tried
  scripts:       [...]  metadata only (name, version, timeout, description); read-only on import
  allowlist:     [...]  only in a developer's or admin's export; changing it on import needs admin
  secrets:       [...]  names only, never values; only in an admin's export; read-only on import

"""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.api.checks import allowlist_problems
from server.api.groups import description_problem
from server.api.common import problem
from server.api.rule_checks import rule_problems
from server.api.rules import definition
from server.api.sla import check_policy
from server.api.sla import definition as policy_definition
from server.api.validate import GROUP_NAME

__all__ = ["FORMAT_VERSION", "YAML_TYPES", "export_policy", "export_rule", "export_script", "import_notes",
           "plain", "sla_items", "validate"]

FORMAT_VERSION = 1
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
_TOP = ("deskflow", "rules", "groups", "sla_policies", "scripts", "allowlist", "secrets")
_RULE_FIRST = ("id", "name", "description", "enabled", "triggers", "conditions", "actions", "stop")
_RULE_ID = GROUP_NAME  # the same shape: 1-64 letters, digits, _ . : -


def ordered(obj: dict[str, Any], first: tuple[str, ...]) -> dict[str, Any]:
    """Known keys first in a fixed order, then the rest sorted: a stable, readable document."""
    return {**{k: obj[k] for k in first if k in obj}, **{k: obj[k] for k in sorted(obj) if k not in first}}


def export_rule(rule: dict[str, Any]) -> dict[str, Any]:
    return ordered({"id": rule["id"], **definition(rule)}, _RULE_FIRST)


def export_policy(policy: dict[str, Any]) -> dict[str, Any]:
    return ordered(policy_definition(policy), ("name", "conditions", "targets", "warn_before"))


def plain(value: Any) -> Any:
    """YAML reads unquoted dates and times as date objects; the document speaks strings."""
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _list(doc: dict[str, Any], key: str, problems: list[dict[str, str]]) -> list[Any] | None:
    if key not in doc or doc[key] is None:
        return None
    if type(doc[key]) is not list:
        problems.append(problem(key, "must be a list"))
        return None
    return list(doc[key])


def sla_items(doc: dict[str, Any]) -> list[Any]:
    items = doc.get("sla_policies")
    return items if isinstance(items, list) else []


def validate(doc: dict[str, Any], calendars: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Every problem of the document, with its path; [] when it can be planned. `calendars`: the
    names rules' business-time conditions may use (stored policies and the document's own)."""
    problems = [problem(k, f"unknown key; a document has {', '.join(_TOP)}") for k in doc if k not in _TOP]
    if doc.get("deskflow", FORMAT_VERSION) != FORMAT_VERSION:
        problems.append(problem("deskflow", f"must be {FORMAT_VERSION} (the document format)"))
    seen: dict[str, set[Any]] = {"rule id": set(), "rule name": set(), "group": set(), "policy": set()}

    def once(kind: str, value: Any, path: str) -> None:
        if value in seen[kind]:
            problems.append(problem(path, f"repeats {kind} {value!r}"))
        seen[kind].add(value)

    for i, rule in enumerate(_list(doc, "rules", problems) or []):
        path = f"rules[{i}]"
        if not isinstance(rule, dict):
            problems.append(problem(path, "must be a rule (a mapping)"))
            continue
        if "id" in rule and not (isinstance(rule["id"], str) and _RULE_ID.fullmatch(rule["id"])):
            problems.append(problem(f"{path}.id", "must be 1-64 letters, digits, _ . : -"))
        problems += rule_problems(definition(rule), path, calendars)  # bookkeeping keys pass
        if not isinstance(rule.get("name"), str) and "id" not in rule:
            problems.append(problem(f"{path}.name", "a rule without an id needs a name"))
        if "id" in rule:
            once("rule id", rule["id"], f"{path}.id")
        elif isinstance(rule.get("name"), str):
            once("rule name", rule["name"], f"{path}.name")
    for i, group in enumerate(_list(doc, "groups", problems) or []):
        path = f"groups[{i}]"
        if not isinstance(group, dict) or not (isinstance(group.get("name"), str) and GROUP_NAME.fullmatch(group["name"])):
            problems.append(problem(f"{path}.name", "must be 1-64 letters, digits, _ . : -"))
            continue
        extra = set(group) - {"name", "color", "description"}
        problems += [problem(f"{path}.{k}", "unknown key; a group has name, color, description") for k in sorted(extra)]
        color = group.get("color")
        if color is not None and not (isinstance(color, str) and len(color) == 7 and color[0] == "#"
                                      and all(c in "0123456789abcdefABCDEF" for c in color[1:])):
            problems.append(problem(f"{path}.color", "must be a colour like #ff8800, or null"))
        if group.get("description") is not None and not isinstance(group["description"], str):
            problems.append(problem(f"{path}.description", "must be a string or null"))
        elif (reason := description_problem(group.get("description"))) is not None:
            problems.append(problem(f"{path}.description", reason))
        once("group", group["name"], f"{path}.name")
    for i, policy in enumerate(_list(doc, "sla_policies", problems) or []):
        path = f"sla_policies[{i}]"
        if not isinstance(policy, dict) or not isinstance(policy.get("name"), str):
            problems.append(problem(f"{path}.name", "must be the policy's name"))
            continue
        problems += [problem(f"{path}.{p['path']}" if p["path"] else path, p["reason"])
                     for p in check_policy(policy, policy["name"])]
        once("policy", policy["name"], f"{path}.name")
    hosts = _list(doc, "allowlist", problems)
    if hosts is not None:
        problems += allowlist_problems(hosts, "allowlist")
    for key in ("scripts", "secrets"):
        _list(doc, key, problems)
    return problems


def import_notes(doc: dict[str, Any], scripts: list[dict[str, Any]], secret_names: list[str]) -> list[str]:
    """What the import leaves alone but the caller may want to know: scripts and secrets are
    read-only here (upload scripts with POST /v1/scripts, set secrets with PUT /v1/secrets/{name})."""
    notes = []
    have = {s["name"]: s.get("latest") for s in scripts}
    for item in doc.get("scripts") or []:
        if isinstance(item, dict) and item.get("name") not in have:
            notes.append(f"script {item.get('name')!r} is not in this workspace (scripts are not imported)")
        elif isinstance(item, dict) and item.get("version") not in (None, have[item["name"]]):
            notes.append(f"script {item['name']!r} is at version {have[item['name']]} here, "
                         f"{item['version']} in the document (scripts are not imported)")
    for name in doc.get("secrets") or []:
        if isinstance(name, str) and name not in secret_names:
            notes.append(f"secret {name!r} is not set in this workspace (secrets are not imported)")
    return notes




def export_script(script: dict[str, Any]) -> dict[str, Any]:
    """A script's metadata in the document: name, version, timeout, description (no source)."""
    return ordered({"name": script["name"], "version": script.get("latest"),
                    "timeout": script.get("timeout"),
                    **({"description": script["description"]} if script.get("description") else {})},
                   ("name", "version", "timeout"))
