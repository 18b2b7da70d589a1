"""Companies: the stored records, their indexes, and the apply commit's company writes.

Layout (keys.py): keys.company(W, C) holds the record as JSON; keys.companies_by_id(W) and
keys.group_members(W, "company", G) are the listing indexes. Companies are new with these
indexes, so every write path keeps them (the commit below, set_company_groups) and no backfill is
ever needed.

Why the commit checks the company only when it writes it: most events of a company's tickets do
not change the company, and checking it on every commit would make every two concurrent events of
one company's tickets conflict. When the pass changes the record (a field, a group, a new company)
the commit checks it still holds what was loaded (`SAME`, store/tickets.py) so a concurrent event
or PUT /v1/companies/{id}/groups is never overwritten; a pass that only read it ran on the
company as it was at load, like a rule saved during the pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from server import companies
from server.automation import Outcome, Snapshot
from server.store import keys as K
from server.store.replies import json_or_none
from server.store.connect import Store
from server.store.context_writes import group_index_writes, set_record_groups
from server.store.directory import indexed_page
from server.store.encoding import dumps as _dumps
from server.store.errors import guarded

__all__ = ["get_company", "list_companies", "set_company_groups", "company_writes",
           "for_tickets", "overlay_company"]

Write = tuple[Any, ...]


def _sha(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return hashlib.sha1(raw.encode() if isinstance(raw, str) else raw).hexdigest()


@guarded
async def get_company(store: Store, workspace: str, company_id: str) -> dict[str, Any] | None:
    return json_or_none(await store.redis.get(K.company(workspace, company_id)))


@guarded
async def list_companies(store: Store, workspace: str, group: str | None, limit: int,
                         offset: int) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the group's companies (every company when `group` is None) by id, and the next
    offset (None: the last page). One ZRANGE of limit + 1 ids and one MGET."""
    key = (K.group_members(workspace, "company", group) if group is not None
           else K.companies_by_id(workspace))
    return await indexed_page(store, key, lambda c: K.company(workspace, c), offset, limit)


@guarded
async def set_company_groups(store: Store, workspace: str, company_id: str,
                             groups: list[str]) -> dict[str, Any]:
    """Set a company's groups (creating the record if no event named it yet), with its indexes,
    in one MULTI/EXEC watched on the record (a concurrent commit writing it makes us read again)."""
    blank: dict[str, Any] = {"id": company_id, "name": None, "domain": None, "groups": [],
                             "custom": {}}
    return await set_record_groups(
        store, workspace, "company", company_id, K.company(workspace, company_id), groups, blank,
        lambda p: p.zadd(K.companies_by_id(workspace), {company_id: 0}))


def company_writes(workspace: str, snapshot: Snapshot, outcome: Outcome) -> list[Write]:
    """The commit's writes for the ticket's company: none when the pass left it as loaded; else
    a `SAME` check of the loaded record, its SET and its index changes."""
    after = companies.company_record(outcome.ticket)
    if after is None:
        return []
    loaded = snapshot.company if (snapshot.company or {}).get("id") == after["id"] else None
    if loaded is not None and companies.company_record({"contact": {"company": loaded}}) == after:
        return []
    key = K.company(workspace, after["id"])
    raw = snapshot.raw_company if loaded is not None else None
    out: list[Write] = [("SAME", key, _sha(raw)), ("SET", key, _dumps(after))]
    out += group_index_writes(workspace, "company", after["id"],
                              (loaded or {}).get("groups"), after["groups"])
    if loaded is None:
        out.append(("ZADD", K.companies_by_id(workspace), 0, after["id"]))
    return out


async def for_tickets(store: Store, workspace: str,
                      tickets: list[dict[str, Any]]) -> Mapping[str, dict[str, Any]]:
    """The stored companies of the tickets' contacts (one MGET), by id."""
    ids = sorted({c["id"] for t in tickets if (c := companies.company_record(t)) is not None})
    if not ids:
        return {}
    raws = await store.redis.mget([K.company(workspace, c) for c in ids])
    return {c: orjson.loads(r) for c, r in zip(ids, raws, strict=True) if r}


def overlay_company(ticket: dict[str, Any],
                    stored: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Show the company's current groups (PUT /v1/companies/{id}/groups may change them after
    the ticket's last event)."""
    company = companies.company_record(ticket)
    current = stored.get(company["id"]) if company else None
    if current is None:
        return ticket
    contact = ticket["contact"]
    return {**ticket, "contact": {**contact, "company": {
        **contact["company"], "groups": list(current.get("groups") or [])}}}
