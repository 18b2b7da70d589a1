"""An import is checked against the workspace as it will be after the import.

Policies and groups the document creates count; those it deletes (`?missing=delete`) do not;
scripts are not imported, so they are the workspace's. Every enabled rule of the document is
checked (paths `rules[i].actions[j].script`), and so is every enabled rule the document leaves in
place that the import's deletes would leave dangling (paths `rule:<id>.actions[j].group`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from server.api.common import problem
from server.api.references import Catalog, reference_problems
from server.store import revisions as R

__all__ = ["import_reference_problems"]


def _after(catalog: Catalog, groups: list[tuple[str, dict[str, Any] | None, str]],
           policies: list[R.Change], current_groups: set[str]) -> Catalog:
    names = set(current_groups)
    for name, group, _ in groups:
        (names.discard if group is None else names.add)(name)
    kept, hours = set(catalog.policies), set(catalog.calendars)
    for ch in policies:
        (kept.discard if ch.new is None else kept.add)(ch.ident)
        has_hours = ch.new is not None and ch.new.get("business_hours") is not None
        (hours.add if has_hours else hours.discard)(ch.ident)
    return replace(catalog, policies=frozenset(kept), groups=frozenset(n.casefold() for n in names),
                   calendars=frozenset(hours))


def import_reference_problems(doc: dict[str, Any], state: dict[str, Any], plan: Any,
                              catalog: Catalog) -> list[dict[str, str]]:
    """Every missing reference the import would leave in an enabled rule ([] when none).
    `state` is the workspace as read for the plan (rules and groups by key), `plan` the import's
    _Plan (its writes and `file_rules`, the ids the document's rules map to), `catalog` what
    exists now."""
    after = _after(catalog, plan.groups, plan.policies, set(state["groups"]))
    out = []
    for i, item in enumerate(doc.get("rules") or []):
        if isinstance(item, dict):
            out += reference_problems(item, after, f"rules[{i}]")
    final = dict(state["rules"])
    for ch in plan.rules:
        if ch.new is None:
            final.pop(ch.ident, None)
        else:
            final[ch.ident] = ch.new
    listed = set(plan.file_rules)
    for rid, rule in final.items():
        if rid in listed:
            continue
        already = {p["path"] for p in reference_problems(rule, catalog)}
        out += [problem(f"rule:{rid}.{p['path']}", p["reason"] + " (the import deletes it)")
                for p in reference_problems(rule, after) if p["path"] not in already]
    return out
