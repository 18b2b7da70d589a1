"""Bounds on what one event's pass may store and set off. Pure.

Why: a run record is written for every event, and it carried a whole copy of the ticket, every
script's logs and every HTTP call; 30 events made 31.5 MB of runs. And one rule with 300 `webhook`
actions turned each event into 300 deliveries. So a pass keeps at most MAX_EFFECTS_PER_EVENT
effects (the rest are suppressed, each with its reason in the run record's `suppressed`), and a
run record above MAX_RUN_RECORD_BYTES is trimmed, largest-and-least-needed parts first, with a
note saying what went. The explain (`rules`), `matched`, ids and error are never trimmed.

The record's `rules` the worker builds are a StoredRules: packed (rules/packed.py `pack`), stored
as such and expanded when read (server/store/run_rules.py).
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["MAX_EFFECTS_PER_EVENT", "MAX_RUN_RECORD_BYTES", "cap_effects", "bound_record", "rule_entries",
           "StoredRules", "stored_rules", "packed_rules", "with_revisions", "checked_rule_ids", "rule_errors"]

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


class StoredRules(list):  # type: ignore[type-arg]
    """The run record's `rules` as the worker builds them: packed (rules/packed.py `pack`: per
    rule its id, revision and `first` code, the values its fields had, and whole entries only
    where a code cannot describe one), so storing the record writes that one small object
    (orjson writes the one item this list holds: the stored `rules` is `[packed]`) and a reader
    expands it with each rule at its revision (server/store/run_rules.py). Read from Python it is
    the list of entries, expanded on first read with the rule set that built it; it cannot be
    changed.

    Why: at 1,000 rules an event's record holds 125 entries (~25 KB), 1,250 (~1 MB) at 10,000,
    and building them cost several times the rules pass itself (bench/RESULTS.md, "Rules engine,
    many rules firing"); the packed form is a tenth of the bytes and about one more pass."""

    __slots__ = ("_packed", "_plan", "_n", "_items", "checked", "erred")

    def __init__(self, packed: dict[str, Any], plan: Any, checked: list[str],
                 erred: list[tuple[Any, list[str]]]) -> None:
        super().__init__([packed_json(packed, plan)])
        self._packed, self._plan, self._n = packed, plan, len(packed["ids"])
        self._items: list[dict[str, Any]] | None = None
        self.checked = checked      # ids of the rules checked: usage counts
        self.erred = erred          # (id, errors) of the rules whose actions erred

    def items(self) -> list[dict[str, Any]]:
        if self._items is None:
            from rules.packed import unpack
            plan = self._plan
            self._items = unpack(self._packed, lambda i: (plan, i))
        return self._items

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Any:
        return iter(self.items())

    def __reversed__(self) -> Any:
        return reversed(self.items())

    def __getitem__(self, i: Any) -> Any:
        return self.items()[i]

    def __contains__(self, item: object) -> bool:
        return item in self.items()

    def __eq__(self, other: object) -> bool:
        return self.items() == (other.items() if isinstance(other, StoredRules) else other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self.items())

    def index(self, *args: Any) -> int:
        return self.items().index(*args)

    def count(self, item: Any) -> int:
        return self.items().count(item)

    def copy(self) -> list[dict[str, Any]]:
        return orjson.loads(orjson.dumps(self.items()))  # type: ignore[no-any-return]

    def __copy__(self) -> list[dict[str, Any]]:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> list[dict[str, Any]]:
        return self.copy()

    def __reduce__(self) -> Any:
        return (list, (self.copy(),))

    def _read_only(self, *_: Any, **__: Any) -> Any:
        raise TypeError("a run record's stored rules cannot be changed")

    append = extend = insert = pop = remove = clear = sort = reverse = _read_only
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only


_KEYS = ("packed", "ids", "revs", "codes", "fired", "full", "at", "seen")   # pack's, in its order


def packed_json(packed: dict[str, Any], plan: Any) -> Any:
    """`packed` as orjson writes it, in an orjson.Fragment (written as it is), or `packed` itself
    for data orjson cannot write (or a shape other than pack's).

    Why: the record is serialized twice per event (bound_record measures it, the commit stores
    it), and most of a packed record's bytes are its ids and revisions (at 10,000 rules 12 of
    its 18 KB), the same lists for every event of a rule set and revisions map. Those are
    serialized once and kept on the plan (RecordPlan.json_head, by the lists' identity: pack
    hands out the plan's own lists); an event serializes the rest once, and both dumps copy the
    bytes. The bytes are orjson's of the dict (the same keys in the same order)."""
    if tuple(packed) != _KEYS:
        return packed
    ids, revs = packed["ids"], packed["revs"]
    held_ids, held_revs, head = plan.json_head
    try:
        if ids is not held_ids or revs is not held_revs:
            head = orjson.dumps({"packed": packed["packed"], "ids": ids, "revs": revs})[:-1]
            if ids is plan.ids:   # (a pass cut short by a stop rule has its own slices: not kept)
                plan.json_head = (ids, revs, head)
        rest = orjson.dumps({"codes": packed["codes"], "fired": packed["fired"], "full": packed["full"],
                             "at": packed["at"], "seen": packed["seen"]})
    except TypeError:   # (odd data in a value seen: the commit's own dumps says what)
        return packed
    return orjson.Fragment(b"%b,%b" % (head, rest[1:]))


def stored_rules(ev: Any, revisions: dict[str, Any]) -> list[dict[str, Any]]:
    """The run record's `rules` with each rule's `revision` (`revisions.get(str(id))`): from an
    engine Evaluation whose rules all have ids, a StoredRules (packed); from anything else, the
    entries of rule_entries, copied."""
    if getattr(ev, "_bucket", _NONE) is _NONE or not hasattr(ev, "rule_entries"):
        return with_revisions(rule_entries(ev), revisions)
    from rules.packed import pack
    bucket = ev._bucket
    if bucket is None:
        return []
    packed = pack(ev, revisions)
    if packed is None:   # a rule without an id could not be found again to expand its entry
        return with_revisions(rule_entries(ev), revisions)
    plan = bucket.record
    n = len(packed["ids"])
    # (an entry shows no `skipped`: a skipped rule counts as checked, as it always did)
    checked = plan.ids if n == len(plan.heads) else plan.ids[:n]
    erred = [(plan.heads[i][0], list(f.errors)) for i, f in ev._fired.items() if f.errors]
    return StoredRules(packed, plan, checked, erred)


def packed_rules(rules: Any) -> dict[str, Any] | None:
    """The packed form a stored record's `rules` holds (`[packed]`, StoredRules), or None for a
    list of entries (records of anything but the worker's pass, and of older versions)."""
    if type(rules) is list and len(rules) == 1:
        first = rules[0]
        if type(first) is dict and first.get("packed") == 1:
            return first
    return None


_NONE = object()


def with_revisions(rules: list[dict[str, Any]], revisions: dict[str, Any]) -> list[dict[str, Any]]:
    """Each entry with its rule's `revision` (a StoredRules has them already)."""
    if isinstance(rules, StoredRules):
        return rules
    return [dict(e, revision=revisions.get(str(e.get("id")))) for e in rules]


def checked_rule_ids(rules: Any) -> list[str]:
    """Ids of the rules a record's `rules` shows checked (an entry without `skipped`)."""
    if isinstance(rules, StoredRules):
        return rules.checked
    return [str(item["id"]) for item in rules or []
            if item.get("id") is not None and not item.get("skipped")]


def rule_errors(rules: Any) -> list[tuple[Any, list[str]]]:
    """(id, errors) of the rules whose actions erred, as a record's `rules` shows them."""
    if isinstance(rules, StoredRules):
        return rules.erred
    return [(item["id"], item["errors"]) for item in rules or []
            if item.get("errors") and item.get("id") is not None]


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
_TRIMMED = tuple(dict.fromkeys(k for _, keys in _TRIMS for k in keys))


def bound_record(record: dict[str, Any], limit: int = MAX_RUN_RECORD_BYTES) -> dict[str, Any]:
    """The record, trimmed to at most `limit` bytes of JSON where that is possible, with a note
    naming what was trimmed. The caller's record is not changed.

    The record is serialized once; each trim then re-measures only the parts it touched, so a
    record whose explain alone is over the limit (10,000 rules: ~350 KB of `rules`, which is
    never trimmed) costs one pass over the trims, not one whole-record serialization per trim.
    Only the parts a trim may change are copied (`rules`, never trimmed, is shared, as are the
    ids, `matched` and the notes)."""
    raw = orjson.dumps(record)
    if len(raw) <= limit:
        return record
    out: dict[str, Any] = dict(record)
    for key in _TRIMMED:
        if key in out:
            out[key] = orjson.loads(orjson.dumps(out[key]))
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
