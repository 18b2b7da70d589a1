"""The oracle: a plain interpreter of deskflow rules, for checking the compiled engine.

Written only from the API contract (docs/api.md, section Rules) and docs/rules-engine.md, never from `rules/`.
No compilation, no indexes: every enabled rule is walked in order, its condition tree checked
against the ticket as it stands, its actions applied one by one. It trusts its input: validation
is the engine's job and is tested separately (test_compile_errors.py).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
LIST_FIELDS = ("tags", "contact.groups")

_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")  # fullmatch
_TIMESTAMP = re.compile(  # fullmatch: no trailing newline, ASCII digits only
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)
_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")


@dataclass
class Evaluation:
    matched: list[str]
    changes: dict[str, Any]
    effects: list[dict[str, Any]]
    ticket: dict[str, Any]
    vars: dict[str, Any]
    explain: list[dict[str, Any]]


# --- values -----------------------------------------------------------------------------------


def parse_duration(text: Any) -> int | None:
    """`"1h30m"` -> 5400 (seconds); None unless it matches the pattern and is greater than zero.

    Seconds as an int, not a timedelta: the pattern sets no upper bound ("99999999999d" is valid).
    """
    if not isinstance(text, str) or text == "":
        return None
    m = _DURATION.fullmatch(text)
    if m is None:
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    total = ((d * 24 + h) * 60 + mi) * 60 + s
    return total if total > 0 else None


def _microseconds(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_timestamp(text: Any) -> datetime | None:
    """RFC 3339 with any offset; None for anything else (the time op then does not hold)."""
    if not isinstance(text, str):
        return None
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, offset = m.group(7), m.group(8)
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    if offset == "Z":
        tz = timezone.utc
    else:
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            return None
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=oh, minutes=om))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_empty(v: Any) -> bool:
    return v is None or (isinstance(v, (str, list, dict)) and len(v) == 0)


def exact(a: Any, b: Any) -> bool:
    """JSON equality without coercion: True is not 1, "a" is not "A"; 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) or is_number(b):
        return is_number(a) and is_number(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(exact(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def same(a: Any, b: Any, case_sensitive: bool) -> bool:
    """'Text equality': strings by casefold (or exactly), never equal to a non-string."""
    if isinstance(a, str) and isinstance(b, str):
        return a == b if case_sensitive else a.casefold() == b.casefold()
    if isinstance(a, str) or isinstance(b, str):
        return False
    return exact(a, b)


def _key(v: Any, case_sensitive: bool = False) -> Any:
    """A hashable, type-tagged stand-in for a list element (True and 1 stay apart)."""
    if isinstance(v, str):
        return ("s", v if case_sensitive else v.casefold())
    if isinstance(v, bool):
        return ("b", v)
    if is_number(v):
        return ("n", v)
    return ("j", json.dumps(v, sort_keys=True))


def folded_set(v: Any, case_sensitive: bool = False) -> set[Any]:
    return {_key(x, case_sensitive) for x in v} if isinstance(v, list) else set()


# --- reading fields ---------------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def read(field: str, ticket: Any, event: Any, vars_: dict[str, Any]) -> Any:
    """A missing field (or a missing parent) reads as None. `custom.<key>` is flat."""
    if field.startswith("custom."):
        return _get(_get(ticket, "custom"), field[len("custom.") :])
    if field.startswith("contact.custom."):
        return _get(_get(_get(ticket, "contact"), "custom"), field[len("contact.custom.") :])
    if field.startswith("contact."):
        return _get(_get(ticket, "contact"), field[len("contact.") :])
    if field.startswith("message."):
        return _get(_get(event, "message"), field[len("message.") :])
    if field == "event.type":
        return _get(event, "type")
    if field == "event.actor":
        return actor(event)
    if field.startswith("vars."):
        return vars_.get(field[len("vars.") :])
    return _get(ticket, field)


ACTORS = ("customer", "agent", "system", "automation")


def actor(event: Any) -> str | None:
    """event.actor (docs/rules-engine.md): the event's own `actor` if it is one of the four (any
    case, spaces around ignored); else for message.received / message.sent the message author
    mapped the same way, a missing (null) author meaning customer / agent respectively; else
    system for the timer events; else null."""
    def known(v: Any) -> str | None:
        return v.strip().lower() if isinstance(v, str) and v.strip().lower() in ACTORS else None

    if not isinstance(event, dict):
        return None
    if known(event.get("actor")):
        return known(event.get("actor"))
    kind = event.get("type")
    if kind in ("message.received", "message.sent"):
        author = _get(event.get("message"), "author")
        if author is None:
            return "customer" if kind == "message.received" else "agent"
        return known(author)
    if kind in ("time.reached", "sla.warning", "sla.breached", "ticket.woke"):
        return "system"
    return None


# --- business hours ---------------------------------------------------------------------------

_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def business_seconds(spec: dict[str, Any], start: datetime, end: datetime) -> float:
    """Open-hours time between two instants, in seconds, from API.md's business_hours object:
    windows are wall-clock times in the zone (a day's value is one ["HH:MM", "HH:MM"] pair or a
    list of them, "24:00" = the next midnight), holidays are local dates with no open hours."""
    if end <= start:
        return 0.0
    zone = ZoneInfo(spec.get("timezone", "UTC"))
    holidays = set(spec.get("holidays", []))
    week = spec["week"]
    total = 0.0
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date():
        raw = week.get(_WEEKDAYS[day.weekday()]) or []
        pairs = [raw] if raw and isinstance(raw[0], str) else raw
        if day.isoformat() not in holidays:
            for a, b in pairs:
                lo = max(start, _wall(day, a, zone))
                hi = min(end, _wall(day, b, zone))
                if hi > lo:
                    total += (hi - lo).total_seconds()
        day += timedelta(days=1)
    return total


def _wall(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    h, m = int(hhmm[:2]), int(hhmm[3:])
    if h == 24:
        day, h = day + timedelta(days=1), 0
    return datetime(day.year, day.month, day.day, h, m, tzinfo=zone).astimezone(timezone.utc)


# --- conditions -------------------------------------------------------------------------------


def has_changed(field: str, before: Any, after: Any) -> bool:
    """Exact, except that empties are all equal and tags/groups are case-insensitive sets."""
    if is_empty(before) and is_empty(after):
        return False
    if field in LIST_FIELDS and all(v is None or isinstance(v, list) for v in (before, after)):
        return folded_set(before) != folded_set(after)
    return not exact(before, after)


def _equals_for_changed(field: str, v: Any, value: Any, cs: bool) -> bool:
    if field in LIST_FIELDS and isinstance(value, list):
        if not (v is None or isinstance(v, list)):
            return False
        return folded_set(v, cs) == folded_set(value, cs)
    return same(v, value, cs)


def check_leaf(leaf: dict[str, Any], ctx: "_Pass") -> tuple[bool, Any]:
    """(held, seen) for one leaf condition."""
    field, op = leaf["field"], leaf["op"]
    value = leaf.get("value")
    cs = leaf.get("case_sensitive", False) is True
    if op in ("changed", "changed_from", "changed_to"):
        before = read(field, ctx.previous, ctx.event, {})
        after = read(field, ctx.ticket, ctx.event, ctx.vars)
        changed = has_changed(field, before, after)
        if op == "changed":
            held = changed
        elif op == "changed_from":
            held = changed and _equals_for_changed(field, before, value, cs)
        else:
            held = changed and _equals_for_changed(field, after, value, cs)
        return held, [before, after]

    v = read(field, ctx.ticket, ctx.event, ctx.vars)

    def text(s: str) -> str:
        return s if cs else s.casefold()

    def includes(x: Any) -> bool:
        return isinstance(v, list) and any(same(e, x, cs) for e in v)

    if op == "is":
        held = same(v, value, cs)
    elif op == "is_not":
        held = not same(v, value, cs)
    elif op == "in":
        held = any(same(v, x, cs) for x in value)
    elif op == "not_in":
        held = not any(same(v, x, cs) for x in value)
    elif op == "contains":
        held = isinstance(v, str) and text(value) in text(v)
    elif op == "not_contains":
        held = not (isinstance(v, str) and text(value) in text(v))
    elif op == "starts_with":
        held = isinstance(v, str) and text(v).startswith(text(value))
    elif op == "ends_with":
        held = isinstance(v, str) and text(v).endswith(text(value))
    elif op == "matches":
        flags = 0 if cs else re.IGNORECASE
        held = isinstance(v, str) and re.search(value, v, flags) is not None
    elif op in ("gt", "gte", "lt", "lte") and field in ("status", "priority") and isinstance(value, str):
        order = list(STATUSES if field == "status" else PRIORITIES)
        if not isinstance(v, str):
            held = False
        else:
            pos = order.index(v) if cs and v in order else (
                order.index(v.casefold()) if not cs and v.casefold() in order else None)
            want = order.index(value)
            held = pos is not None and {"gt": pos > want, "gte": pos >= want,
                                        "lt": pos < want, "lte": pos <= want}[op]
    elif op in ("gt", "gte", "lt", "lte"):
        if not is_number(v):
            held = False
        elif op == "gt":
            held = v > value
        elif op == "gte":
            held = v >= value
        elif op == "lt":
            held = v < value
        else:
            held = v <= value
    elif op == "includes":
        held = includes(value)
    elif op == "excludes":
        held = not includes(value)
    elif op == "includes_any":
        held = isinstance(v, list) and any(includes(x) for x in value)
    elif op == "includes_all":
        held = isinstance(v, list) and all(includes(x) for x in value)
    elif op == "is_empty":
        held = is_empty(v)
    elif op == "is_not_empty":
        held = not is_empty(v)
    elif op in ("older_than", "newer_than"):
        t = parse_timestamp(v)
        duration = parse_duration(value)
        assert duration is not None, f"invalid duration reached the oracle: {value!r}"
        if t is None:
            held = False
        elif op == "older_than":
            held = _microseconds(ctx.now - t) >= duration * 1_000_000
        else:
            held = _microseconds(ctx.now - t) < duration * 1_000_000
    elif op in ("older_than_business", "newer_than_business"):
        t = parse_timestamp(v)
        duration = parse_duration(value)
        assert duration is not None, f"invalid duration reached the oracle: {value!r}"
        spec = leaf["calendar"]
        spec = ctx.calendars[spec] if isinstance(spec, str) else spec
        if t is None:
            held = False
        else:
            reached = business_seconds(spec, t, ctx.now) >= duration
            held = reached if op == "older_than_business" else not reached
    else:  # pragma: no cover - the oracle is only fed valid rules
        raise AssertionError(f"unknown op {op!r}")
    return held, v


def check_node(node: Any, path: str, ctx: "_Pass", held: dict[str, str] | None = None
               ) -> dict[str, Any] | None:
    """None when the node holds, else the failure: the first failing leaf or a failing `any`.

    `held` collects, for each `any` group reached through `all`s from the root (not one inside
    another group's branch) that held before the failure, the path of its first branch in
    written order that held."""
    if not node:  # absent, null or {}: no conditions
        return None
    if "all" in node:
        for i, child in enumerate(node["all"]):
            failure = check_node(child, f"{path}.all[{i}]", ctx, held)
            if failure is not None:
                return failure
        return None
    if "any" in node:
        for i, child in enumerate(node["any"]):
            if check_node(child, f"{path}.any[{i}]", ctx) is None:
                if held is not None:
                    held[path] = f"{path}.any[{i}]"
                return None
        return {"path": path, "field": None, "op": "any", "value": None, "seen": None}
    held, seen = check_leaf(node, ctx)
    if held:
        return None
    out = {"path": path, "field": node["field"], "op": node["op"],
           "value": copy.deepcopy(node.get("value")), "seen": copy.deepcopy(seen)}
    if node["op"].endswith("_business"):
        out["calendar"] = copy.deepcopy(node["calendar"])
    return out


# --- templates --------------------------------------------------------------------------------


def _as_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, int, float)):
        return json.dumps(v)
    if isinstance(v, list):
        return ", ".join(_as_text(x) for x in v)
    return ""  # a dict is not a field one can render


def render(template: str, ticket: Any, event: Any, vars_: dict[str, Any]) -> str:
    """Replace each placeholder by the field it names; nothing is evaluated."""

    def lookup(name: str) -> Any:
        head, _, rest = name.partition(".")
        if head == "ticket":
            if rest.startswith("custom."):
                return _get(_get(ticket, "custom"), rest[len("custom.") :])
            return _get(ticket, rest)
        if head == "contact":
            contact = _get(ticket, "contact")
            if rest.startswith("custom."):
                return _get(_get(contact, "custom"), rest[len("custom.") :])
            return _get(contact, rest)
        if head == "message":
            return _get(_get(event, "message"), rest)
        if head == "vars":
            return vars_.get(rest)
        return None

    return _PLACEHOLDER.sub(lambda m: _as_text(lookup(m.group(1))), template)


# --- actions ----------------------------------------------------------------------------------


def _add(items: Any, new: list[Any]) -> list[Any] | None:
    """The list with `new` appended where absent (case-insensitively); None if nothing changes."""
    current = list(items) if isinstance(items, list) else []
    seen = folded_set(current)
    added = False
    for x in new:
        if _key(x) not in seen:
            current.append(x)
            seen.add(_key(x))
            added = True
    return current if added else None


def _remove(items: Any, gone: list[Any]) -> list[Any] | None:
    if not isinstance(items, list):
        return None
    drop = folded_set(gone)
    kept = [x for x in items if _key(x) not in drop]
    return kept if len(kept) != len(items) else None


class _Pass:
    """The state of one evaluation pass: the ticket as earlier rules left it, vars, effects."""

    def __init__(self, event: Any, ticket: Any, previous: Any, now: datetime,
                 handlers: dict[str, Callable[..., Any]],
                 calendars: dict[str, Any] | None = None) -> None:
        self.calendars = calendars or {}
        self.event = event
        self.ticket = copy.deepcopy(ticket)
        self.previous = previous
        self.now = now
        self.handlers = handlers
        self.vars: dict[str, Any] = {}
        self.effects: list[dict[str, Any]] = []
        self.notes: list[str] = []  # the current rule's notes (e.g. a group action without contact)

    def set(self, field: str, value: Any) -> None:
        if field.startswith("custom."):
            key = field[len("custom.") :]
            custom = self.ticket.get("custom")
            if value is None:
                if isinstance(custom, dict) and key in custom:
                    custom.pop(key)
                return
            if not isinstance(custom, dict):
                custom = self.ticket["custom"] = {}
            custom[key] = copy.deepcopy(value)
        else:
            self.ticket[field] = value

    def tags(self, new: list[Any] | None) -> None:
        if new is not None:
            self.ticket["tags"] = new

    def groups(self, change: Callable[[Any], list[Any] | None]) -> None:
        contact = self.ticket.get("contact")
        if not isinstance(contact, dict):
            self.notes.append("the ticket has no contact; group action skipped")
            return
        new = change(contact.get("groups"))
        if new is not None:
            contact["groups"] = new

    def apply(self, action: dict[str, Any], errors: list[str]) -> None:
        kind = action["type"]
        if kind == "set":
            self.set(action["field"], action["value"])
        elif kind == "close":
            self.ticket["status"] = "closed"
        elif kind == "add_tags":
            self.tags(_add(self.ticket.get("tags"), action["tags"]))
        elif kind == "remove_tags":
            self.tags(_remove(self.ticket.get("tags"), action["tags"]))
        elif kind == "add_to_group":
            self.groups(lambda g: _add(g, [action["group"]]))
        elif kind == "remove_from_group":
            self.groups(lambda g: _remove(g, [action["group"]]))
        elif kind == "apply_sla":
            self.effects.append({"type": "apply_sla", "policy": action["policy"]})
        elif kind == "snooze":
            key = "for" if "for" in action else "until"
            self.effects.append({"type": "snooze", key: action[key]})
        elif kind == "wake":
            self.effects.append({"type": "wake"})
        elif kind == "send_message":
            body = render(action["template"], self.ticket, self.event, self.vars)
            effect = {"type": "send_message", "template": action["template"], "body": body}
            if action.get("allow_auto_reply") is True:  # kept on the effect for the loop guard
                effect["allow_auto_reply"] = True
            self.effects.append(effect)
        elif kind == "notify":
            message = render(action["message"], self.ticket, self.event, self.vars)
            self.effects.append({"type": "notify", "target": action["target"], "message": message})
        elif kind == "webhook":
            effect = {"type": "webhook", "url": action["url"], "method": action.get("method", "POST")}
            for key in ("headers", "body"):
                if key in action:
                    effect[key] = copy.deepcopy(action[key])
            self.effects.append(effect)
        elif kind == "http_request":
            handler = self.handlers.get("http_request")
            if handler is None:
                effect = {k: copy.deepcopy(v) for k, v in action.items() if k != "type"}
                effect.setdefault("method", "GET")
                self.effects.append({"type": "http_request", **effect})
                return
            try:
                result = handler(copy.deepcopy(action), copy.deepcopy(self.ticket),
                                 self.event, dict(self.vars))
            except Exception as exc:  # a handler failure is data, the pass goes on
                errors.append(f"http_request failed: {exc}")
                return
            self.vars.update(result or {})
        elif kind == "run_script":
            handler = self.handlers.get("run_script")
            if handler is None:
                effect = {"type": "run_script", "script": action["script"]}
                if "version" in action:
                    effect["version"] = action["version"]
                self.effects.append(effect)
                return
            try:
                updates = handler(copy.deepcopy(action), self.event, copy.deepcopy(self.ticket))
                if updates is not None:
                    self.apply_updates(updates, errors)
            except Exception as exc:
                errors.append(f"run_script failed: {exc}")
        else:  # pragma: no cover
            raise AssertionError(f"unknown action {kind!r}")

    def apply_updates(self, updates: dict[str, Any], errors: list[str]) -> None:
        """A script's updates, all or nothing (the subset of API.md's update keys we test)."""
        allowed = {"status", "priority", "department", "assignee", "custom", "add_tags",
                   "remove_tags", "add_groups", "remove_groups", "sla_policy", "snooze", "actions"}
        unknown = set(updates) - allowed
        if unknown:
            raise ValueError(f"unknown update keys {sorted(unknown)}")
        if "status" in updates and updates["status"] not in STATUSES:
            raise ValueError("bad status")
        if "priority" in updates and updates["priority"] not in PRIORITIES:
            raise ValueError("bad priority")
        saved = copy.deepcopy(self.ticket), list(self.effects)
        try:
            for field in ("status", "priority", "department", "assignee"):
                if field in updates:
                    self.set(field, updates[field])
            for key, value in (updates.get("custom") or {}).items():
                self.set(f"custom.{key}", value)
            if "add_tags" in updates:
                self.tags(_add(self.ticket.get("tags"), updates["add_tags"]))
            if "remove_tags" in updates:
                self.tags(_remove(self.ticket.get("tags"), updates["remove_tags"]))
            if "add_groups" in updates:
                self.groups(lambda g: _add(g, updates["add_groups"]))
            if "remove_groups" in updates:
                self.groups(lambda g: _remove(g, updates["remove_groups"]))
            if "sla_policy" in updates:
                self.effects.append({"type": "apply_sla", "policy": updates["sla_policy"]})
            if "snooze" in updates:
                key = "for" if parse_duration(updates["snooze"]) else "until"
                self.effects.append({"type": "snooze", key: updates["snooze"]})
            for action in updates.get("actions") or []:
                self.apply(action, errors)
        except Exception:
            self.ticket, self.effects = saved
            raise


# --- changes ----------------------------------------------------------------------------------


def _set_diff(before: Any, after: Any) -> dict[str, list[Any]] | None:
    b = before if isinstance(before, list) else []
    a = after if isinstance(after, list) else []
    added = [x for x in a if _key(x) not in folded_set(b)]
    removed = [x for x in b if _key(x) not in folded_set(a)]
    if not added and not removed:
        return None
    return {"added": added, "removed": removed}


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """API.md's `changes`: only net differences between the merged ticket and the result."""
    changes: dict[str, Any] = {}
    for field in ("status", "priority", "department", "assignee"):
        old, new = before.get(field), after.get(field)
        if not exact(old, new):
            changes[field] = [old, new]
    old_custom = before.get("custom") if isinstance(before.get("custom"), dict) else {}
    new_custom = after.get("custom") if isinstance(after.get("custom"), dict) else {}
    for key in list(old_custom) + [k for k in new_custom if k not in old_custom]:
        old, new = old_custom.get(key), new_custom.get(key)
        if not exact(old, new):
            changes[f"custom.{key}"] = [old, new]
    tags = _set_diff(before.get("tags"), after.get("tags"))
    if tags:
        changes["tags"] = tags
    groups = _set_diff(_get(_get(before, "contact"), "groups"), _get(_get(after, "contact"), "groups"))
    if groups:
        changes["contact.groups"] = groups
    return changes


# --- the rule set -----------------------------------------------------------------------------


class OracleRuleSet:
    def __init__(self, rules: list[dict[str, Any]], calendars: dict[str, Any] | None = None) -> None:
        self.rules = [copy.deepcopy(r) for r in rules if r.get("enabled", True) is not False]
        self.calendars = copy.deepcopy(calendars or {})

    def evaluate(self, event: dict[str, Any], ticket: dict[str, Any], previous: Any = None,
                 now: datetime | None = None,
                 handlers: dict[str, Callable[..., Any]] | None = None) -> Evaluation:
        if now is None:
            now = datetime.now(timezone.utc)
        elif now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        state = _Pass(copy.deepcopy(event), ticket, copy.deepcopy(previous), now, handlers or {},
                      self.calendars)
        matched: list[str] = []
        explain: list[dict[str, Any]] = []
        for rule in self.rules:
            if event.get("type") not in rule["triggers"]:
                continue
            held: dict[str, str] = {}
            failure = check_node(rule.get("conditions"), "conditions", state, held)
            errors: list[str] = []
            state.notes = []
            entry = {"id": rule.get("id"), "name": rule.get("name"), "matched": failure is None,
                     "failed": failure, "errors": errors, "notes": state.notes}
            if held:
                entry["any_held"] = held
            explain.append(entry)
            if failure is not None:
                continue
            matched.append(rule["id"] if rule.get("id") is not None else rule["name"])
            for action in rule["actions"]:
                state.apply(action, errors)
            if rule.get("stop") is True:
                break
        return Evaluation(matched=matched, changes=diff(ticket, state.ticket),
                          effects=state.effects, ticket=state.ticket, vars=state.vars,
                          explain=explain)


def compile_rules(rules: list[dict[str, Any]], calendars: dict[str, Any] | None = None) -> OracleRuleSet:
    return OracleRuleSet(rules, calendars)
