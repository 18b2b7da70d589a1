"""POST /v1/rules/backtest: a rule checked against the workspace's last processed events.

The checking half (rebuild, check, conflicts) is server/backtest_check.py, run in a backtest
process; this module validates, reads and answers.

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
`"truncated": true`; the parsing, rebuilding and checking run in a backtest process
(server/backtest_proc.py: a small pool, lower CPU priority, killed when it does not answer
GRACE_S past the deadline -- the answer is then the last tally it sent, truncated), so this
process only reads and passes messages; one backtest at a time per workspace and at most
MAX_CONCURRENT per process (else 429 backtest_busy with Retry-After). `hits` and `conflicts` are capped at MAX_HITS and
MAX_CONFLICTS entries (their totals are counted in full).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from starlette.responses import Response
from starlette.routing import Route

from server.api.common import Ctx, json_response, problem, read_object, requires
from server.api.rule_checks import check_calendars, problems_of
from server.api.rules import definition
from server.errors import ApiError, Unprocessable
from server.store import keys as K
from server.store.errors import guarded
from server.backtest_check import (MAX_CONFLICTS, MAX_HITS, Tally, conflicts_between,
                                   undo_changes)
from server.backtest_proc import BacktestProcessError, Job
from server.store.replies import texts

__all__ = ["routes", "MAX_LIMIT", "DEFAULT_LIMIT", "CHUNK", "TIME_BUDGET_S", "MAX_HITS",
           "MAX_CONFLICTS", "MAX_CONCURRENT", "undo_changes", "conflicts_between"]

MAX_LIMIT = 1000         # events a backtest may check (limit MAX_LIMIT)
DEFAULT_LIMIT = 500
CHUNK = 50               # run records read and checked at a time
TIME_BUDGET_S = 5.0      # wall time of the checking; past it the answer is truncated
READ_PAUSE = 1.0         # after each chunk's reads, a pause of this many times their length
MAX_CONCURRENT = 4       # backtests running at once in one process (one per workspace)
# Why 4, not 2: at 2, two workspaces backtesting back to back kept every other workspace's
# backtest refused (429). 4 workspaces of 1,000 events backtesting at once, quiet 2-core machine
# (bench/backtest_bench.py --attackers 4): another workspace's p99 6.0-11.0 ms against 2.7-4.3
# quiet, and 5.3-8.3 ms with the cap at 2 (bench/RESULTS.md); each is a process of ~70 MB.

log = logging.getLogger("deskflow.backtest")

_RUNNING: set[str] = set()  # workspaces with a backtest running in this process (one event loop)


class TooBusy(ApiError):
    status, code = 429, "backtest_busy"


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
    calendars = await check_calendars(ctx, body.rule)   # compiled in the backtest process
    problems = await problems_of(ctx, body.rule, "rule")
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
    """Reads here, checking in a backtest process (server/backtest_proc.py): per chunk, the run
    records go there raw and are parsed there; what rebuilding them needs is read here and sent
    after them; the process checks them and answers the tally so far."""
    from server.store import catalog

    started = time.monotonic()
    budget = TIME_BUDGET_S
    conditions = body.rule.get("conditions")
    needs_message = _uses(conditions, lambda n: str(n.get("field", "")).startswith("message."))
    needs_previous = _uses(conditions, lambda n: str(n.get("op", "")).startswith("changed"))
    ids = texts(await _ids(ctx, body.limit))
    live = {r["id"]: r for r in await catalog.listed_rules(ctx.store, ctx.workspace)}   # (kept; read only)
    fired_defs: dict[tuple[str, int | None], dict[str, Any]] = {}
    tally: dict[str, Any] = Tally().as_dict()
    job = await Job.start(body.rule, body.replaces, calendars, budget)
    try:
        for start in range(0, len(ids), CHUNK):
            if time.monotonic() > job.deadline:
                tally["truncated"] = True
                break
            t0 = time.monotonic()
            raws = await _mget_runs(ctx, ids[start:start + CHUNK])
            t1 = time.monotonic()
            runs = await job.parse(raws)
            sent = set(fired_defs)
            t2 = time.monotonic()
            reads = await _reads(ctx, runs, needs_message, needs_previous, live, fired_defs)
            spent = (t1 - t0) + (time.monotonic() - t2)
            tally = await job.check(reads, {k: v for k, v in fired_defs.items() if k not in sent})
            if tally["truncated"]:
                break
            # the reads are this process's share of the work (on the embedded store, the store
            # itself runs here): pause as long again, so a backtest takes at most half of it
            await asyncio.sleep(min(spent * READ_PAUSE, max(0.0, job.deadline - time.monotonic())))
    except BacktestProcessError as exc:
        log.warning("backtest of workspace %s stopped: %s", ctx.workspace, exc)
        tally = dict(job.tally or tally, truncated=True)
    finally:
        job.finish()
    return {"checked": tally["checked"], "fired": tally["fired"], "hits": tally["hits"],
            "hits_total": tally["fired"], "conflicts": tally["conflicts"],
            "conflicts_total": tally["conflicts_total"], "events": len(ids),
            "skipped": tally["skipped"], "approximate": tally["approximate"],
            "truncated": tally["truncated"],
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
