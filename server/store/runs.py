"""Run records (written by tickets.commit, expiring after Settings.run_ttl_s) and the updates
feed: reads. A run list may name a run that has expired; reads skip it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from server.runrecord import packed_rules
from server.store import keys as K
from server.store.replies import entries, texts
from server.store.run_rules import entries_weight, expand_runs
from server.store.connect import Store
from server.store.errors import guarded

__all__ = ["get_run", "list_ticket_runs", "list_rule_runs", "list_recent_runs", "outcomes",
           "read_feed", "OUTCOMES", "SCAN_CHUNK", "FIRST_CHUNK", "PAGE_BYTES"]

OUTCOMES = ("fired", "errored", "suppressed")
PAGE_BYTES = 256 * 1024    # run record bytes one page reads, about (then `next` goes on)
FIRST_CHUNK = 2            # run ids in a page's first MGET: records are up to 256 KiB each
SCAN_CHUNK = 32            # ... and at most in any later one, sized by the records seen so far


@guarded
async def get_run(store: Store, workspace: str, run_id: str, *, rules: bool = True) -> dict[str, Any] | None:
    """One run record; with `rules=False` its `rules` are left as stored (packed): for a reader
    that answers only the run's outcome (`?wait=true`), which need not read the rules' revisions."""
    raw = await store.redis.get(K.run(workspace, run_id))
    if not raw:
        return None
    run: dict[str, Any] = orjson.loads(raw)
    if rules:
        await expand_runs(store, workspace, [run])
    return run


@guarded
async def list_ticket_runs(store: Store, workspace: str, ticket_id: str, *, offset: int,
                           limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """Runs of a ticket, newest first."""
    return await _runs_of(store, workspace, K.ticket_runs(workspace, ticket_id), offset, limit)


@guarded
async def list_rule_runs(store: Store, workspace: str, rule_id: str, *, offset: int,
                         limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """Runs in which a rule fired, newest first."""
    return await _runs_of(store, workspace, K.rule_runs(workspace, rule_id), offset, limit)


async def _runs_of(store: Store, workspace: str, key: str, offset: int,
                   limit: int) -> tuple[list[dict[str, Any]], int | None]:
    return await _scan(store, workspace, key, offset, limit, None)


async def _scan(store: Store, workspace: str, key: str, offset: int, limit: int,
                keep: Callable[[dict[str, Any]], bool] | None) -> tuple[list[dict[str, Any]], int | None]:
    """Up to `limit` runs of the list from `offset` that `keep` (None: every run), and the position to go on from
    (None: the list ended). Why bounded by bytes as well: a run record is up to 256 KiB and the
    workspace list holds 2,000, so a rare filter (or a page of 500) read and parsed up to 500 MiB
    on the event loop every request shares (tests/server/test_attack_runs.py). A page stops once
    it has read PAGE_BYTES (a packed record counting what its entries add once expanded,
    store/run_rules.py); each MGET asks for as many records as the bytes left allow at the
    size seen so far, so one reply stays near the budget too. The runs a page keeps are expanded
    chunk by chunk and counted at what their entries add (their rules' values included: those
    are the rules' own, of any size); the others at ~250 bytes an entry."""
    items: list[dict[str, Any]] = []
    pos, read, seen, chunk = offset, 0, 0, FIRST_CHUNK
    while len(items) < limit and read < PAGE_BYTES:
        want = chunk if keep is not None else min(chunk, limit - len(items))
        ids = texts(await store.redis.lrange(key, pos, pos + want - 1))
        if not ids:
            return items, None
        raws = await store.redis.mget([K.run(workspace, r) for r in ids])
        kept: list[dict[str, Any]] = []
        for i, raw in enumerate(raws):
            if raw:
                run = orjson.loads(raw)
                seen += 1
                if keep is None or keep(run):
                    read += len(raw)
                    kept.append(run)
                    if len(items) + len(kept) == limit:
                        pos += i + 1
                        break
                else:
                    read += len(raw) + entries_weight(run)
        else:
            pos += len(ids)
        read += await expand_runs(store, workspace, kept)   # (what they answer once expanded)
        items += kept
        chunk = max(1, min(SCAN_CHUNK, (PAGE_BYTES - read) * seen // max(read, 1))) if seen \
            else SCAN_CHUNK   # only expired ids so far: nothing was read
    more = await store.redis.lrange(key, pos, pos)
    return items, (pos if more else None)


def outcomes(run: dict[str, Any]) -> set[str]:
    """Which of OUTCOMES a run record shows: a rule fired (`matched`), something erred (the run,
    a rule or a script), an effect was suppressed."""
    found = set()
    if run.get("matched"):
        found.add("fired")
    packed = packed_rules(run.get("rules"))
    full = packed.get("full") if packed is not None else None
    shown = ([e[1] for e in full if type(e) is list and len(e) == 2] if type(full) is list
             else [] if packed is not None else run.get("rules") or [])
    if (run.get("error") or any(type(r) is dict and r.get("errors") for r in shown)
            or any(sc.get("error") for sc in run.get("scripts") or [])):
        found.add("errored")
    if run.get("suppressed"):
        found.add("suppressed")
    return found


@guarded
async def list_recent_runs(store: Store, workspace: str, *, rule_id: str | None,
                           ticket_id: str | None, outcome: str | None, offset: int,
                           limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """The workspace's runs, newest first, filtered. The source list is the narrowest one the
    filters name (the ticket's 200, the rule's 200, or the workspace's runs_per_workspace), and a
    page reads that list until it has `limit` matches, the list ends, or it has read about
    PAGE_BYTES of records (`_scan`); `next` goes on from where it stopped, so a page may hold
    fewer than `limit` items and still have a `next`."""
    if ticket_id is not None:
        key = K.ticket_runs(workspace, ticket_id)
    elif rule_id is not None:
        key = K.rule_runs(workspace, rule_id)
    else:
        key = K.workspace_runs(workspace)

    def keep(run: dict[str, Any]) -> bool:
        if rule_id is not None and rule_id not in [str(m) for m in run.get("matched") or []]:
            return False
        return outcome is None or outcome in outcomes(run)

    return await _scan(store, workspace, key, offset, limit, keep)


@guarded
async def read_feed(store: Store, workspace: str, *, after: str | None,
                    limit: int) -> list[dict[str, Any]]:
    """Feed entries oldest first, strictly after the cursor (a stream id)."""
    start = f"({after}" if after else "-"
    rows = entries(await store.redis.xrange(K.feed(workspace), min=start, max="+", count=limit))
    return [{"cursor": entry_id, **orjson.loads(fields["d"])} for entry_id, fields in rows]
