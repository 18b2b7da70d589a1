"""Reading tickets from the mirror: one ticket, or a filtered page in creation order, each shown
with its contact's and company's current groups. Apart from store/tickets.py (the load and commit
around an event's pass), which re-exports these for its callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from server.companies import company_groups
from server.store import keys as K
from server.store.companies import for_tickets as companies_for, overlay_company
from server.store.connect import Store
from server.store.errors import guarded
from server.store.replies import scored

__all__ = ["get_ticket", "list_tickets", "overlay_contact"]


def overlay_contact(ticket: dict[str, Any], contact: dict[str, Any] | None) -> dict[str, Any]:
    """Show the contact's current groups (membership may change after the ticket's last event)."""
    c = ticket.get("contact")
    if contact and isinstance(c, dict) and c.get("id") == contact.get("id"):
        ticket = {**ticket, "contact": {**c, "groups": list(contact.get("groups") or [])}}
    return ticket


async def _contacts(store: Store, workspace: str, tickets: list[dict[str, Any]]) -> Mapping[object, Any]:
    ids = sorted({c for t in tickets if isinstance(c := (t.get("contact") or {}).get("id"), str)})
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
    ticket = overlay_company(ticket, await companies_for(store, workspace, [ticket]))
    return overlay_contact(ticket, contacts.get((ticket.get("contact") or {}).get("id")))


def _matches(ticket: dict[str, Any], status: str | None, tag: str | None, group: str | None,
             sla_policy: str | None = None) -> bool:
    if status is not None and ticket.get("status") != status:
        return False
    if sla_policy is not None and (ticket.get("sla") or {}).get("policy") != sla_policy:
        return False
    if tag is not None and tag.casefold() not in {t.casefold() for t in ticket.get("tags") or []}:
        return False
    if group is not None:
        groups = [*((ticket.get("contact") or {}).get("groups") or []),
                  *company_groups(ticket)]   # the contact's company's groups too
        if group.casefold() not in {g.casefold() for g in groups}:
            return False
    return True


@guarded
async def list_tickets(store: Store, workspace: str, *, status: str | None = None,
                       tag: str | None = None, group: str | None = None,
                       sla_policy: str | None = None, limit: int = 50, after_seq: int = 0) -> tuple[list[dict[str, Any]], int | None]:
    """Tickets in creation order, filtered; returns (items, cursor seq for the next page).

    Filters are applied while scanning the creation index in chunks (no secondary indexes yet:
    O(tickets scanned) per page, fine for a help desk's mirror, documented in the README)."""
    items: list[dict[str, Any]] = []
    cursor = after_seq
    chunk = max(limit * 2, 100)
    while True:
        rows = scored(await store.redis.zrangebyscore(K.tickets(workspace), f"({cursor}", "+inf",
                                                      start=0, num=chunk, withscores=True))
        if not rows:
            return items, None
        raws = await store.redis.mget([K.ticket(workspace, tid) for tid, _ in rows])
        tickets = [orjson.loads(r) for r in raws if r]
        contacts = await _contacts(store, workspace, tickets)
        stored_companies = await companies_for(store, workspace, tickets)
        by_id = {t["id"]: t for t in tickets}
        for tid, score in rows:
            cursor = int(score)
            t = by_id.get(tid)
            if t is None:
                continue
            t = overlay_contact(overlay_company(t, stored_companies),
                                contacts.get((t.get("contact") or {}).get("id")))
            if _matches(t, status, tag, group, sla_policy):
                items.append(t)
                if len(items) == limit:
                    more = await store.redis.zcount(K.tickets(workspace), f"({cursor}", "+inf")
                    return items, (cursor if more else None)
        if len(rows) < chunk:
            return items, None
