"""The apply commit's writes for issue 19: the ticket's history entry, its contact's counts and
recent-tickets index, the contacts' group indexes, and the ticket's company (store/companies.py).

Why a module of its own: store/tickets.commit stays the check-and-set it is; this only adds plain
commands to its write list, so they go in the same EVAL (or MULTI) and cost no round trip. None
of these keys needs checking: the history is appended once per committed event, the counts are
deltas (server/customers.py), the indexes are set adds and removes decided from the contact the
commit does check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from collections.abc import Callable
from typing import Any

import orjson
from redis.exceptions import WatchError

from server import customers, history
from server.automation import Outcome, Snapshot, parse_time
from server.store import keys as K
from server.store.connect import Store
from server.store.encoding import dumps as _dumps
from server.store.revisions import TRANSACT_TRIES, lost_races

__all__ = ["context_writes", "group_index_writes"]

Write = tuple[Any, ...]


def _folded(groups: Any) -> set[str]:
    return {g.casefold() for g in groups or [] if isinstance(g, str)}


def group_index_writes(workspace: str, kind: str, ident: str, before: Any,
                       after: Any) -> list[Write]:
    """ZADD/ZREM in keys.group_members for a contact whose groups went before -> after."""
    old, new = _folded(before), _folded(after)
    out: list[Write] = [("ZADD", K.group_members(workspace, kind, g), 0, ident)
                        for g in sorted(new - old)]
    out += [("ZREM", K.group_members(workspace, kind, g), ident) for g in sorted(old - new)]
    return out


def context_writes(store: Store, workspace: str, event: dict[str, Any], snapshot: Snapshot,
                   outcome: Outcome) -> list[Write]:
    ticket_id = event["ticket"]["id"]
    now = parse_time(outcome.record.get("at")) or datetime.now(UTC)
    out = history.history_writes(K.ticket_history(workspace, ticket_id),
                                 store.settings.run_ttl_s, history.entry(event, outcome.changes))
    out += customers.stat_writes(K, workspace, snapshot.previous, outcome.ticket,
                                 snapshot.contact_stats, now, ticket_id)
    contact = outcome.contact
    if contact is not None:
        stored = snapshot.contact or {}
        before = stored.get("groups") if stored.get("id") == contact["id"] else None
        out += group_index_writes(workspace, "contact", contact["id"], before, contact.get("groups"))
        if not stored:
            out.append(("ZADD", K.contacts_by_id(workspace), 0, contact["id"]))
    from server.store.companies import company_writes   # it builds on group_index_writes above

    return out + company_writes(workspace, snapshot, outcome)


async def set_record_groups(store: Store, workspace: str, kind: str, ident: str, key: str,
                            groups: list[str], blank: dict[str, Any],
                            also: Callable[[Any], None]) -> dict[str, Any]:
    """Set a contact's or a company's groups (`kind`; the record at `key`, `blank` when none is
    stored yet) with its group indexes, in one MULTI/EXEC watched on the record: a concurrent
    commit writing it makes us read again. `also(pipe)` queues the kind's own index writes."""
    async with store.redis.pipeline(transaction=True) as p:
        for _ in range(TRANSACT_TRIES):
            try:
                await p.watch(key)
                raw = await p.get(key)
                record: dict[str, Any] = orjson.loads(raw) if raw else dict(blank)
                before = record.get("groups")
                record["groups"] = groups
                p.multi()
                p.set(key, _dumps(record))
                also(p)
                for write in group_index_writes(workspace, kind, ident, before, groups):
                    p.execute_command(*write)
                await p.execute()
                return record
            except WatchError:  # lost the race: read again
                continue
    raise lost_races()
