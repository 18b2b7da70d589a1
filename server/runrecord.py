"""Bounds on what one event's pass may store and set off. Pure.

Why: a run record is written for every event, and it carried a whole copy of the ticket, every
script's logs and every HTTP call; 30 events made 31.5 MB of runs. And one rule with 300 `webhook`
actions turned each event into 300 deliveries. So a pass keeps at most MAX_EFFECTS_PER_EVENT
effects (the rest are suppressed, each with its reason in the run record's `suppressed`), and a
run record above MAX_RUN_RECORD_BYTES is trimmed, largest-and-least-needed parts first, with a
note saying what went. The explain (`rules`), `matched`, ids and error are never trimmed.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["MAX_EFFECTS_PER_EVENT", "MAX_RUN_RECORD_BYTES", "cap_effects", "bound_record", "rule_entries"]

MAX_EFFECTS_PER_EVENT = 50
MAX_RUN_RECORD_BYTES = 256 * 1024


def _rule_entry(item: dict[str, Any]) -> dict[str, Any]:
    entry = {"id": item.get("id"), "name": item.get("name"), "matched": bool(item.get("matched")),
             "failed": item.get("failed")}
    if item.get("errors"):
        entry["errors"] = list(item["errors"])
    return entry


def rule_entries(ev: Any) -> list[dict[str, Any]]:
    """The run record's `rules`: `{id, name, matched, failed[, errors]}` per rule the event's type
    reaches, in order. An engine Evaluation builds them in one pass over what the rules pass left
    (rules/record.py: about the cost of one more pass, where building them from `.explain` cost
    up to 14 passes); anything else that has an `explain` is read through it."""
    build = getattr(ev, "rule_entries", None)
    if build is not None:
        return build()  # type: ignore[no-any-return]
    return [_rule_entry(e) for e in ev.explain]


def cap_effects(effects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(effects kept, suppressed entries for the rest)."""
    if len(effects) <= MAX_EFFECTS_PER_EVENT:
        return effects, []
    reason = (f"more than {MAX_EFFECTS_PER_EVENT} effects in one event "
              f"(limit MAX_EFFECTS_PER_EVENT); this one and later ones were not carried out")
    return (effects[:MAX_EFFECTS_PER_EVENT],
            [{"effect": e, "reason": reason} for e in effects[MAX_EFFECTS_PER_EVENT:]])


def _size(value: Any) -> int:
    return len(orjson.dumps(value))


def _trim_ticket(r: dict[str, Any]) -> str | None:
    t = r.get("ticket")
    if not isinstance(t, dict) or t.get("trimmed"):
        return None
    r["ticket"] = {"id": t.get("id"), "version": t.get("version"), "trimmed": True}
    return "ticket (read it at GET /v1/tickets/{id})"


def _trim_script_logs(r: dict[str, Any]) -> str | None:
    scripts = [s for s in r.get("scripts") or [] if isinstance(s, dict) and s.get("logs")]
    for s in scripts:
        s["logs"] = [f"({len(s['logs'])} log lines trimmed)"]
    return "scripts[].logs" if scripts else None


def _trim_http(r: dict[str, Any]) -> str | None:
    done = []
    if r.get("http_calls"):
        r["http_calls"] = [{"trimmed": len(r["http_calls"])}]
        done.append("http_calls")
    for s in r.get("scripts") or []:
        if isinstance(s, dict) and s.get("http_calls"):
            s["http_calls"] = [{"trimmed": len(s["http_calls"])}]
            if "scripts[].http_calls" not in done:
                done.append("scripts[].http_calls")
    return ", ".join(done) or None


def _trim_field(name: str) -> Any:
    def trim(r: dict[str, Any]) -> str | None:
        if not r.get(name):
            return None
        r[name] = {"trimmed": True} if isinstance(r[name], dict) else [{"trimmed": len(r[name])}]
        return name
    return trim


def _trim_script_updates(r: dict[str, Any]) -> str | None:
    scripts = [s for s in r.get("scripts") or [] if isinstance(s, dict) and s.get("updates")]
    for s in scripts:
        s["updates"] = {"trimmed": True}
    return "scripts[].updates" if scripts else None


# Trimmed in this order until the record fits: the ticket copy is in the ticket itself; logs and
# HTTP call lists are diagnostics; vars, changes, effects and suppressed are the run's own data,
# last (the feed entry keeps the untrimmed changes and effects).
# Each with the top-level keys it may change (what is re-measured after it).
_TRIMS = ((_trim_ticket, ("ticket",)), (_trim_script_logs, ("scripts",)),
          (_trim_http, ("http_calls", "scripts")), (_trim_field("vars"), ("vars",)),
          (_trim_script_updates, ("scripts",)), (_trim_field("suppressed"), ("suppressed",)),
          (_trim_field("changes"), ("changes",)), (_trim_field("effects"), ("effects",)))


def bound_record(record: dict[str, Any], limit: int = MAX_RUN_RECORD_BYTES) -> dict[str, Any]:
    """The record, trimmed to at most `limit` bytes of JSON where that is possible, with a note
    naming what was trimmed. The caller's record is not changed.

    The record is serialized once; each trim then re-measures only the parts it touched, so a
    record whose explain alone is over the limit (10,000 rules: ~350 KB of `rules`, which is
    never trimmed) costs one pass over the trims, not one whole-record serialization per trim."""
    raw = orjson.dumps(record)
    if len(raw) <= limit:
        return record
    out: dict[str, Any] = orjson.loads(raw)
    total = len(raw)
    trimmed: list[str] = []
    for trim, keys in _TRIMS:
        before = sum(_size(out[k]) for k in keys if k in out)
        what = trim(out)
        if what:
            trimmed.append(what)
            total -= before - sum(_size(out[k]) for k in keys if k in out)
        if total <= limit - 300:
            break
    out["notes"] = [*(out.get("notes") or []),
                    f"run record over {limit} bytes (limit MAX_RUN_RECORD_BYTES): trimmed "
                    + ", ".join(trimmed)]
    out["trimmed"] = trimmed
    return out
