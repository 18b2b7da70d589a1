"""The ticket mirror and the one transaction that applies an event.

`apply_event` WATCHes the event's marker, the ticket, the contact and the rules revision, calls the pure `compute` step, then writes in ONE MULTI/EXEC (all in slot {ws:W}):
ticket (version + 1), processed marker, run record, ticket's run list, updates-feed entry, contact
record and listing index. A worker that dies before EXEC leaves nothing; one that dies after EXEC
but before XACK leaves a pending entry whose marker already says "processed", so the redelivery is
skipped: each event is applied exactly once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import WatchError

from server.store import keys as K
from server.store.connect import Store
from server.store.errors import guarded
from server.store.events import owns

__all__ = ["Applied", "apply_event", "get_ticket", "list_tickets", "overlay_contact"]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass
class Applied:
    """What apply_event did: `skipped` (already processed / not the event's copy) or the run."""

    skipped: bool
    marker: dict[str, Any] | None
    run: dict[str, Any] | None = None


# compute(previous ticket | None, stored contact | None, rules revision) -> (ticket after,
#   contact after | None, run record without ids, whether it goes to the feed)
Compute = Callable[[dict[str, Any] | None, dict[str, Any] | None, int],
                   Awaitable[tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any], bool]]]


@guarded
async def apply_event(store: Store, workspace: str, partition: int, entry: str,
                      fields: dict[str, str], event: dict[str, Any], run_id: str,
                      compute: Compute) -> Applied:
    ticket_id = event["ticket"]["id"]
    mk, tk = K.event_marker(workspace, event["id"]), K.ticket(workspace, ticket_id)
    s = store.settings
    seq: int | None = None
    async with store.redis.pipeline(transaction=True) as p:
        while True:
            try:
                # One WATCH and one MGET for marker, ticket, contact (when the event names it)
                # and the rules revision: the whole read side in two round trips.
                event_contact = (event["ticket"].get("contact") or {}).get("id")
                keys = [mk, tk, K.rules_rev(workspace)]
                if event_contact:
                    keys.append(K.contact(workspace, event_contact))
                await p.watch(*keys)
                raws = await p.mget(keys)
                marker = orjson.loads(raws[0]) if raws[0] else None
                if marker and (not owns(marker, entry, fields)
                               or marker.get("status") == "processed"):
                    return Applied(skipped=True, marker=marker)
                previous = orjson.loads(raws[1]) if raws[1] else None
                rules_rev = int(raws[2] or 0)
                contact = orjson.loads(raws[3]) if event_contact and raws[3] else None
                contact_id = event_contact or ((previous or {}).get("contact") or {}).get("id")
                if contact_id and not event_contact:
                    await p.watch(K.contact(workspace, contact_id))
                    raw_c = await p.get(K.contact(workspace, contact_id))
                    contact = orjson.loads(raw_c) if raw_c else None
                if previous is None and seq is None:
                    # INCR outside the transaction: a failed attempt leaves a gap in the
                    # sequence, which is harmless; watching the counter would make every new
                    # ticket conflict with every other one.
                    seq = int(await store.redis.incr(K.tickets_seq(workspace)))
                ticket, new_contact, run, to_feed = await compute(previous, contact, rules_rev)
                ticket["version"] = int((previous or {}).get("version", 0)) + 1
                run["ticket"] = ticket
                done = {"entry": entry, "token": fields.get("k"), "partition": partition,
                        "ticket": ticket_id,
                        "status": "processed", "run_id": run_id, "at": run["at"]}
                p.multi()
                p.set(tk, _dumps(ticket))
                p.set(mk, _dumps(done), ex=s.event_ttl_s)
                p.set(K.run(workspace, run_id), _dumps(run))
                p.lpush(K.ticket_runs(workspace, ticket_id), run_id)
                p.ltrim(K.ticket_runs(workspace, ticket_id), 0, s.runs_per_ticket - 1)
                hour = fire_hour(run["at"])
                for rule_id in run.get("matched") or []:
                    p.lpush(K.rule_runs(workspace, rule_id), run_id)
                    p.ltrim(K.rule_runs(workspace, rule_id), 0, s.runs_per_ticket - 1)
                    p.hincrby(K.rule_stats(workspace, rule_id), f"h:{hour}", 1)
                    p.hset(K.rule_stats(workspace, rule_id), "last", run["at"])
                    p.hdel(K.rule_stats(workspace, rule_id), f"h:{hour - 31 * 24}")
                for entry in run.get("rules") or []:   # usage.last_error: only rules that erred
                    if entry.get("errors") and entry.get("id") is not None:
                        p.hset(K.rule_stats(workspace, entry["id"]), "error", _dumps(
                            {"at": run["at"], "message": str(entry["errors"][-1])[:500]}))
                if previous is None and seq is not None:
                    p.zadd(K.tickets(workspace), {ticket_id: seq}, nx=True)
                if new_contact is not None and new_contact != contact:
                    p.set(K.contact(workspace, new_contact["id"]), _dumps(new_contact))
                if new_contact is not None:
                    p.sadd(K.contact_tickets(workspace, new_contact["id"]), ticket_id)
                if to_feed:
                    entry_body = {"ticket_id": ticket_id, "event_id": event["id"], "run_id": run_id,
                                  "changes": run["changes"], "effects": run["effects"],
                                  "at": run["at"]}
                    p.xadd(K.feed(workspace), {"d": _dumps(entry_body)},
                           maxlen=s.feed_maxlen, approximate=True)
                await p.execute()
                return Applied(skipped=False, marker=done, run=run)
            except WatchError:
                continue


def overlay_contact(ticket: dict[str, Any], contact: dict[str, Any] | None) -> dict[str, Any]:
    """Show the contact's current groups (membership may change after the ticket's last event)."""
    c = ticket.get("contact")
    if contact and isinstance(c, dict) and c.get("id") == contact.get("id"):
        ticket = {**ticket, "contact": {**c, "groups": list(contact.get("groups") or [])}}
    return ticket


async def _contacts(store: Store, workspace: str, tickets: list[dict[str, Any]]) -> dict[str, Any]:
    ids = sorted({(t.get("contact") or {}).get("id") for t in tickets} - {None})
    if not ids:
        return {}
    raws = await store.redis.mget([K.contact(workspace, c) for c in ids])
    return {c: orjson.loads(r) for c, r in zip(ids, raws, strict=True) if r}


@guarded
async def get_ticket(store: Store, workspace: str, ticket_id: str) -> dict[str, Any] | None:
    raw = await store.redis.get(K.ticket(workspace, ticket_id))
    if not raw:
        return None
    ticket = orjson.loads(raw)
    contacts = await _contacts(store, workspace, [ticket])
    return overlay_contact(ticket, contacts.get((ticket.get("contact") or {}).get("id")))


def _matches(ticket: dict[str, Any], status: str | None, tag: str | None, group: str | None) -> bool:
    if status is not None and ticket.get("status") != status:
        return False
    if tag is not None and tag.casefold() not in {t.casefold() for t in ticket.get("tags") or []}:
        return False
    if group is not None:
        groups = (ticket.get("contact") or {}).get("groups") or []
        if group.casefold() not in {g.casefold() for g in groups}:
            return False
    return True


@guarded
async def list_tickets(store: Store, workspace: str, *, status: str | None = None,
                       tag: str | None = None, group: str | None = None, limit: int = 50,
                       after_seq: int = 0) -> tuple[list[dict[str, Any]], int | None]:
    """Tickets in creation order, filtered; returns (items, cursor seq for the next page).

    Filters are applied while scanning the creation index in chunks (no secondary indexes yet:
    O(tickets scanned) per page, fine for a help desk's mirror, documented in the README)."""
    items: list[dict[str, Any]] = []
    cursor = after_seq
    chunk = max(limit * 2, 100)
    while True:
        rows = await store.redis.zrangebyscore(K.tickets(workspace), f"({cursor}", "+inf",
                                               start=0, num=chunk, withscores=True)
        if not rows:
            return items, None
        raws = await store.redis.mget([K.ticket(workspace, tid) for tid, _ in rows])
        tickets = [orjson.loads(r) for r in raws if r]
        contacts = await _contacts(store, workspace, tickets)
        by_id = {t["id"]: t for t in tickets}
        for tid, score in rows:
            cursor = int(score)
            t = by_id.get(tid)
            if t is None:
                continue
            t = overlay_contact(t, contacts.get((t.get("contact") or {}).get("id")))
            if _matches(t, status, tag, group):
                items.append(t)
                if len(items) == limit:
                    more = await store.redis.zcount(K.tickets(workspace), f"({cursor}", "+inf")
                    return items, (cursor if more else None)
        if len(rows) < chunk:
            return items, None


def fire_hour(at: str) -> int:
    """Whole hours since the epoch of an RFC 3339 time (the per-rule fire counters' bucket)."""
    from server.automation import parse_time

    when = parse_time(at)
    return int(when.timestamp() // 3600) if when else 0
