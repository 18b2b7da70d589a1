"""What ctx.history and ctx.customer hold for one pass, read only when a script needs them.

Why here and not in store/tickets.load: most passes run no script, and most scripts read neither,
so the load stays as it is and a pass whose rules run a script pays one HMGET of the scripts'
stored `uses` (server/history.py); only when one of them names ctx.history or ctx.customer does a
second read (one pipeline, plus an MGET of at most 10 tickets for the customer's recent tickets)
fetch them. The sandbox never does I/O for them: they travel in the run's frame as plain data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from server import companies, customers, history
from server.automation import Snapshot, merge_event
from server.store import keys as K
from server.store.connect import Store
from server.store.errors import guarded
from server.store.replies import texts

__all__ = ["RECENT_SHOWN", "TEXT_BYTES", "script_uses", "load_context"]

RECENT_SHOWN = 10   # ctx.customer["recent"]: the contact's newest tickets
TEXT_BYTES = 512    # a subject, email or name in ctx.customer (UTF-8), cut with " …[truncated]"


@guarded
async def script_uses(store: Store, workspace: str, names: list[str]) -> set[str]:
    """The ctx attributes (history, customer) any version of the named scripts uses."""
    if not names:
        return set()
    raws = await store.redis.hmget(K.scripts(workspace), names)
    out: set[str] = set()
    for raw in raws:
        if raw:
            meta = orjson.loads(raw)
            if "uses" not in meta:   # stored before `uses` existed: it may use either, so load both
                out.update(history.USES)
            else:
                out.update(u for u in meta["uses"] or [] if u in history.USES)
    return out


def _summary(ticket: dict[str, Any]) -> dict[str, Any]:
    """A recent ticket as ctx.customer shows it. Why the subject is cut: it is as long as an
    event allows (~1 MiB), and ten of them made one pass's ctx.customer 9 MB, encoded into the
    run's frame on the shared loop (tests/server/test_attack_script_context.py)."""
    out = {k: ticket.get(k) for k in ("id", "subject", "status", "created_at")}
    out["subject"] = history.cut(out["subject"], TEXT_BYTES)
    return out


@guarded
async def load_context(store: Store, workspace: str, snapshot: Snapshot, event: dict[str, Any],
                       ruleset: Any, now: datetime) -> dict[str, Any] | None:
    """{"history": [...], "customer": {...} | None} as far as the pass's scripts use them, or
    None when none of them does (nothing is read but the scripts' `uses`)."""
    uses = await script_uses(store, workspace, history.script_names(ruleset))
    if not uses:
        return None
    ticket_id = event["ticket"]["id"]
    merged = merge_event(snapshot.previous, event, snapshot.contact, snapshot.company)
    customers.count_message(merged, event)
    cid = customers.contact_id(merged)
    async with store.redis.pipeline(transaction=False) as p:
        if "history" in uses:
            p.lrange(K.ticket_history(workspace, ticket_id), -history.MAX_ENTRIES, -1)
        if "customer" in uses and cid:
            p.zrevrange(K.contact_recent(workspace, cid), 0, RECENT_SHOWN - 1)
        got = await p.execute()
    out: dict[str, Any] = {}
    if "history" in uses:
        out["history"] = history.bounded(got.pop(0))
    if "customer" in uses:
        out["customer"] = None
        if cid:
            ids = texts(got.pop(0))
            ids = [i for i in ids if i != ticket_id]
            raws = await store.redis.mget([K.ticket(workspace, i) for i in ids]) if ids else []
            recent = [_summary(merged)] + [_summary(orjson.loads(r)) for r in raws if r]
            recent.sort(key=lambda t: str(t.get("created_at") or ""), reverse=True)
            c = merged["contact"]
            out["customer"] = {
                "id": cid, "email": history.cut(c.get("email"), TEXT_BYTES),
                "name": history.cut(c.get("name"), TEXT_BYTES),
                "groups": list(c.get("groups") or []), "custom": dict(c.get("custom") or {}),
                "company": companies.company_record(merged),
                **customers.counts(snapshot.contact_stats, snapshot.previous, merged, now),
                "recent": recent[:RECENT_SHOWN]}
    return out
