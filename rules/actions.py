"""Rule actions: what each takes, how it is checked at compile time, and how it applies.

`set`, tags, groups and `close` change the ticket; `http_request` and `run_script` call the
evaluator's handlers at their place in the pass (or come back as effects without handlers); the rest
are effects the service carries out. A script's returned updates are applied here too
(`apply_updates`), as the actions they stand for (rules/updates.py): one vocabulary, one code.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .durations import parse_duration, parse_timestamp
from .errors import UpdateError
from .fields import SETTABLE, name_problem, names_problem
from .templates import render, template_problem
from . import updates as U
from .jsondata import json_copy

# type -> (required keys, optional keys). Unknown keys are refused: a typo must not pass silently.
ACTION_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "set": (frozenset({"field", "value"}), frozenset()),
    "add_tags": (frozenset({"tags"}), frozenset()),
    "remove_tags": (frozenset({"tags"}), frozenset()),
    "add_to_group": (frozenset({"group"}), frozenset()),
    "remove_from_group": (frozenset({"group"}), frozenset()),
    "apply_sla": (frozenset({"policy"}), frozenset()),
    "snooze": (frozenset(), frozenset({"for", "until"})),
    "wake": (frozenset(), frozenset()),
    "close": (frozenset(), frozenset()),
    "send_message": (frozenset({"template"}), frozenset({"allow_auto_reply"})),
    "notify": (frozenset({"target", "message"}), frozenset()),
    "webhook": (frozenset({"url"}), frozenset({"method", "headers", "body"})),
    "http_request": (frozenset({"url"}), frozenset({"method", "headers", "secret", "map", "body"})),
    "run_script": (frozenset({"script"}), frozenset({"version"})),
}
# Actions a script may not return inside `actions`: they would call back into the handlers.
_NOT_FROM_SCRIPTS = frozenset({"http_request", "run_script"})
MUTATING = frozenset({"set", "add_tags", "remove_tags", "add_to_group", "remove_from_group", "close",
                      "http_request", "run_script"})
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_SCRIPT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

Handler = Callable[..., Any]
Problem = tuple[str, str]


class Firing:
    """The mutable side of one rule firing: the ticket copy its actions write, and what they emit."""

    __slots__ = ("ticket", "event", "vars", "handlers", "effects", "notes", "errors")

    def __init__(self, ticket: dict[str, Any], event: dict[str, Any], vars: dict[str, Any],
                 handlers: dict[str, Handler] | None) -> None:
        self.ticket = ticket
        self.event = event
        self.vars = vars
        self.handlers = handlers or {}
        self.effects: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.errors: list[str] = []


class Action:
    """A checked action, ready to apply. `effect` is the action as the service will see it."""

    __slots__ = ("type", "spec", "apply")

    def __init__(self, type: str, spec: dict[str, Any], apply: Callable[[Firing], None]) -> None:
        self.type = type
        self.spec = spec
        self.apply = apply


# ---------------------------------------------------------------- checks

def _nonempty_str(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _check(action: Any, path: str, for_script: bool) -> list[Problem]:
    if type(action) is not dict:
        return [(path, "an action must be an object")]
    kind = action.get("type")
    if not isinstance(kind, str) or kind not in ACTION_KEYS or (for_script and kind in _NOT_FROM_SCRIPTS):
        allowed = sorted(k for k in ACTION_KEYS if not (for_script and k in _NOT_FROM_SCRIPTS))
        return [(f"{path}.type", f"unknown action type {kind!r}; one of {', '.join(allowed)}")]
    required, optional = ACTION_KEYS[kind]
    problems: list[Problem] = []
    for key in sorted(required - action.keys()):
        problems.append((f"{path}.{key}", f"'{kind}' needs '{key}'"))
    for key in sorted(action.keys() - required - optional - {"type"}):
        problems.append((f"{path}.{key}", f"unknown key for '{kind}'"))
    if problems:
        return problems
    check = _CHECKS.get(kind)
    return [(f"{path}.{k}" if k else path, why) for k, why in (check(action) if check else [])]


def _check_set(a: dict[str, Any]) -> list[Problem]:
    field, value = a["field"], a["value"]
    if isinstance(field, str) and field.startswith("custom.") and len(field) > 7:
        return []
    if not isinstance(field, str) or field not in SETTABLE:
        return [("field", f"cannot set {field!r}; settable: status, priority, department, assignee, custom.<key>")]
    allowed = SETTABLE[field]
    if allowed is not None and not (isinstance(value, str) and value in allowed):
        return [("value", f"{field} must be one of {', '.join(sorted(allowed))}")]
    if allowed is None and not (value is None or _nonempty_str(value)):
        return [("value", f"{field} must be a non-empty string or null")]
    return []


def _check_tags(a: dict[str, Any]) -> list[Problem]:
    """What an event's tags may be (rules/fields.py)."""
    problem = names_problem(a["tags"])
    return [("tags" + problem[0], problem[1])] if problem else []


def _check_group(a: dict[str, Any]) -> list[Problem]:
    return [("group", why)] if (why := name_problem(a["group"])) else []


def _need_str(*keys: str) -> Callable[[dict[str, Any]], list[Problem]]:
    return lambda a: [(k, "must be a non-empty string") for k in keys if k in a and not _nonempty_str(a[k])]


def _check_send_message(a: dict[str, Any]) -> list[Problem]:
    out = _need_str("template")(a) or _check_size("template")(a)
    if "allow_auto_reply" in a and type(a["allow_auto_reply"]) is not bool:
        out.append(("allow_auto_reply", "must be true or false"))
    return out


def _check_size(key: str) -> Callable[[dict[str, Any]], list[Problem]]:
    """A template's size limit (rules/templates.py renders it on the shared process)."""
    return lambda a: [(key, why)] if (why := template_problem(a.get(key))) else []


def _check_snooze(a: dict[str, Any]) -> list[Problem]:
    if ("for" in a) == ("until" in a):
        return [("", "'snooze' needs exactly one of 'for' (a duration) or 'until' (a timestamp)")]
    if "for" in a and parse_duration(a["for"]) is None:
        return [("for", "must be a duration like '30m', '1h30m' or '2d', greater than zero")]
    if "until" in a and parse_timestamp(a["until"]) is None:
        return [("until", "must be an RFC 3339 timestamp like 2026-11-23T09:00:00Z")]
    return []


def _check_request(a: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    if not (isinstance(a["url"], str) and _URL.fullmatch(a["url"])):
        out.append(("url", "must be an http:// or https:// URL"))
    if "method" in a and (not isinstance(a["method"], str) or a["method"].upper() not in METHODS):
        out.append(("method", f"must be one of {', '.join(sorted(METHODS))}"))
    headers = a.get("headers")
    if "headers" in a and (type(headers) is not dict or not all(
            _nonempty_str(k) and isinstance(v, str) for k, v in headers.items())):
        out.append(("headers", "must be an object of header names to string values"))
    if "secret" in a and not _nonempty_str(a["secret"]):
        out.append(("secret", "must be a secret's name"))
    if "map" in a:
        m = a["map"]
        if type(m) is not dict or not m:
            out.append(("map", "must be a non-empty object of var names to JSONPath strings"))
        else:
            for name, jp in m.items():
                if not (isinstance(name, str) and _VAR_NAME.fullmatch(name)):
                    out.append((f"map.{name}", "var names are letters, digits and _ (not starting with a digit)"))
                elif not (isinstance(jp, str) and jp.startswith("$")):
                    out.append((f"map.{name}", "must be a JSONPath string starting with '$'"))
    return out


def _check_script(a: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    if not (isinstance(a["script"], str) and _SCRIPT_NAME.fullmatch(a["script"])):
        out.append(("script", "must be a script name (lower-case letters, digits, '-' and '_')"))
    v = a.get("version")
    if "version" in a and not (type(v) is int and v >= 1):
        out.append(("version", "must be a positive integer"))
    return out


_CHECKS: dict[str, Callable[[dict[str, Any]], list[Problem]]] = {
    "set": _check_set,
    "add_tags": _check_tags,
    "remove_tags": _check_tags,
    "add_to_group": _check_group,
    "remove_from_group": _check_group,
    "apply_sla": _need_str("policy"),
    "snooze": _check_snooze,
    "send_message": _check_send_message,
    "notify": lambda a: _need_str("target", "message")(a) or _check_size("message")(a),
    "webhook": _check_request,
    "http_request": _check_request,
    "run_script": _check_script,
}


# ---------------------------------------------------------------- appliers

def _build(a: dict[str, Any]) -> Callable[[Firing], None]:
    kind = a["type"]
    if kind == "set":
        field, value = a["field"], a["value"]
        return lambda f: U.set_field(f.ticket, field, value)
    if kind == "close":
        return lambda f: U.set_field(f.ticket, "status", "closed")
    if kind in ("add_tags", "remove_tags"):
        tags = list(a["tags"])
        op = U.add_tags if kind == "add_tags" else U.remove_tags
        return lambda f: op(f.ticket, tags)
    if kind in ("add_to_group", "remove_from_group"):
        group, add = a["group"], kind == "add_to_group"

        def groups(f: Firing) -> None:
            if not U.change_groups(f.ticket, [group], add):
                f.notes.append(f"{kind} {group!r}: the ticket has no contact; nothing done")
        return groups
    if kind == "send_message":
        template = a["template"]
        # The service's loop guard drops send_message on an auto-reply unless the rule says so.
        extra = {"allow_auto_reply": True} if a.get("allow_auto_reply") is True else {}
        return lambda f: f.effects.append(
            {"type": "send_message", "template": template, "body": render(template, f.ticket, f.event, f.vars),
             **extra})
    if kind == "notify":
        target, message = a["target"], a["message"]
        return lambda f: f.effects.append(
            {"type": "notify", "target": target, "message": render(message, f.ticket, f.event, f.vars)})
    effect = _effect(a)
    if kind == "http_request":
        return lambda f: _http_request(f, effect)
    if kind == "run_script":
        return lambda f: _run_script(f, effect)
    return lambda f: f.effects.append(json_copy(effect))


def _effect(a: dict[str, Any]) -> dict[str, Any]:
    """The effect dict an action emits: the action with defaults filled in."""
    out: dict[str, Any] = json_copy(a)
    if a["type"] in ("webhook", "http_request"):
        out["method"] = str(a.get("method", "POST" if a["type"] == "webhook" else "GET")).upper()
    return out


def _http_request(f: Firing, effect: dict[str, Any]) -> None:
    handler = f.handlers.get("http_request")
    if handler is None:
        f.effects.append(json_copy(effect))
        return
    try:
        got = handler(json_copy(effect), json_copy(f.ticket), json_copy(f.event), json_copy(f.vars))
    except Exception as exc:  # a handler's failure is the run's data, not the evaluator's crash
        f.errors.append(f"http_request {effect['url']}: {exc}")
        return
    if got:
        if type(got) is not dict:
            f.errors.append(f"http_request {effect['url']}: the handler returned {type(got).__name__}, not a dict")
            return
        f.vars = {**f.vars, **json_copy(got)}


def _run_script(f: Firing, effect: dict[str, Any]) -> None:
    handler = f.handlers.get("run_script")
    if handler is None:
        f.effects.append(json_copy(effect))
        return
    try:
        result = handler(json_copy(effect), json_copy(f.event), json_copy(f.ticket))
        ticket, effects = apply_updates(f.ticket, result, event=f.event, vars=f.vars)
    except Exception as exc:
        f.errors.append(f"run_script {effect['script']}: {exc}")
        return
    f.ticket = ticket
    f.effects.extend(effects)


def compile_action_list(actions: Any, path: str, *, for_script: bool = False) -> tuple[list[Problem], list[Action]]:
    """Check and build a rule's `actions` (a non-empty list). Problems are (path, reason) pairs."""
    if type(actions) is not list or not actions:
        return [(path, "must be a non-empty list of actions")], []
    problems: list[Problem] = []
    built: list[Action] = []
    for i, a in enumerate(actions):
        found = _check(a, f"{path}[{i}]", for_script)
        problems.extend(found)
        if not found:
            built.append(Action(a["type"], a, _build(a)))
    return problems, built


def apply_updates(ticket: dict[str, Any], updates: Any, *, event: dict[str, Any] | None = None,
                  vars: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Apply a script's return value to a copy of `ticket`; returns (new ticket, effects).

    The return is read as rule actions (`updates.update_actions`) and applied as a rule's are,
    after everything is checked: an UpdateError means nothing was applied. `event` and `vars` are
    what templates in returned `actions` (send_message, notify) render from.
    """
    if updates is None:
        return ticket, []
    translated = U.update_actions(updates)   # a dict from here on
    actions: list[Action] = []
    if "actions" in updates:
        problems, actions = compile_action_list(updates["actions"], "actions", for_script=True)
        if problems:
            raise UpdateError(problems[0][0], problems[0][1])
    # update_actions checked these with the vocabulary's own rules (its errors name the key), and
    # what it makes always passes the action checks (tests/rules/test_script_updates.py): built
    # without checking again, which was 40% of the time of a return of a few keys.
    built = _coalesced_groups([Action(a["type"], a, _build(a)) for a in translated])
    firing = Firing(U.copy_ticket(ticket), event or {}, vars or {}, None)
    for action in built + actions:
        action.apply(firing)
    return firing.ticket, firing.effects


def _coalesced_groups(built: list[Action]) -> list[Action]:
    """`built` with each run of add_to_group (or remove_from_group) actions applied as one change
    of the contact's groups: the same result as one by one (merge_unique and remove_all keep
    order and fold case either way), but each one copies the contact and its whole group list, so
    a return's `add_groups` of N names (one action per name) cost O(N^2) on the shared worker:
    8,000 names, 17 s (tests/server/test_attack_session6.py)."""
    out: list[Action] = []
    i = 0
    while i < len(built):
        kind = built[i].type
        j = i
        while j < len(built) and built[j].type == kind and kind in ("add_to_group", "remove_from_group"):
            j += 1
        if j - i < 2:
            out.append(built[i])
            i += 1
            continue
        out.append(_groups_action(kind, [a.spec["group"] for a in built[i:j]]))
        i = j
    return out


def _groups_action(kind: str, groups: list[str]) -> Action:
    add = kind == "add_to_group"

    def apply(f: Firing) -> None:   # (no contact: nothing done; apply_updates keeps no notes)
        U.change_groups(f.ticket, groups, add)
    return Action(kind, {"type": kind, "groups": groups}, apply)
