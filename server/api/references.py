"""What enabled rules name must exist: scripts (and pinned versions), SLA policies, contact groups.

A rule whose `run_script`, `apply_sla`, `add_to_group` or `remove_from_group` names something the
workspace does not have would be saved and then fail at run time, on every event it matches. So an
ENABLED rule is checked against the workspace when it is written (create, PUT, PATCH, enable,
restore, import): a 422 names every missing reference by its path (`actions[2].script`). A disabled
rule is a draft and may name what does not exist yet; enabling it runs the check.

The other direction: deleting a script, SLA policy or group that enabled rules use is a 409 listing
those rules; `?force=true` deletes anyway and disables them (a revision and an audit entry each).

Both directions run inside one WATCH/MULTI: rule writes WATCH the scripts, policies and groups
hashes and read them in the transaction; deletes WATCH the rules hash. A delete racing a rule create
therefore either sees the new rule (and refuses or disables it) or makes the create retry and fail.
Group names compare case-insensitively, as contact memberships do (rules/updates.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from server.api.common import Ctx, problem
from server.errors import Conflict, Unprocessable
from server.store import keys as K
from server.store import revisions as R
from server.store.catalog import now_iso
from server.store.rule_size import check_rule_changes
from server.store.scripts import kept_text, kept_versions

__all__ = ["Catalog", "read_catalog", "calendars_of", "reference_problems", "raise_missing",
           "write_rules", "write_policies", "delete_in_use", "force_param", "catalog_watch"]

# action type -> (the key naming the thing, its kind)
_REFS = {"run_script": ("script", "script"), "apply_sla": ("policy", "policy"),
         "add_to_group": ("group", "group"), "remove_from_group": ("group", "group")}
# Rule changes that cannot introduce a reference: checking them would only block a reorder or a
# disable of a rule whose script was removed before references were checked.
_UNCHECKED_ACTIONS = frozenset({"reorder", "disable", "delete"})


@dataclass(frozen=True)
class Catalog:
    """The names enabled rules may use: scripts with their latest version, policies, groups."""

    scripts: dict[str, int] = field(default_factory=dict)
    policies: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()  # casefolded
    calendars: frozenset[str] = frozenset()  # policies with business hours (business-time conditions)
    kept: dict[str, frozenset[int]] = field(default_factory=dict)  # scripts that dropped old versions

    def without(self, kind: str, name: str) -> Catalog:
        """The catalog once `name` of `kind` is deleted."""
        if kind == "script":
            return replace(self, scripts={k: v for k, v in self.scripts.items() if k != name})
        if kind == "policy":
            return replace(self, policies=self.policies - {name}, calendars=self.calendars - {name})
        return self  # groups: the caller passes the remaining groups (another may share the fold)


def catalog_watch(workspace: str) -> list[str]:
    """The keys a rule write WATCHes besides the rules hash."""
    return [K.scripts(workspace), K.sla_policies(workspace), K.groups(workspace)]


def _text(k: Any) -> str:
    return k.decode() if isinstance(k, bytes) else str(k)


async def read_catalog(p: Any, workspace: str) -> Catalog:
    """Read through `p` (a client, or a pipeline in WATCH mode)."""
    scripts, kept = {}, {}
    for name, raw in (await p.hgetall(K.scripts(workspace))).items():
        try:
            meta = orjson.loads(raw)
            scripts[_text(name)] = int(meta.get("latest") or 0)
            if "kept" in meta:   # older versions no rule pinned were dropped (store/scripts.py)
                kept[_text(name)] = frozenset(kept_versions(meta))
        except (ValueError, TypeError, AttributeError):
            scripts[_text(name)] = 0
    specs = {_text(k): orjson.loads(v) for k, v in (await p.hgetall(K.sla_policies(workspace))).items()}
    groups = frozenset(_text(k).casefold() for k in await p.hkeys(K.groups(workspace)))
    return Catalog(scripts, frozenset(specs), groups, calendars_of(specs.values()), kept)


def calendars_of(policies: Any) -> frozenset[str]:
    """The names business-time conditions may use: policies with business hours."""
    return frozenset(p["name"] for p in policies
                     if isinstance(p, dict) and p.get("business_hours") is not None and "name" in p)


def _calendar_refs(node: Any, path: str, out: list[tuple[str, str, str, Any]]) -> None:
    """Business-time conditions naming a calendar (an SLA policy's hours) by name, at any depth
    of all/any groups."""
    if not isinstance(node, dict):
        return
    if isinstance(node.get("calendar"), str):
        out.append((f"{path}.calendar", "calendar", node["calendar"], None))
    for kind in ("all", "any"):
        children = node.get(kind)
        for i, child in enumerate(children if isinstance(children, list) else []):
            _calendar_refs(child, f"{path}.{kind}[{i}]", out)


def _references(rule: Any) -> list[tuple[str, str, str, Any]]:
    """(path, kind, name, pinned version) of every well-formed reference in the rule's actions
    and conditions (malformed ones are the rule validator's to report)."""
    actions = rule.get("actions") if isinstance(rule, dict) else None
    out: list[tuple[str, str, str, Any]] = []
    if isinstance(rule, dict) and rule.get("conditions") is not None:
        _calendar_refs(rule["conditions"], "conditions", out)
    for i, action in enumerate(actions if isinstance(actions, list) else []):
        if not isinstance(action, dict) or action.get("type") not in _REFS:
            continue
        key, kind = _REFS[action["type"]]
        name = action.get(key)
        if isinstance(name, str) and name:
            out.append((f"actions[{i}].{key}", kind, name, action.get("version")))
    return out


def _known(names: Any, limit: int = 10) -> str:
    names = sorted(names)
    if not names:
        return "there are none"
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"known: {shown}{', ...' if len(names) > limit else ''}"


def reference_problems(rule: Any, catalog: Catalog, prefix: str = "") -> list[dict[str, str]]:
    """Every missing reference of an ENABLED rule as {path, reason}; [] for a disabled rule."""
    if not isinstance(rule, dict) or rule.get("enabled") is not True:
        return []
    out = []
    for path, kind, name, version in _references(rule):
        reason = None
        if kind == "script":
            latest = catalog.scripts.get(name)
            if latest is None:
                reason = (f"no script named {name!r} in this workspace ({_known(catalog.scripts)}); "
                          "upload it with POST /v1/scripts first, or save the rule disabled")
            elif type(version) is int and not 1 <= version <= latest:
                reason = (f"script {name!r} has versions 1 to {latest}; there is no version {version}")
            elif type(version) is int and name in catalog.kept and version not in catalog.kept[name]:
                reason = (f"script {name!r} no longer keeps version {version} (a script keeps its "
                          "newest DESKFLOW_MAX_SCRIPT_VERSIONS versions, and drops the oldest that "
                          f"no rule pins); it keeps {kept_text(catalog.kept[name])}")
        elif kind == "policy" and name not in catalog.policies:
            reason = (f"no SLA policy named {name!r} in this workspace ({_known(catalog.policies)}); "
                      "create it with POST /v1/sla-policies first, or save the rule disabled")
        elif kind == "calendar" and name not in catalog.calendars:
            reason = (f"no SLA policy named {name!r} with business hours in this workspace "
                      "(business-time conditions use a policy's business hours as their calendar)")
        elif kind == "group" and name.casefold() not in catalog.groups:
            reason = (f"no group named {name!r} in this workspace; create it with POST /v1/groups "
                      "first, or save the rule disabled")
        if reason:
            out.append(problem(f"{prefix}.{path}" if prefix else path, reason))
    return out


def raise_missing(problems: list[dict[str, str]], what: str = "The rule") -> None:
    if problems:
        raise Unprocessable(
            f"{what} names what this workspace does not have: " + "; ".join(
                f"{p['path']}: {p['reason']}" for p in problems[:5]),
            code="unknown_reference", details=problems)


async def write_rules(ctx: Ctx, by: dict[str, Any],
                      compute: Callable[[dict[str, dict[str, Any]]], list[R.Change]],
                      also: Callable[[Any, list[R.Change]], None] | None = None) -> list[R.Change]:
    """R.write for rules, with every written enabled rule checked against the scripts, policies
    and groups read in the same transaction (which WATCHes them too), and every change against
    the bounds of a rule and of the workspace's rules (store/rule_size.py: 413 rule_too_large,
    422 too_many_rule_bytes)."""
    ws = ctx.workspace

    async def check(p: Any, current: dict[str, dict[str, Any]], changes: list[R.Change]) -> None:
        check_rule_changes(ctx.store.settings.max_rule_bytes, R.sizes_of(current), changes)
        if any(ch.new is not None and ch.action not in _UNCHECKED_ACTIONS for ch in changes):
            catalog = await read_catalog(p, ws)
            problems = [pr for ch in changes if ch.new is not None and ch.action not in _UNCHECKED_ACTIONS
                        for pr in reference_problems(ch.new, catalog)]
            raise_missing(problems)

    return await R.write(ctx.store, ws, R.RULE, by, compute, check=check, watch=catalog_watch(ws),
                         also=also)


def _in_use(label: str, listed: list[dict[str, Any]], advice: str) -> Conflict:
    names = ", ".join(f"{u['id']} ({u['name']!r})" for u in listed[:10])
    return Conflict(f"{label} is used by {len(listed)} enabled rule(s): {names}"
                    f"{' ...' if len(listed) > 10 else ''}. {advice}", code="in_use",
                    details=[{"path": f"rules/{u['id']}", "reason": f"enabled rule {u['name']!r} uses it",
                              "rule": u} for u in listed])


def _rules_broken(rules: Any, before: Catalog, after: Catalog) -> list[dict[str, Any]]:
    """The enabled rules with a missing reference under `after` they did not have under `before`,
    in evaluation order."""
    ordered = sorted(rules, key=lambda r: (r.get("position", 0), r.get("created_at") or "", r["id"]))
    return [r for r in ordered if len(reference_problems(r, after)) > len(reference_problems(r, before))]


async def write_policies(ctx: Ctx, by: dict[str, Any],
                         compute: Callable[[dict[str, dict[str, Any]]], list[R.Change]],
                         also: Callable[[Any, list[R.Change]], None] | None = None) -> list[R.Change]:
    """R.write for SLA policies, refusing (409 in_use) a change that takes away the business hours
    an enabled rule's business-time condition names as its calendar; WATCHes the rules too."""
    ws = ctx.workspace

    async def check(p: Any, current: dict[str, dict[str, Any]], changes: list[R.Change]) -> None:
        final = dict(current)
        for ch in changes:
            if ch.new is None:
                final.pop(ch.ident, None)
            else:
                final[ch.ident] = ch.new
        if calendars_of(final.values()) < calendars_of(current.values()):
            before = await read_catalog(p, ws)
            after = replace(before, policies=frozenset(final), calendars=calendars_of(final.values()))
            rules = [orjson.loads(v) for v in (await p.hgetall(K.rules(ws))).values()]
            users = _rules_broken(rules, before, after)
            if users:
                raise _in_use("The policy's business hours", [{"id": r["id"], "name": r.get("name")} for r in users],
                              "Their business-time conditions name it as their calendar; change or "
                              "disable them first.")

    return await R.write(ctx.store, ws, R.SLA, by, compute, check=check, watch=[K.rules(ws)],
                         also=also)


def force_param(ctx: Ctx) -> bool:
    """?force= as the route's declared FORCE flag read it (server/api/query.py: true/false/1/0/yes/no
    in any case, a 422 for anything else): never delete on a value that was not understood."""
    return bool(ctx.query.get("force", False))


Loader = Callable[[Any], Awaitable[tuple[Catalog, Catalog, Any]]]


async def delete_in_use(ctx: Ctx, by: dict[str, Any], label: str, watch: list[str], load: Loader,
                        queue_delete: Callable[[Any, Any], None],
                        also: Callable[[Any, list[R.Change]], None]) -> list[dict[str, Any]]:
    """Delete what `load(pipe)` finds unless enabled rules use it.

    `load` reads (under WATCH) the object and returns (catalog before, catalog after the delete,
    what `queue_delete(pipe, it)` needs); it raises NotFound itself. An enabled rule that has a
    missing reference after the delete and had none before uses the object: without ?force=true
    that is a 409 listing them; with it they are disabled in the same MULTI (revision and audit
    entry each, through `also`). Returns the disabled rules as [{id, name}]."""
    ws, force = ctx.workspace, force_param(ctx)

    async def build(p: Any) -> tuple[list[dict[str, Any]], Any]:
        before, after, target = await load(p)
        users = _rules_broken([orjson.loads(v) for v in (await p.hgetall(K.rules(ws))).values()],
                              before, after)
        listed = [{"id": r["id"], "name": r.get("name")} for r in users]
        if users and not force:
            raise _in_use(label, listed, "Change or disable them first, or delete with ?force=true "
                                         "(which disables them).")
        at = now_iso()
        changes = [R.Change(r["id"], {**r, "enabled": False, "updated_at": at}, r, "disable",
                            {"reason": f"{label} was deleted"}) for r in users]
        numbers = await R.numbers(p, ctx.store, ws, R.RULE, changes)

        def writer(pipe: Any) -> None:
            R.queue_changes(pipe, ws, R.RULE, changes, numbers, by)
            if changes:
                also(pipe, changes)
            queue_delete(pipe, target)

        return listed, writer

    return await R.transact(ctx.store, [K.rules(ws), *watch], build)
