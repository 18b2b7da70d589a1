"""The checking half of a backtest (POST /v1/rules/backtest, server/api/backtest.py): pure, run
in a backtest worker process (server/backtest_proc.py), never in the API process.

From the run records the API process reads, it rebuilds each event and the ticket as the event
left it (`_rebuild`, undoing the record's `changes`), checks the backtested rule alone on it
(`Checker.fires`: rules.dry_run's path without its explain) and compares the rule with each rule
that did fire (`conflicts_between`). Nothing here does I/O; server/api/backtest.py's docstring
says what is read and why.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson

from rules import parse_timestamp

__all__ = ["Checker", "Tally", "parse_runs", "rebuild", "undo_changes", "conflicts_between",
           "MAX_HITS", "MAX_CONFLICTS"]

MAX_HITS = 100           # hits listed (all are counted in `fired`)
MAX_CONFLICTS = 100      # conflicts listed (all are counted in `conflicts_total`)


def _fold(v: Any) -> Any:
    return v.casefold() if isinstance(v, str) else v


def undo_changes(after: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The ticket before automation: `after` with API.md's `changes` undone."""
    t: dict[str, Any] = orjson.loads(orjson.dumps(after))
    for key, value in changes.items():
        if key in ("tags", "contact.groups") and isinstance(value, dict):
            holder = t if key == "tags" else (t.get("contact") or {})
            name = "tags" if key == "tags" else "groups"
            added = {_fold(x) for x in value.get("added") or []}
            kept = [x for x in holder.get(name) or [] if _fold(x) not in added]
            holder[name] = kept + list(value.get("removed") or [])
        elif isinstance(value, list) and len(value) == 2:
            old = value[0]
            if key.startswith("custom."):
                custom = t.setdefault("custom", {})
                if old is None:
                    custom.pop(key[len("custom."):], None)
                else:
                    custom[key[len("custom."):]] = old
            elif key.startswith("contact.") and isinstance(t.get("contact"), dict):
                t["contact"][key[len("contact."):]] = old
            else:
                t[key] = old
    return t


def _writes(rule: dict[str, Any]) -> tuple[dict[str, Any], dict[str, set[str]], dict[str, set[str]]]:
    """(field -> value it sets, {"tags"/"contact.groups": added}, {...: removed}) of a rule."""
    sets: dict[str, Any] = {}
    adds: dict[str, set[str]] = {"tags": set(), "contact.groups": set()}
    removes: dict[str, set[str]] = {"tags": set(), "contact.groups": set()}
    for a in rule.get("actions") or []:
        if not isinstance(a, dict):
            continue
        kind = a.get("type")
        if kind == "set" and isinstance(a.get("field"), str):
            sets[a["field"]] = a.get("value")
        elif kind == "close":
            sets["status"] = "closed"
        elif kind in ("add_tags", "remove_tags"):
            target = adds if kind == "add_tags" else removes
            target["tags"] |= {_fold(x) for x in a.get("tags") or [] if isinstance(x, str)}
        elif kind in ("add_to_group", "remove_from_group") and isinstance(a.get("group"), str):
            target = adds if kind == "add_to_group" else removes
            target["contact.groups"].add(_fold(a["group"]))
    return sets, adds, removes


def conflicts_between(mine: dict[str, Any], other: dict[str, Any]) -> list[dict[str, Any]]:
    """Where `other` (a rule that fired) works against `mine`: {field, this, other}."""
    m_sets, m_adds, m_removes = _writes(mine)
    o_sets, o_adds, o_removes = _writes(other)
    out = []
    for field, value in m_sets.items():
        if field in o_sets and _fold(o_sets[field]) != _fold(value):
            out.append({"field": field, "this": value, "other": o_sets[field]})
    for field in ("tags", "contact.groups"):
        for name in sorted(m_removes[field] & o_adds[field]):
            out.append({"field": field, "this": f"removes {name}", "other": f"adds {name}"})
        for name in sorted(m_adds[field] & o_removes[field]):
            out.append({"field": field, "this": f"adds {name}", "other": f"removes {name}"})
    return out


class Tally:
    def __init__(self) -> None:
        self.checked = self.fired = self.conflicts_total = 0
        self.skipped: dict[str, int] = {}
        self.approximate: dict[str, int] = {}
        self.hits: list[dict[str, Any]] = []
        self.conflicts: list[dict[str, Any]] = []
        self.truncated = False

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def approx(self, why: str) -> None:
        self.approximate[why] = self.approximate.get(why, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        """What the API answers from (the backtest process sends it after each chunk)."""
        return {"checked": self.checked, "fired": self.fired, "hits": self.hits,
                "conflicts": self.conflicts, "conflicts_total": self.conflicts_total,
                "skipped": self.skipped, "approximate": self.approximate,
                "truncated": self.truncated}


class Checker:
    """The backtested rule compiled once, checked on rebuilt events. Pure, no I/O; it runs in a
    backtest process of its own, so it holds no GIL another workspace's request waits on."""

    def __init__(self, rule: dict[str, Any], replaces: str | None, cal: Any) -> None:
        """`cal`: the workspace's calendars as plain data (server/checkwork.py Calendars),
        compiled here, in the backtest process, not in the API's."""
        from rules.compile import compile_rule
        from server.checkwork import calendars

        self.rule, self.replaces = rule, replaces
        self.compiled = compile_rule(rule, 0, calendars(cal))

    def fires(self, item: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """(changes, effects) when the rule fires on the item, else None (rules.dry_run's path
        without its explain)."""
        from rules.actions import Firing
        from rules.ops import State
        from rules.updates import diff

        event, before = item["event"], item["ticket"]
        if event.get("type") not in self.compiled.triggers:
            return None
        state = State(before, event, {}, item["previous"] or {}, item["now"])
        if not self.compiled.pred(state):
            return None
        firing = Firing(dict(before), event, {}, None)
        for action in self.compiled.actions:
            action.apply(firing)
        return diff(before, firing.ticket), list(firing.effects)

    def check(self, runs: list[dict[str, Any]], reads: dict[str, Any],
              fired_defs: dict[tuple[str, int | None], dict[str, Any]], tally: Tally,
              deadline: float) -> None:
        for run in runs:
            if time.monotonic() > deadline:
                tally.truncated = True
                return
            item = rebuild(run, reads, tally)
            if item is None:
                continue
            tally.checked += 1
            fired = self.fires(item)
            if fired is None:
                continue
            tally.fired += 1
            if len(tally.hits) < MAX_HITS:
                tally.hits.append({"event_id": run.get("event_id"), "ticket_id": run.get("ticket_id"),
                                   "run_id": run.get("id"), "event_type": run.get("event_type"),
                                   "at": run.get("at"), "changes": fired[0], "effects": fired[1],
                                   "fired": list(run.get("matched") or [])})
            self._conflicts(run, fired_defs, tally)

    def _conflicts(self, run: dict[str, Any], fired_defs: dict[tuple[str, int | None], dict[str, Any]],
                   tally: Tally) -> None:
        for rid in run.get("matched") or []:
            if str(rid) == self.replaces:
                continue
            other = fired_defs.get((str(rid), (run.get("rule_revisions") or {}).get(str(rid))))
            if other is None:
                continue
            for c in conflicts_between(self.rule, other):
                tally.conflicts_total += 1
                if len(tally.conflicts) < MAX_CONFLICTS:
                    tally.conflicts.append({"event_id": run.get("event_id"),
                                            "ticket_id": run.get("ticket_id"),
                                            "rule": {"id": other.get("id"), "name": other.get("name")},
                                            **c})


def parse_runs(raws: list[Any], tally: Tally) -> list[dict[str, Any]]:
    """Run records from their JSON (in the thread); an expired one is counted in `skipped`."""
    runs = []
    for raw in raws:
        if raw:
            runs.append(orjson.loads(raw))
        else:
            tally.skip("expired")
    return runs


def rebuild(run: dict[str, Any], reads: dict[str, Any], tally: Tally) -> dict[str, Any] | None:
    """The event, the ticket as the event left it and the ticket before the event, from a run
    record and what _reads fetched; None (counted) when the record was trimmed."""
    after, changes = run.get("ticket"), run.get("changes")
    if not isinstance(after, dict) or after.get("trimmed") or not isinstance(changes, dict) \
            or changes.get("trimmed"):
        tally.skip("trimmed")
        return None
    ticket = undo_changes(after, changes)
    tid = str(run.get("ticket_id"))
    event: dict[str, Any] = {"id": run.get("event_id"), "type": run.get("event_type"),
                             "ticket": {"id": tid}}
    if reads["needs_message"] and str(run.get("event_type", "")).startswith("message."):
        ids, entries = reads["ticket_runs"].get(tid) or [], reads["history"].get(tid) or []
        pos = ids.index(run["id"]) if run.get("id") in ids else None
        entry = (orjson.loads(entries[-(pos + 1)])
                 if pos is not None and pos < len(entries) else None)
        if entry and entry.get("type") == run.get("event_type") and entry.get("message"):
            event["message"] = entry["message"]
        else:
            tally.approx("message not in the ticket's history")
    previous: dict[str, Any] | None = None
    if reads["needs_previous"] and int(after.get("version") or 0) > 1:
        raw = reads["previous_runs"].get(run.get("id"))
        prev_ticket = orjson.loads(raw).get("ticket") if raw else None
        if isinstance(prev_ticket, dict) and not prev_ticket.get("trimmed"):
            previous = prev_ticket
        else:
            previous = ticket
            tally.approx("ticket before the event not stored")
    at = parse_timestamp(run.get("at"))
    now = at.astimezone(UTC) if at is not None else datetime.now(UTC)
    return {"event": event, "ticket": ticket, "previous": previous, "now": now}
