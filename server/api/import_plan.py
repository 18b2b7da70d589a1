"""The plan of an import: what it would do, item by item, and the writes that do it.

Rules match by `id` (by `name` when an item has none), groups and SLA policies by name. A plan
compares each item's PLACE in the order, never its stored position (rules keep gaps after deletes):
an export imported back plans nothing. When a plan writes a section it writes positions 1..n, so
items merely renumbered there are written too (a "reorder" revision), though the plan lists them as
unchanged.
"""

from __future__ import annotations

import secrets
from typing import Any

from server.api.common import problem
from server.api.rules import definition
from server.api.sla import definition as policy_definition
from server.store import revisions as R
from server.store.catalog import now_iso, rule_order
from server.store.sla import policy_order

__all__ = ["Plan", "make_plan", "by_position", "export_group"]


def export_group(group: dict[str, Any]) -> dict[str, Any]:
    out = {"name": group["name"], "color": group.get("color")}
    if group.get("description") is not None:
        out["description"] = group["description"]
    return out


def by_position(items: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """SLA policies in the order they are tried (store/sla.py's one definition of it)."""
    return sorted(items.values(), key=policy_order)


def _rank(ordered: list[dict[str, Any]], key: str) -> dict[str, int]:
    """Each item's place (1..n) in `ordered`: what a plan compares, never a stored position
    (positions may have gaps after deletes; the order is what the document says)."""
    return {item[key]: i for i, item in enumerate(ordered, start=1)}


def _diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, list[Any]]:
    a, b = old or {}, new or {}
    return {k: [a.get(k), b.get(k)] for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


class Plan:
    """What an import would do, item by item, and the writes that do it."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.problems: list[dict[str, str]] = []
        self.rules: list[R.Change] = []
        self.policies: list[R.Change] = []
        self.groups: list[tuple[str, dict[str, Any] | None, str]] = []
        self.allowlist: list[str] | None = None
        self.file_rules: list[str] = []  # the rule ids the document's rules became, in its order

    def item(self, kind: str, key: dict[str, Any], action: str, diff: dict[str, Any]) -> None:
        self.items.append({"kind": kind, **key, "action": action, "diff": diff})

    def summary(self) -> dict[str, int]:
        out = dict.fromkeys(("create", "update", "disable", "delete", "unchanged"), 0)
        for item in self.items:
            out[item["action"]] += 1
        return out


def _plan_rules(plan: Plan, wanted: list[dict[str, Any]], current: dict[str, dict[str, Any]],
                missing: str, now: str) -> None:
    ordered = sorted(current.values(), key=rule_order)
    rank = _rank(ordered, "id")
    used: set[str] = set()
    fresh: set[str] = set()  # ids this plan makes up (rules without an id in the file)
    desired: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = []
    for i, item in enumerate(wanted):
        if "id" in item:
            rid, old = item["id"], current.get(item["id"])
        else:
            same = [r for r in ordered if r.get("name") == item["name"] and r["id"] not in used]
            if len(same) > 1:
                plan.problems.append(problem(f"rules[{i}].name", f"{len(same)} rules have this name; "
                                                                 "give the rule's id"))
            old = same[0] if same else None
            rid = old["id"] if old else f"rule_{secrets.token_hex(8)}"
            if old is None:
                fresh.add(rid)
        used.add(rid)
        plan.file_rules.append(rid)
        spec = definition(item)  # without id and any bookkeeping a hand-written file carries
        spec.setdefault("enabled", False)
        spec["name"] = spec.get("name") or (old or {}).get("name") or rid
        desired.append((rid, spec, old))
    in_file = set(used)
    rest = [r for r in ordered if r["id"] not in used]
    for r in rest:
        if missing == "delete":
            plan.rules.append(R.Change(r["id"], None, r, "delete", {"via": "import"}))
            plan.item("rule", {"id": r["id"], "name": r.get("name")}, "delete", {})
        else:
            spec = definition(r)
            if missing == "disable":
                spec["enabled"] = False
            desired.append((r["id"], spec, r))
    renumber: list[R.Change] = []
    for pos, (rid, wanted_spec, old) in enumerate(desired, start=1):
        new = {**(wanted_spec or {}), "id": rid, "position": pos,
               "created_at": (old or {}).get("created_at", now), "updated_at": now}
        before = {**definition(old), "position": rank[rid]} if old else None
        diff = _diff(before, {**definition(new), "position": pos})
        if old is None:
            action = "create"
        elif not diff:
            action = "unchanged"
        elif missing == "disable" and rid not in in_file and "enabled" in diff:
            action = "disable"
        else:
            action = "update"
        plan.item("rule", {"id": None if rid in fresh else rid, "name": new.get("name")}, action, diff)
        if action != "unchanged":
            plan.rules.append(R.Change(rid, new, old, action, {"via": "import"}))
        elif old is not None and old.get("position") != pos:
            renumber.append(R.Change(rid, new, old, "reorder", {"via": "import"}))
    if plan.rules:  # positions are written 1..n: those merely renumbered must follow
        plan.rules += renumber


def _plan_policies(plan: Plan, wanted: list[dict[str, Any]], current: dict[str, dict[str, Any]],
                   missing: str, now: str) -> None:
    names = {p["name"] for p in wanted}
    rank = _rank(by_position(current), "name")
    desired = [(p["name"], dict(p), current.get(p["name"])) for p in wanted]
    for stored in by_position(current):
        if stored["name"] in names:
            continue
        if missing == "delete":
            plan.policies.append(R.Change(stored["name"], None, stored, "delete", {"via": "import"}))
            plan.item("sla_policy", {"name": stored["name"]}, "delete", {})
        else:
            desired.append((stored["name"], policy_definition(stored), stored))
    renumber: list[R.Change] = []
    for pos, (name, wanted_spec, old) in enumerate(desired, start=1):
        new = {**wanted_spec, "position": pos, "created_at": (old or {}).get("created_at", now), "updated_at": now}
        before = {**policy_definition(old), "position": rank[name]} if old else None
        diff = _diff(before, {**policy_definition(new), "position": pos})
        action = "create" if old is None else "update" if diff else "unchanged"
        plan.item("sla_policy", {"name": name}, action, diff)
        if action != "unchanged":
            plan.policies.append(R.Change(name, new, old, action, {"via": "import"}))
        elif old is not None and old.get("position") != pos:
            renumber.append(R.Change(name, new, old, "reorder", {"via": "import"}))
    if plan.policies:
        plan.policies += renumber


def _plan_groups(plan: Plan, wanted: list[dict[str, Any]], current: dict[str, dict[str, Any]],
                 missing: str, now: str) -> None:
    names = set()
    for item in wanted:
        names.add(item["name"])
        old = current.get(item["name"])
        new = {"name": item["name"], "color": item.get("color"),
               "created_at": (old or {}).get("created_at", now)}
        if item.get("description") is not None:
            new["description"] = item["description"]
        diff = _diff(export_group(old) if old else None, export_group(new))
        action = "create" if old is None else "update" if diff else "unchanged"
        plan.item("group", {"name": item["name"]}, action, diff)
        if action != "unchanged":
            plan.groups.append((item["name"], new, action))
    for name in sorted(current):
        if name not in names:
            if missing == "delete":
                plan.groups.append((name, None, "delete"))
                plan.item("group", {"name": name}, "delete", {})


def make_plan(doc: dict[str, Any], state: dict[str, Any], missing: str) -> Plan:
    plan, now = Plan(), now_iso()
    # A section the document leaves out is left alone, whatever `missing` says.
    if doc.get("rules") is not None:
        _plan_rules(plan, doc["rules"], state["rules"], missing, now)
    if doc.get("groups") is not None:
        _plan_groups(plan, doc["groups"], state["groups"], missing, now)
    if doc.get("sla_policies") is not None:
        _plan_policies(plan, doc["sla_policies"], state["sla_policies"], missing, now)
    if doc.get("allowlist") is not None:
        hosts = list(dict.fromkeys(doc["allowlist"]))
        diff = _diff({"hosts": state["allowlist"]}, {"hosts": hosts})
        plan.item("allowlist", {}, "update" if diff else "unchanged", diff)
        plan.allowlist = hosts if diff else None
    return plan
