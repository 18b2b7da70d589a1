"""POST /v1/rules/backtest: a rule checked against the workspace's last processed events.

What it reads (nothing here is stored for the backtest; it uses what a run already leaves):

* the workspace's run list (keys.workspace_runs, newest first) and each run record: the event's
  id, type and time, the ticket as automation left it (`ticket`), the `changes` automation made,
  which rules fired (`matched`) and at which revision (`rule_revisions`);
* the ticket as the event left it, before any rule ran, is rebuilt from the record: the
  after-ticket with its recorded `changes` undone (scalars back to their old value, added tags
  removed, removed tags put back). A record whose ticket or changes were trimmed (a run record
  over MAX_RUN_RECORD_BYTES, server/runrecord.py) cannot be rebuilt: it is counted in `skipped`;
* only when the rule has a `message.*` condition: the message, from the ticket's history
  (keys.ticket_history, the last 50 events of the ticket; history entries and ticket runs are
  written by the same commit, so the k-th newest run of a ticket is its k-th newest history
  entry, checked by event type). A message the history no longer has reads as missing
  (counted in `approximate`);
* only when the rule has a `changed*` condition: the ticket before the event, from the
  ticket's previous run record (keys.ticket_runs). The first event of a ticket (version 1) has
  none, exactly as when it ran; a previous run that expired or was trimmed is replaced by the
  rebuilt ticket itself (so `changed*` does not hold) and counted in `approximate`.

The rule is checked alone, on the ticket as the event left it (not after the rules before it in
the order), with `now` the time the event was processed. Nothing is applied and no script or HTTP
call runs: `run_script`, `http_request` and `webhook` actions are listed as effects, as in a dry
run.

Conflicts: on each event where the rule would fire, each rule that did fire (at the revision it
fired at) is compared with it: it sets a field the backtested rule sets to another value
(`set`, `close`), adds a tag or group the backtested rule removes, or removes one it adds.

Bounds (tenant input; docs/api.md repeats them): `limit` ≤ MAX_LIMIT events; run records are read
and checked CHUNK at a time (at most 2 × CHUNK records, ≤ 2 × CHUNK × 256 KiB, in memory at once);
checking stops after TIME_BUDGET_S seconds of wall time and answers what it checked with
`"truncated": true`; the checking runs in a thread, off the event loop, between reads that yield
to other requests; one backtest at a time per workspace and at most MAX_CONCURRENT per process
(else 429 backtest_busy with Retry-After). `hits` and `conflicts` are capped at MAX_HITS and
MAX_CONFLICTS entries (their totals are counted in full).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response
from starlette.routing import Route

from server import automation
from server.api.common import Ctx, json_response, problem, read_object, requires
from server.api.rules import definition, rule_problems, workspace_calendars
from server.errors import ApiError, Unprocessable
from server.store import keys as K
from server.store.errors import guarded
from server.store.replies import texts

__all__ = ["routes", "MAX_LIMIT", "DEFAULT_LIMIT", "CHUNK", "TIME_BUDGET_S", "MAX_HITS",
           "MAX_CONFLICTS", "MAX_CONCURRENT", "undo_changes", "conflicts_between"]

MAX_LIMIT = 1000         # events a backtest may check (limit MAX_LIMIT)
DEFAULT_LIMIT = 500
CHUNK = 50               # run records read and checked at a time
TIME_BUDGET_S = 5.0      # wall time of the checking; past it the answer is truncated
MAX_HITS = 100           # hits listed (all are counted in `fired`)
MAX_CONFLICTS = 100      # conflicts listed (all are counted in `conflicts_total`)
MAX_CONCURRENT = 2       # backtests running at once in one process (one per workspace)

_RUNNING: set[str] = set()  # workspaces with a backtest running in this process (one event loop)


class TooBusy(ApiError):
    status, code = 429, "backtest_busy"


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


def _uses(node: Any, test: Any) -> bool:
    if isinstance(node, dict):
        if test(node):
            return True
        return any(_uses(c, test) for k in ("all", "any") for c in node.get(k) or [])
    return False


class _Body:
    def __init__(self, body: dict[str, Any]) -> None:
        rule, limit, replaces = body.get("rule"), body.get("limit", DEFAULT_LIMIT), body.get("rule_id")
        problems = []
        if not isinstance(rule, dict):
            problems.append(problem("rule", "must be an object (a rule's definition)"))
        if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
            problems.append(problem("limit", f"must be a whole number from 1 to {MAX_LIMIT} "
                                             f"(limit MAX_LIMIT)"))
        if replaces is not None and not isinstance(replaces, str):
            problems.append(problem("rule_id", "must be the id of the rule this one would replace"))
        unknown = sorted(set(body) - {"rule", "limit", "rule_id"})
        problems += [problem(k, "is not a backtest parameter (rule, limit, rule_id)") for k in unknown]
        if problems:
            raise Unprocessable("The backtest request is not valid: " + "; ".join(
                f"{p['path']}: {p['reason']}" for p in problems), details=problems)
        assert isinstance(rule, dict)
        self.rule: dict[str, Any] = {**definition(rule), "enabled": True}
        self.rule.setdefault("name", "backtest")
        self.limit: int = limit
        self.replaces: str | None = replaces or (rule.get("id") if isinstance(rule.get("id"), str) else None)


class _Tally:
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


class _Checker:
    """The backtested rule compiled once, checked on rebuilt events (in a thread: pure, no I/O).
    It gives the GIL away between events (a 1 ms sleep) so the event loop, which serves every
    other workspace, waits for at most one event's check instead of a switch interval."""

    def __init__(self, rule: dict[str, Any], replaces: str | None, calendars: Any) -> None:
        from rules.compile import compile_rule
        from rules.ruleset import _calendars

        self.rule, self.replaces = rule, replaces
        self.compiled = compile_rule(rule, 0, _calendars(calendars))

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
              fired_defs: dict[tuple[str, int | None], dict[str, Any]], tally: _Tally,
              deadline: float) -> None:
        for run in runs:
            if time.monotonic() > deadline:
                tally.truncated = True
                return
            time.sleep(0.001)
            item = _rebuild(run, reads, tally)
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
                   tally: _Tally) -> None:
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


def _parse(raws: list[Any], tally: _Tally) -> list[dict[str, Any]]:
    """Run records from their JSON (in the thread); an expired one is counted in `skipped`."""
    runs = []
    for raw in raws:
        if raw:
            runs.append(orjson.loads(raw))
        else:
            tally.skip("expired")
    return runs


def _rebuild(run: dict[str, Any], reads: dict[str, Any], tally: _Tally) -> dict[str, Any] | None:
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
    now = automation.parse_time(run.get("at")) or datetime.now(UTC)
    return {"event": event, "ticket": ticket, "previous": previous, "now": now}


@guarded
async def _reads(ctx: Ctx, runs: list[dict[str, Any]], needs_message: bool, needs_previous: bool,
                 live: dict[str, dict[str, Any]],
                 fired_defs: dict[tuple[str, int | None], dict[str, Any]]) -> dict[str, Any]:
    """What rebuilding one chunk's events needs, read as raw replies (parsed in the thread): the
    tickets' run lists and histories, the previous runs, the fired rules' revisions."""
    r, ws = ctx.store.redis, ctx.workspace
    tickets = sorted({str(run.get("ticket_id")) for run in runs})
    ticket_runs: dict[str, list[str]] = {}
    history: dict[str, list[Any]] = {}
    if tickets and (needs_message or needs_previous):
        async with r.pipeline(transaction=False) as p:
            for t in tickets:
                p.lrange(K.ticket_runs(ws, t), 0, 199)
                if needs_message:
                    p.lrange(K.ticket_history(ws, t), 0, -1)
            got = await p.execute()
        step = 2 if needs_message else 1
        for i, t in enumerate(tickets):
            ticket_runs[t] = texts(got[step * i])
            history[t] = list(got[step * i + 1]) if needs_message else []
    previous_ids: dict[str, str] = {}
    for run in runs:
        ids = ticket_runs.get(str(run.get("ticket_id"))) or []
        if needs_previous and run.get("id") in ids:
            k = ids.index(run["id"])
            if k + 1 < len(ids):
                previous_ids[run["id"]] = ids[k + 1]
    previous_runs: dict[str, Any] = {}
    if previous_ids:
        prev_raw = await r.mget([K.run(ws, i) for i in previous_ids.values()])
        previous_runs = dict(zip(previous_ids, prev_raw, strict=True))
    # the definitions of the rules that fired, at the revision they fired at
    wanted = {(str(rid), (run.get("rule_revisions") or {}).get(str(rid)))
              for run in runs for rid in run.get("matched") or []} - set(fired_defs)
    for rid, n in wanted:
        known = live.get(rid)
        if known is not None and (n is None or known.get("revision") == n):
            fired_defs[(rid, n)] = known
    missing = [w for w in wanted if w not in fired_defs and w[1] is not None][:CHUNK]
    if missing:
        revs = await asyncio.gather(*(r.hget(K.revisions(ws, "rule", rid), str(n)) for rid, n in missing))
        for w, raw in zip(missing, revs, strict=True):
            if raw:
                fired_defs[w] = orjson.loads(raw).get("rule") or {}
    return {"needs_message": needs_message, "needs_previous": needs_previous,
            "ticket_runs": ticket_runs, "history": history, "previous_runs": previous_runs}


@requires("manager")
async def backtest(ctx: Ctx) -> Response:
    """{"rule": {...}, "limit": 500, "rule_id"?: the rule it would replace} -> on how many of the
    workspace's last `limit` processed events the rule would have fired, a page of hits with
    their changes, and conflicts with the rules that did fire. Applies nothing."""
    body = _Body(await read_object(ctx.request))
    calendars = await workspace_calendars(ctx.store, ctx.workspace)
    problems = rule_problems(body.rule, "rule", calendars=calendars)
    if problems:
        raise Unprocessable("The rule is not valid: " + "; ".join(
            f"{p['path']}: {p['reason']}" for p in problems[:5]), details=problems)
    if ctx.workspace in _RUNNING or len(_RUNNING) >= MAX_CONCURRENT:
        raise TooBusy(
            "A backtest is already running" + (" for this workspace" if ctx.workspace in _RUNNING
                                               else f" in {MAX_CONCURRENT} workspaces")
            + f" (limit MAX_CONCURRENT: one per workspace, {MAX_CONCURRENT} per process); try "
            "again in a few seconds.", headers={"Retry-After": "2"},
            details=[problem("", "one backtest at a time per workspace")])
    _RUNNING.add(ctx.workspace)
    try:
        return json_response(await _run(ctx, body, calendars))
    finally:
        _RUNNING.discard(ctx.workspace)


async def _run(ctx: Ctx, body: _Body, calendars: Any) -> dict[str, Any]:
    from server.store import catalog

    started = time.monotonic()
    deadline = started + TIME_BUDGET_S
    conditions = body.rule.get("conditions")
    needs_message = _uses(conditions, lambda n: str(n.get("field", "")).startswith("message."))
    needs_previous = _uses(conditions, lambda n: str(n.get("op", "")).startswith("changed"))
    checker = await asyncio.to_thread(_Checker, body.rule, body.replaces, calendars)
    ids = texts(await _ids(ctx, body.limit))
    live = {r["id"]: r for r in await catalog.list_rules(ctx.store, ctx.workspace)}
    fired_defs: dict[tuple[str, int | None], dict[str, Any]] = {}
    tally = _Tally()
    for start in range(0, len(ids), CHUNK):
        if time.monotonic() > deadline:
            tally.truncated = True
            break
        raws = await _mget_runs(ctx, ids[start:start + CHUNK])
        runs = await asyncio.to_thread(_parse, raws, tally)
        reads = await _reads(ctx, runs, needs_message, needs_previous, live, fired_defs)
        await asyncio.to_thread(checker.check, runs, reads, fired_defs, tally, deadline)
        if tally.truncated:
            break
    return {"checked": tally.checked, "fired": tally.fired, "hits": tally.hits,
            "hits_total": tally.fired, "conflicts": tally.conflicts,
            "conflicts_total": tally.conflicts_total, "events": len(ids),
            "skipped": tally.skipped, "approximate": tally.approximate,
            "truncated": tally.truncated,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
            "limits": {"max_limit": MAX_LIMIT, "time_budget_s": TIME_BUDGET_S,
                       "max_hits": MAX_HITS, "max_conflicts": MAX_CONFLICTS}}


@guarded
async def _mget_runs(ctx: Ctx, run_ids: list[str]) -> list[Any]:
    return list(await ctx.store.redis.mget([K.run(ctx.workspace, i) for i in run_ids]))


@guarded
async def _ids(ctx: Ctx, limit: int) -> list[Any]:
    return list(await ctx.store.redis.lrange(K.workspace_runs(ctx.workspace), 0, limit - 1))


routes = [Route("/v1/rules/backtest", backtest, methods=["POST"])]
