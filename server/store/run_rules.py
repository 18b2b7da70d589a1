"""A stored run record's `rules`, expanded when it is read.

The worker stores an event's rule entries packed (rules/packed.py `pack`, server/runrecord.py
StoredRules): per rule its id, revision and `first` code, and the values its fields had, which
are a tenth of the bytes of the entries and about one more pass to build. A reader turns them back
into the entries with each rule as it stood at that revision: a revision never changes (it stays
after its rule is deleted, server/store/revisions.py), so the entries read back are the ones the
worker would have stored (tests/rules/test_property.py, byte for byte).

Each (workspace, rule, revision) is read from the revisions hash and its plan made once
(rules/revision_plan.py `rule_plan`: the rule's steps and codes, without its predicates), then kept in a
process-wide LRU of PLANS_KEPT. A read that must make more than THREAD_AFTER plans, or parse more
than THREAD_BYTES of revisions, does it in a thread, so a workspace of 10,000 rules whose runs are
read for the first time does not hold the event loop other workspaces' requests share. A plan is
made from the rule's steps alone (no regexes, actions or `any` leaves compiled: < 1 ms and a few
hundred bytes whatever the rule holds), so a tenant whose every read is cold (its rules edited
between reads) costs a read its revisions' parse and no more.

Stored data this version cannot read never fails a read: an entry whose code does not fit its
revision says so in its `notes`, a record of another shape reads as no entries and a run note.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import orjson

from rules.packed import unpack
from rules.record import RecordPlan
from rules.revision_plan import rule_plan
from server.runrecord import packed_rules
from server.store import keys as K
from server.store.connect import Store

__all__ = ["expand_runs", "entries_weight", "PLANS_KEPT", "PLAN_BYTES_KEPT", "THREAD_AFTER", "THREAD_BYTES", "UNREADABLE"]

PLANS_KEPT = 20_000       # (workspace, rule, revision) plans kept, least recently used out
PLAN_BYTES_KEPT = 64 * 1024 * 1024   # ... and no more than about this many bytes of them
THREAD_AFTER = 32         # plans to make in one read past which they are made in a thread
THREAD_BYTES = 256 * 1024  # ... or revision bytes to parse past which (a rule body is up to 1 MiB)
ENTRY_BYTES = 250         # about what one expanded entry adds to a page (runs' PAGE_BYTES)
UNREADABLE = "this run's rule entries are stored in a form this version cannot read back"

log = logging.getLogger("deskflow.store")

Key = tuple[str, str, Any]
_plans: OrderedDict[Key, RecordPlan | None] = OrderedDict()


class _Kept:
    bytes = 0   # about what the kept plans hold (_weight)


_kept = _Kept()


def _weight(plan: RecordPlan | None) -> int:
    """About the bytes a kept plan holds: a few hundred, and its conditions' values (a value is
    bounded by the rule body's 1 MiB only: PLANS_KEPT plans of one could hold 20 GB)."""
    return 500 if plan is None else 500 + 12 * plan.value_bytes


def entries_weight(run: dict[str, Any]) -> int:
    """About the bytes a record's packed `rules` add once expanded (0 for entries stored whole):
    a page of runs is bounded by what it answers, not by the packed bytes it read."""
    packed = packed_rules(run.get("rules"))
    ids = packed.get("ids") if packed is not None else None
    return ENTRY_BYTES * len(ids) if type(ids) is list else 0


def _make(rules: dict[Key, Any]) -> dict[Key, RecordPlan | None]:
    out: dict[Key, RecordPlan | None] = {}
    for key, rule in rules.items():
        try:
            out[key] = rule_plan(rule) if type(rule) is dict else None
        except Exception:   # a revision this version cannot read: its entries say so
            out[key] = None
    return out


def _rules_of(docs: dict[Key, Any]) -> dict[Key, Any]:
    """Each revision record's rule (None for one that is missing or not a record)."""
    got: dict[Key, Any] = {}
    for key, raw in docs.items():
        doc = _loads(raw)
        got[key] = doc.get("rule") if type(doc) is dict else None
    return got


def _loads(raw: Any) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


async def _plans_for(store: Store, workspace: str, keys: set[Key]) -> dict[Key, RecordPlan | None]:
    found: dict[Key, RecordPlan | None] = {}
    missing: list[Key] = []
    for key in keys:
        if key in _plans:
            _plans.move_to_end(key)
            found[key] = _plans[key]
        else:
            missing.append(key)
    if missing:
        async with store.redis.pipeline(transaction=False) as p:
            for _, rid, rev in missing:
                p.hget(K.revisions(workspace, "rule", rid), str(rev))
            raws = await p.execute()
        docs = dict(zip(missing, raws, strict=True))
        # a revision is up to a 1 MiB rule body: many of them are parsed in a thread too
        big = len(missing) > THREAD_AFTER or sum(len(r or b"") for r in raws) > THREAD_BYTES
        got = await asyncio.to_thread(_rules_of, docs) if big else _rules_of(docs)
        # A rule stored without revisions (older versions, catalog.put_rule) counts as revision
        # 1, as the rule cache says (server/rulecache.py): its stored definition is that one.
        bare = [key for key, rule in got.items() if rule is None]
        if bare:
            current = await store.redis.hmget(K.rules(workspace), [rid for _, rid, _ in bare])
            for key, raw in zip(bare, current, strict=True):
                rule = _loads(raw)
                if type(rule) is dict and rule.get("revision", 1) == key[2]:
                    got[key] = rule
        made = await asyncio.to_thread(_make, got) if big else _make(got)
        for key, plan in made.items():
            if key in _plans:
                _kept.bytes -= _weight(_plans[key])
            _plans[key] = plan
            _kept.bytes += _weight(plan)
            found[key] = plan
        while len(_plans) > PLANS_KEPT or (_kept.bytes > PLAN_BYTES_KEPT and len(_plans) > 1):
            _, out = _plans.popitem(last=False)
            _kept.bytes -= _weight(out)
    return found


async def expand_runs(store: Store, workspace: str, runs: list[dict[str, Any]]) -> int:
    """Each record's packed `rules` replaced, in place, by its entries (others are left); returns
    about the bytes the entries add to the records' stored size (ENTRY_BYTES an entry, and its
    rule's largest condition value: a value has no bound but the rule body's 1 MiB, so 20 rules
    of a 50 KB value made each run answer ~1 MB, 40 of them in one page)."""
    packs = [(run, p) for run in runs if (p := packed_rules(run.get("rules"))) is not None]
    if not packs:
        return 0
    added = 0
    keys = {(workspace, str(rid), rev) for _, p in packs for rid, rev in _positions(p) if type(rev) is int}
    plans = await _plans_for(store, workspace, keys)
    for run, p in packs:
        ids, revs = p.get("ids"), p.get("revs")

        def plan_at(i: int, ids: Any = ids, revs: Any = revs) -> tuple[RecordPlan, int] | None:
            rev = revs[i]
            plan = plans.get((workspace, str(ids[i]), rev)) if type(rev) is int else None
            return (plan, 0) if plan is not None else None

        try:
            run["rules"] = unpack(p, plan_at)
        except Exception:   # a record this version cannot read (hand-changed, or corrupted)
            log.warning("run %s of workspace %s: its stored rules cannot be read back", run.get("id"), workspace)
            run["rules"] = []
            run["notes"] = [*(run["notes"] if type(run.get("notes")) is list else []), UNREADABLE]
            continue
        for i in range(len(run["rules"])):   # (one entry per position)
            plan = plan_at(i)
            added += ENTRY_BYTES + (plan[0].value_bytes if plan is not None else 0)
    return added


def _positions(packed: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(rule id, revision) per position of a packed record; none when its lists disagree (its
    read says so, unpack)."""
    ids, revs = packed.get("ids"), packed.get("revs")
    if type(ids) is not list or type(revs) is not list or len(ids) != len(revs):
        return []
    return list(zip(ids, revs, strict=True))
