"""Every problem of an SLA policy at once, in the user's words.

`rules.sla.compile_policy` stops at the first problem (it is the engine's compiler, and a stored
policy is valid). A person fixing a policy wants all of them in one answer, as rules get, so each
part is checked on its own here: every target, every day of the week, every holiday, each against
an otherwise valid policy, and the whole policy last (for what spans parts). The paths are
compile_policy's own.

YAML 1.1 (PyYAML) reads an unquoted `17:00` as the number 1020 (sexagesimal: 17 * 60); a number
where a "HH:MM" time belongs is answered with what it was read as and how to write it.
"""

from __future__ import annotations

from typing import Any

from rules import RuleError
from rules.conditions import parse
from rules.sla import TARGETS, compile_policy

__all__ = ["policy_problems", "time_hint"]

_KNOWN = frozenset({"name", "conditions", "targets", "warn_before", "business_hours",
                    "pause_on_pending", "description"})
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_OPEN = ["09:00", "17:00"]
_BASE_TARGETS = {"resolution": "1h"}


def time_hint(value: Any) -> str | None:
    """For a number where a "HH:MM" time is expected: what YAML made of the time, and the fix."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and 0 <= value <= 24 * 60:
        example = f"{value // 60:02d}:{value % 60:02d}"
    else:
        example = "17:00"
    return (f'must be a time "HH:MM"; got the number {value!r}; in YAML write times in quotes, '
            f'e.g. "{example}"')


def _probe(name: str, part: dict[str, Any]) -> list[tuple[str, str]]:
    """The first problem of an otherwise valid policy with `part` in it ([] when none)."""
    spec = {"name": name, "targets": dict(_BASE_TARGETS), **part}
    try:
        compile_policy(spec)
    except RuleError as exc:
        return [(exc.path, exc.reason)]
    return []


def _window_hints(raw: Any, path: str) -> list[tuple[str, str]] | None:
    """Numbers among a day's times (both window forms); None when there are none."""
    if type(raw) is not list:
        return None
    pairs = [raw] if len(raw) == 2 and not any(type(x) is list for x in raw) else raw
    out = []
    for i, pair in enumerate(pairs):
        p = path if pairs is not raw else f"{path}[{i}]"
        if type(pair) is not list:
            continue
        for j, value in enumerate(pair):
            hint = time_hint(value)
            if hint:
                out.append((f"{p}[{j}]", hint))
    return out or None


def _business_hours(name: str, bh: Any) -> list[tuple[str, str]]:
    if type(bh) is not dict:
        return _probe(name, {"business_hours": bh})
    out: list[tuple[str, str]] = []
    for key in sorted(set(bh) - {"timezone", "week", "holidays"}):
        out.append((f"business_hours.{key}", "unknown key; business hours have timezone, week, holidays"))
    tz = bh.get("timezone", "UTC")
    filler = {"mon": _OPEN}
    if "timezone" in bh:
        out += _probe(name, {"business_hours": {"timezone": tz, "week": filler}})
    week = bh.get("week")
    if type(week) is not dict or not week:
        out += _probe(name, {"business_hours": {"week": week}})
    else:
        open_days = 0
        for day, raw in week.items():
            path = f"business_hours.week.{day}"
            if day not in _DAYS:
                out.append((path, "days are mon, tue, wed, thu, fri, sat, sun"))
                continue
            hints = _window_hints(raw, path)
            if hints:
                out += hints
                open_days += 1
                continue
            other = "tue" if day == "mon" else "mon"
            found = _probe(name, {"business_hours": {"week": {day: raw, other: _OPEN}}})
            out += found
            open_days += bool(raw) or bool(found)
        if not open_days and not out:
            out.append(("business_hours.week", "has no open hours"))
    holidays = bh.get("holidays")
    if holidays is not None:
        if type(holidays) is not list:
            out += _probe(name, {"business_hours": {"week": filler, "holidays": holidays}})
        else:
            for i, h in enumerate(holidays):
                for path, reason in _probe(name, {"business_hours": {"week": filler, "holidays": [h]}}):
                    out.append((path.replace("holidays[0]", f"holidays[{i}]"), reason))
    return out


def policy_problems(spec: dict[str, Any], name: str) -> list[tuple[str, str]]:
    """Every (path, reason) of a policy definition `spec` named `name` (a valid name: the caller
    checks it); [] when compile_policy accepts it."""
    out: list[tuple[str, str]] = []
    for key in spec:
        if key not in _KNOWN:
            out.append((str(key), "unknown key; a policy has name, conditions, targets, warn_before, "
                                  "business_hours, pause_on_pending, description"))
    cond = spec.get("conditions")
    if cond not in (None, {}):
        parse(cond, out)
    targets = spec.get("targets")
    if type(targets) is not dict or not targets:
        out.append(("targets", f"must map one or more of {', '.join(TARGETS)} to durations"))
    else:
        for key, value in targets.items():
            out += [(f"targets.{key}" if p == "targets" else p, r)
                    for p, r in _probe(name, {"targets": {key: value}})]
    for key in ("warn_before", "pause_on_pending"):
        if spec.get(key) is not None:
            out += _probe(name, {key: spec[key]})
    if spec.get("business_hours") is not None:
        out += _business_hours(name, spec["business_hours"])
    if not out:
        try:
            compile_policy({**spec, "name": name})
        except RuleError as exc:
            out.append((exc.path, exc.reason))
    return list(dict.fromkeys(out))
