"""A ticket's recent events as scripts read them (`ctx.history`), and which scripts read it.

Why stored per ticket and not rebuilt from run records: a run record is up to hundreds of KiB and
expires on its own schedule; a history entry is the few fields a script reasons about (who said
what, what changed), bounded when it is written, so reading the last 50 is one LRANGE of at most
~300 KiB. The commit appends the event's entry (RPUSH + LTRIM + EXPIRE in the same EVAL: no extra
round trip); a pass reads it only when one of the scripts its rules run names `ctx.history`
(`uses`, stored with each script version at upload), so passes that do not use it pay nothing.

During a pass ctx.history holds the events before the one being applied (that one is the
script's `event` argument), oldest first.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from rules.actors import actor_of

__all__ = ["MAX_ENTRIES", "MAX_BYTES", "MAX_BODY_BYTES", "MAX_CHANGES_BYTES", "MAX_NAMES",
           "MAX_NAME_BYTES", "USES",
           "entry", "bounded", "cut", "uses_of", "history_writes", "script_names"]

MAX_ENTRIES = 50                 # ctx.history: the last 50 events
MAX_BYTES = 256 * 1024           # ... and at most 256 KiB of them (compact JSON), oldest dropped
MAX_BODY_BYTES = 4096            # a message body in an entry (UTF-8), cut with " …[truncated]"
MAX_CHANGES_BYTES = 1024         # an entry's changes; past it, the changed field names only
MAX_NAMES = 32                   # ... at most this many of them, each cut to MAX_NAME_BYTES, and
MAX_NAME_BYTES = 100             # all within MAX_CHANGES_BYTES too (a custom field's name may be
                                 # KiBs long: 32 of them made a 16-32 KiB entry)
USES = ("history", "customer")   # the ctx attributes the worker loads for a script

# `.history` / `.customer` as an attribute, or named in a getattr() string: deliberately wide
# (a false positive costs one read per pass, a false negative an empty value).
_USE = {name: re.compile(rf"\.\s*{name}\b|getattr\s*\([^)]*['\"]{name}['\"]") for name in USES}


def uses_of(source: str) -> list[str]:
    """The ctx attributes among USES that a script's source names (stored with the version)."""
    return [name for name in USES if _USE[name].search(source)]


def cut(text: Any, limit: int) -> Any:
    """`text` within `limit` UTF-8 bytes, ending " …[truncated]" when cut (non-text as it is)."""
    if type(text) is not str:
        return text
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    return raw[: limit - 16].decode("utf-8", "ignore") + " …[truncated]"


def entry(event: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """One event's history entry, bounded (at most ~5.5 KiB)."""
    message = event.get("message")
    msg = None
    if isinstance(message, dict) and str(event.get("type", "")).startswith("message."):
        author = message.get("author") or (
            "agent" if event.get("type") == "message.sent" else "customer")
        msg = {"author": author, "body": cut(message.get("body"), MAX_BODY_BYTES),
               "channel": message.get("channel")}
    kept: dict[str, Any] = dict(changes or {})
    if len(orjson.dumps(kept)) > MAX_CHANGES_BYTES:
        kept = _names_only(kept)
    return {"type": event.get("type"), "at": event.get("occurred_at"), "actor": actor_of(event),
            "message": msg, "changes": kept}


def _names_only(changes: dict[str, Any]) -> dict[str, None]:
    """The changed field names (sorted), each cut to MAX_NAME_BYTES, at most MAX_NAMES of them and
    as many as fit in MAX_CHANGES_BYTES of compact JSON."""
    out: dict[str, None] = {}
    size = 2   # {}
    for name in sorted(changes)[:MAX_NAMES]:
        short = cut(name, MAX_NAME_BYTES)
        grow = len(orjson.dumps({short: None})) - 2 + (1 if out else 0)   # "name":null and a comma
        if short in out or size + grow > MAX_CHANGES_BYTES:
            continue
        out[short] = None
        size += grow
    return out


def history_writes(key: str, ttl_s: int, item: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [("RPUSH", key, orjson.dumps(item).decode()), ("LTRIM", key, -MAX_ENTRIES, -1),
            ("EXPIRE", key, ttl_s)]


def bounded(raws: list[Any]) -> list[dict[str, Any]]:
    """Stored entries -> ctx.history: oldest first, the last MAX_ENTRIES within MAX_BYTES."""
    raws = list(raws)[-MAX_ENTRIES:]
    total, keep = 0, []
    for raw in reversed(raws):
        size = len(raw)
        if total + size > MAX_BYTES:
            break
        total += size
        try:
            keep.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            continue
    keep.reverse()
    return keep


def script_names(ruleset: Any) -> list[str]:
    """The scripts a rule set's rules may run (by name)."""
    names = {str(a.spec.get("script")) for r in getattr(ruleset, "rules", []) or []
             for a in getattr(r, "actions", []) or []
             if getattr(a, "type", None) == "run_script" and isinstance(getattr(a, "spec", None), dict)}
    return sorted(n for n in names if n)
