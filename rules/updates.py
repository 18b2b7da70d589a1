"""Changing a ticket and describing the change; a script's return read as rule actions.

Tickets are plain dicts that are never changed in place: `copy_ticket` makes the shallow copy a
rule's actions write to, and every helper here replaces a nested list or dict rather than editing it.
`diff` produces API.md's `changes` shape. A script's returned updates (`UPDATE_KEYS`) are a
shorthand for rule actions: `update_actions` checks them and says which actions they stand for,
and rules/actions.py (`apply_updates`) applies those with the actions' own code. This module
imports nothing of actions.py, which builds on it.
"""
from __future__ import annotations

from typing import Any

from .durations import parse_duration, parse_timestamp
from .errors import UpdateError
from .fields import PRIORITIES, STATUSES, names_problem
from .jsondata import json_copy
from .ops import is_empty, strict_equal

SCALAR_FIELDS = ("status", "priority", "department", "assignee")


def copy_ticket(ticket: dict[str, Any]) -> dict[str, Any]:
    return dict(ticket)




def _fold(x: Any) -> Any:
    return x.casefold() if isinstance(x, str) else x


def merge_unique(current: Any, add: list[str]) -> list[Any]:
    """`current` + the items of `add` not already there, case-insensitively, in insertion order."""
    out = list(current) if type(current) is list else []
    seen = {x.casefold() for x in out if isinstance(x, str)}  # no call per item: rules add tags per fire
    for item in add:
        f = item.casefold()
        if f not in seen:
            seen.add(f)
            out.append(item)
    return out


def remove_all(current: Any, remove: list[str]) -> list[Any]:
    out = list(current) if type(current) is list else []
    gone = {x.casefold() for x in remove}
    return [x for x in out if not (isinstance(x, str) and x.casefold() in gone)]


def add_tags(ticket: dict[str, Any], tags: list[str]) -> None:
    ticket["tags"] = merge_unique(ticket.get("tags"), tags)


def remove_tags(ticket: dict[str, Any], tags: list[str]) -> None:
    ticket["tags"] = remove_all(ticket.get("tags"), tags)


def has_contact(ticket: dict[str, Any]) -> bool:
    contact = ticket.get("contact")
    return type(contact) is dict and bool(contact)


def change_groups(ticket: dict[str, Any], groups: list[str], add: bool) -> bool:
    """Add or remove contact groups; False (nothing done) when the ticket has no contact."""
    if not has_contact(ticket):
        return False
    contact = dict(ticket["contact"])
    current = contact.get("groups")
    contact["groups"] = merge_unique(current, groups) if add else remove_all(current, groups)
    ticket["contact"] = contact
    return True


def set_field(ticket: dict[str, Any], field: str, value: Any) -> None:
    """`set`: a scalar field, or `custom.<key>` (null deletes the key)."""
    if field.startswith("custom."):
        key = field[7:]
        custom = dict(ticket["custom"]) if type(ticket.get("custom")) is dict else {}
        if value is None:
            custom.pop(key, None)
        else:
            custom[key] = json_copy(value)
        ticket["custom"] = custom
    else:
        ticket[field] = value


def _set_diff(before: Any, after: Any) -> dict[str, list[Any]] | None:
    b = list(before) if type(before) is list else []
    a = list(after) if type(after) is list else []
    bf = {_fold(x) for x in b if isinstance(x, str)}
    af = {_fold(x) for x in a if isinstance(x, str)}
    added = [x for x in a if isinstance(x, str) and x.casefold() not in bf]
    removed = [x for x in b if isinstance(x, str) and x.casefold() not in af]
    if not added and not removed:
        return None
    return {"added": added, "removed": removed}


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """API.md's `changes`: scalar fields as [old, new], custom keys as custom.<key>, tags and
    contact.groups as {added, removed} (case-insensitive sets)."""
    changes: dict[str, Any] = {}
    for name in SCALAR_FIELDS:
        old, new = before.get(name), after.get(name)
        if not _same(old, new):
            changes[name] = [json_copy(old), json_copy(new)]
    bc = _c if type(_c := before.get("custom")) is dict else {}
    ac = _c if type(_c := after.get("custom")) is dict else {}
    if bc is not ac:
        for key in list(bc) + [k for k in ac if k not in bc]:
            old, new = bc.get(key), ac.get(key)
            if (key in bc) != (key in ac) or not strict_equal(old, new):
                if not (old is None and new is None):
                    changes[f"custom.{key}"] = [json_copy(old), json_copy(new)]
    tags = _set_diff(before.get("tags"), after.get("tags"))
    if tags:
        changes["tags"] = tags
    bcontact, acontact = before.get("contact"), after.get("contact")
    if bcontact is not acontact:
        groups = _set_diff(bcontact.get("groups") if type(bcontact) is dict else None,
                           acontact.get("groups") if type(acontact) is dict else None)
        if groups:
            changes["contact.groups"] = groups
    return changes


def _same(a: Any, b: Any) -> bool:
    return (a is None and b is None) or strict_equal(a, b)


# ---------------------------------------------------------------- script returns

UPDATE_KEYS = ("status", "priority", "department", "assignee", "custom", "add_tags", "remove_tags",
               "add_groups", "remove_groups", "sla_policy", "snooze", "actions")


def _strings(key: str, value: Any) -> list[str]:
    """A returned list of tags or group names: what a rule's action may hold (rules/fields.py),
    but empty is allowed (it stands for no action)."""
    if type(value) is not list or not all(isinstance(x, str) and x for x in value):
        raise UpdateError(key, "must be a list of non-empty strings")
    if value and (problem := names_problem(value, "groups" if "groups" in key else "tags")):
        raise UpdateError(key + problem[0], problem[1])
    return value


def update_actions(updates: Any) -> list[dict[str, Any]]:
    """The rule actions a script's return stands for, its own `actions` list aside.

    Checks every key's value first, in a fixed order, so the first problem is always the same
    one; raises UpdateError. `rules.actions.apply_updates` applies what comes back, then the
    returned `actions`, with the rule actions' own code. An empty tag or group list stands for no
    action.
    """
    if type(updates) is not dict:
        raise UpdateError("", f"a script must return None or a dict of updates, not {type(updates).__name__}")
    unknown = [k for k in updates if k not in UPDATE_KEYS]
    if unknown:
        raise UpdateError(str(unknown[0]), f"unknown update key; allowed: {', '.join(UPDATE_KEYS)}")
    for key, allowed in (("status", STATUSES), ("priority", PRIORITIES)):
        if key in updates and not (isinstance(updates[key], str) and updates[key] in (allowed or ())):
            raise UpdateError(key, f"must be one of {', '.join(sorted(allowed or ()))}")
    for key in ("department", "assignee"):
        if key in updates and not (updates[key] is None or (isinstance(updates[key], str) and updates[key])):
            raise UpdateError(key, "must be a non-empty string or null")
    if "custom" in updates and (type(updates["custom"]) is not dict
                                or not all(isinstance(k, str) and k for k in updates["custom"])):
        raise UpdateError("custom", "must be an object with non-empty keys")
    lists = {k: _strings(k, updates[k]) for k in ("add_tags", "remove_tags", "add_groups", "remove_groups")
             if k in updates}
    if "sla_policy" in updates and not (isinstance(updates["sla_policy"], str) and updates["sla_policy"]):
        raise UpdateError("sla_policy", "must be a policy name")
    snooze = None
    if "snooze" in updates:
        s = updates["snooze"]
        if parse_duration(s) is not None:
            snooze = {"type": "snooze", "for": s}
        elif parse_timestamp(s) is not None:
            snooze = {"type": "snooze", "until": s}
        else:
            raise UpdateError("snooze", "must be a duration like '2h' or an RFC 3339 timestamp")

    # The order they apply in: fields, custom keys, tags, groups, then the effects.
    out: list[dict[str, Any]] = [{"type": "set", "field": key, "value": updates[key]}
                                 for key in SCALAR_FIELDS if key in updates]
    out += [{"type": "set", "field": f"custom.{key}", "value": value}
            for key, value in (updates.get("custom") or {}).items()]
    for key in ("add_tags", "remove_tags"):
        if lists.get(key):
            out.append({"type": key, "tags": lists[key]})
    for key, kind in (("add_groups", "add_to_group"), ("remove_groups", "remove_from_group")):
        out += [{"type": kind, "group": group} for group in lists.get(key, ())]
    if "sla_policy" in updates:
        out.append({"type": "apply_sla", "policy": updates["sla_policy"]})
    if snooze:
        out.append(snooze)
    return out


__all__ = ["update_actions", "diff", "copy_ticket", "is_empty", "UPDATE_KEYS"]
