"""The ticket mirror, and the load and commit around one event's pass.

An event is applied in three steps (server/apply.py): `load` reads the event's marker, the ticket,
the contact, the rules revision, the SLA policies and guard limits in one round trip (a second only
when the contact is known from the stored ticket alone); the pure pass (automation.process) runs
on that snapshot, scripts and HTTP included, with no store connection held; `commit` then checks
that marker, ticket and contact still hold what was loaded and writes, atomically, all in slot
{ws:W}: ticket (version + 1), processed marker, run record (with its retention), the ticket's run
list, updates-feed entry, contact record and the indexes (the fired rules' usage is batched by the
worker: store/usage.py). The worker sends loads and commits through a store/coalesce.Coalescer,
so concurrent passes share round trips; each commit stays its own check-and-set. On
Redis that is one EVALSHA of _COMMIT (compare SHA-1s, then the writes; EVAL once where the
server's script cache lacks it); on the embedded store WATCH,
a read to compare and one MULTI/EXEC. When the check fails nothing is written and the caller
loads again and re-runs only the pure pass.

The rules revision is read, not checked: an event is applied with the rules as they were when it
was loaded; a rule saved during the pass applies from the next event on.

A worker that dies before EXEC leaves nothing; one that dies after EXEC but before XACK leaves a
pending entry whose marker already says "processed", so the redelivery is skipped: each event is
applied exactly once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.exceptions import NoScriptError, ResponseError, WatchError

from server.automation import Outcome, Snapshot
from server.runrecord import rule_errors
from server.store import keys as K
from server.store.encoding import dumps as _dumps
from server.store.connect import Store
from server.store.errors import guarded
from server.store.context_writes import context_writes
from server import companies
from server.store.events import owns
from server.store.ticket_reads import get_ticket, list_tickets, overlay_contact   # (re-exported)

__all__ = ["Applied", "CommitFailed", "Snapshot", "load", "commit", "done_with", "next_seq", "get_ticket",
           "list_tickets", "overlay_contact", "fire_hour"]


# The commit on Redis: the check and the writes in ONE round trip, atomic as a script is.
# KEYS[1] = the event's marker, KEYS[2] = the ticket, KEYS[3] = the contact (the ticket again when
#   the event has none); KEYS[4..] = the keys the writes name
# ARGV[1..3] = SHA-1 of marker, ticket and contact as loaded ("" = absent)
# ARGV[4] = the plan: for each write, in order, "command key-index number-of-arguments", all
#   space-separated in one string; ARGV[5..] = every write's arguments, one write's after another.
#   (One plan string, not three arguments a write: packing and sending ~90 small arguments was
#   half of the commit's packing in the worker, and Redis makes an object of each.)
#   Command SAME (argument: a SHA-1, "" = absent) is a check, not a write.
# Returns 0 (and writes nothing) when one of the three, or a SAME key, changed since the load.
# A write that would fail is an error reply, never a silent partial commit: before any write, each
# key a typed command names must be absent or of that type (WRONGTYPE is the failure a stored key
# can cause; nothing is written then); a write that still fails (a bug's arguments, OOM past the
# first write) is reported with every other failure once the rest are written.
_COMMIT = """
local function same(key, want)
  local v = redis.call('GET', key)
  if not v then return want == '' end
  return redis.sha1hex(v) == want
end
local kinds = {LPUSH='list', LTRIM='list', RPUSH='list', HSET='hash', HDEL='hash', HINCRBY='hash',
               SADD='set', ZADD='zset', ZREM='zset', ZREMRANGEBYRANK='zset', XADD='stream'}
if not (same(KEYS[1], ARGV[1]) and same(KEYS[2], ARGV[2]) and same(KEYS[3], ARGV[3])) then
  return 0
end
local plan = {}
for word in string.gmatch(ARGV[4], '%S+') do plan[#plan + 1] = word end
local j = 5
for i = 1, #plan, 3 do  -- a 'SAME' write: one more key that must still hold what was loaded
  local cmd, key, n = plan[i], KEYS[tonumber(plan[i + 1])], tonumber(plan[i + 2])
  if cmd == 'SAME' and not same(key, ARGV[j]) then return 0 end
  local kind = kinds[cmd]
  if kind then
    local has = redis.call('TYPE', key)['ok']
    if has ~= 'none' and has ~= kind then
      return redis.error_reply('COMMIT ' .. cmd .. ' ' .. key .. ': the key holds a ' .. has ..
                               ', not a ' .. kind .. '; nothing was written')
    end
  end
  j = j + n
end
local failed = {}
j = 5
for i = 1, #plan, 3 do
  local cmd, key, n = plan[i], KEYS[tonumber(plan[i + 1])], tonumber(plan[i + 2])
  if cmd ~= 'SAME' then
    local r = redis.pcall(cmd, key, unpack(ARGV, j, j + n - 1))
    if type(r) == 'table' and r['err'] then
      failed[#failed + 1] = cmd .. ' ' .. key .. ': ' .. r['err']
    end
  end
  j = j + n
end
if #failed > 0 then
  return redis.error_reply('COMMIT ' .. #failed .. ' write(s) failed, the others were written: ' ..
                           table.concat(failed, '; '))
end
return 1
"""


_COMMIT_SHA = hashlib.sha1(_COMMIT.encode()).hexdigest()


def _sha(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return hashlib.sha1(raw.encode() if isinstance(raw, str) else raw).hexdigest()


def _script_error(exc: ResponseError) -> str | None:
    """The _COMMIT script's own error reply ("COMMIT ...") without that word, or None for any
    other error; redis-py's pipeline wraps a reply in the command's name and a tuple."""
    said = str(exc).rsplit("caused error: ", 1)[-1].strip("()',\"")
    return said[len("COMMIT "):] if said.startswith("COMMIT ") else None


class CommitFailed(Exception):
    """A write of an event's commit failed (e.g. a key of the wrong type): the entry is not
    applied cleanly and must not be taken for applied. Not a RedisError: retrying cannot help, so
    the worker logs it and counts the event failed (server/apply.py), as for any entry it cannot
    apply."""


@dataclass
class Applied:
    """What an apply did: `skipped` (already processed / not the event's copy) or the run."""

    skipped: bool
    marker: dict[str, Any] | None
    run: dict[str, Any] | None = None


def done_with(snapshot: Snapshot, entry: str, fields: dict[str, str]) -> bool:
    """Whether the loaded marker says this entry needs no pass: the event was processed, or the
    marker names another stream copy of it (this one is a duplicate)."""
    m = snapshot.marker
    return bool(m and (not owns(m, entry, fields) or m.get("status") == "processed"))


def _loads(raw: Any) -> Any:
    return orjson.loads(raw) if raw else None


Send = Callable[[Callable[[Any], None]], Awaitable[list[Any]]]


def _direct(store: Store) -> Send:
    """Send one request's commands as a round trip of its own (no coalescer)."""
    async def send(queue: Callable[[Any], None]) -> list[Any]:
        async with store.redis.pipeline(transaction=False) as p:
            queue(p)
            return list(await p.execute())
    return send


@guarded
async def load(store: Store, workspace: str, event: dict[str, Any], send: Send | None = None
               ) -> Snapshot:
    """The snapshot one event's pass runs on, with the workspace's rules and policy revisions
    (the worker's caches compile rules, SLA policies and guard limits once per revision). `send` (a
    store/coalesce.Coalescer's run) shares the round trip with other passes' requests."""
    send = send or _direct(store)
    ticket_id = event["ticket"]["id"]
    event_contact = (event["ticket"].get("contact") or {}).get("id")
    keys = [K.event_marker(workspace, event["id"]), K.ticket(workspace, ticket_id),
            K.rules_rev(workspace), K.policy_rev(workspace)]
    if event_contact:
        keys.append(K.contact(workspace, event_contact))
    named = companies.wanted(event, None, None) if event_contact else None
    if named:
        keys.append(K.company(workspace, named))

    def queue(p: Any) -> None:
        p.mget(keys)
        if event_contact:
            p.hgetall(K.contact_stats(workspace, event_contact))   # contact.open_tickets & co
    raws, *more = await send(queue)
    stats = more[0] if more else {}
    previous = _loads(raws[1])
    contact_id = event_contact or ((previous or {}).get("contact") or {}).get("id")
    raw_contact = raws[4] if event_contact else None
    if contact_id and not event_contact:
        known = K.contact(workspace, contact_id), K.contact_stats(workspace, contact_id)

        def queue_known(p: Any) -> None:
            p.get(known[0])
            p.hgetall(known[1])
        raw_contact, stats = await send(queue_known)
    # the company the pass merges into (server/companies.py): in the MGET above when the event
    # names it, else one more GET, only for a ticket whose contact has one
    company_id = companies.wanted(event, previous, _loads(raw_contact))
    raw_company = raws[-1] if named and company_id == named else None
    if company_id and company_id != named:
        (raw_company,) = await send(lambda p: p.get(K.company(workspace, company_id)))
    return Snapshot(marker=_loads(raws[0]), previous=previous, contact=_loads(raw_contact),
                    contact_id=contact_id, rules_rev=int(raws[2] or 0), policy_rev=int(raws[3] or 0),
                    raw_marker=raws[0], raw_ticket=raws[1], raw_contact=raw_contact,
                    contact_stats=stats, company=_loads(raw_company), raw_company=raw_company)


@guarded
async def next_seq(store: Store, workspace: str, send: Send | None = None) -> int:
    """A new ticket's place in the listing index. INCR outside the commit: a failed attempt leaves
    a gap in the sequence, which is harmless; watching the counter would make every new ticket
    conflict with every other one."""
    (seq,) = await (send or _direct(store))(lambda p: p.incr(K.tickets_seq(workspace)))
    return int(seq)


Write = tuple[Any, ...]   # (command, key, argument...)


@guarded
async def commit(store: Store, workspace: str, partition: int, entry: str, fields: dict[str, str],
                 event: dict[str, Any], run_id: str, snapshot: Snapshot, outcome: Outcome,
                 seq: int | None, send: Send | None = None, *, ack: bool = False) -> Applied | None:
    """Write the outcome if marker, ticket and contact still hold what `snapshot` read; None when
    they do not (load again and re-run the pass). `seq` (next_seq) is needed for a new ticket.
    `ack`: acknowledge (XACK + XDEL) the stream entry in the same atomic write, for a store where
    one script or MULTI may name the partition's stream beside the workspace's keys (not a
    cluster: other slots); the caller then has nothing left to ack for it.
    On Redis one EVAL checks and writes (_COMMIT), in `send`'s round trip when given; on the
    embedded store (fakeredis runs Lua only with lupa) WATCH, a read to compare, and one
    MULTI/EXEC do the same. The fired rules' usage (counters, run lists) is not written here: the
    worker batches it (add_usage)."""
    ticket_id = event["ticket"]["id"]
    mk, tk = K.event_marker(workspace, event["id"]), K.ticket(workspace, ticket_id)
    ck = K.contact(workspace, snapshot.contact_id) if snapshot.contact_id else None
    done = {"entry": entry, "token": fields.get("k"), "partition": partition,
            "ticket": ticket_id, "status": "processed", "run_id": run_id,
            "at": outcome.record["at"]}
    writes = _writes(store, workspace, event, run_id, snapshot, outcome, seq, done)
    if ack:   # last, after every write of the event: acked only with it
        writes += [("XACK", K.stream(partition), K.GROUP, entry), ("XDEL", K.stream(partition), entry)]
    if not store.embedded:
        keys = [mk, tk, ck or tk]
        index: dict[str, int] = {}
        plan: list[str] = []
        values: list[Any] = []
        for w in writes:
            at = index.get(w[1])
            if at is None:
                keys.append(w[1])
                at = index[w[1]] = len(keys)
            plan.append(f"{w[0]} {at} {len(w) - 2}")
            values += w[2:]
        args = [_sha(snapshot.raw_marker), _sha(snapshot.raw_ticket),
                _sha(snapshot.raw_contact) if ck else _sha(snapshot.raw_ticket), " ".join(plan),
                *values]
        send = send or _direct(store)
        try:
            try:   # by its SHA-1: the script's 2.3 KB are not sent (nor hashed by Redis) each time
                (ok,) = await send(lambda p: p.evalsha(_COMMIT_SHA, len(keys), *keys, *args))
            except NoScriptError:   # not in this server's cache (yet): EVAL runs and caches it
                (ok,) = await send(lambda p: p.eval(_COMMIT, len(keys), *keys, *args))
        except ResponseError as exc:
            said = _script_error(exc)
            if said is not None:
                raise CommitFailed(f"the commit of event {event['id']!r} failed: {said}") from exc
            raise
        return Applied(skipped=False, marker=done, run=outcome.record) if ok else None
    watched = [k for k in (mk, tk, ck) if k]
    checks = [w for w in writes if w[0] == "SAME"]
    async with store.redis.pipeline(transaction=True) as p:
        try:
            await p.watch(*watched, *(w[1] for w in checks))
            raws = await p.mget(watched)
            if (raws[0] != snapshot.raw_marker or raws[1] != snapshot.raw_ticket
                    or (ck and raws[2] != snapshot.raw_contact)):
                return None
            if checks and [_sha(r) for r in await p.mget([w[1] for w in checks])] != [
                    w[2] for w in checks]:
                return None
            p.multi()
            done_writes = [w for w in writes if w[0] != "SAME"]
            for write in done_writes:
                p.execute_command(*write)
            replies = await p.execute(raise_on_error=False)
        except WatchError:
            return None
    failed = [f"{w[0]} {w[1]}: {r}" for w, r in zip(done_writes, replies, strict=True)
              if isinstance(r, Exception)]
    if failed:   # MULTI/EXEC wrote the others: said loudly, never taken for a clean commit
        raise CommitFailed(f"the commit of event {event['id']!r} failed: {len(failed)} write(s) "
                           f"failed, the others were written: {'; '.join(failed)}")
    return Applied(skipped=False, marker=done, run=outcome.record)


def _writes(store: Store, workspace: str, event: dict[str, Any], run_id: str, snapshot: Snapshot,
            outcome: Outcome, seq: int | None, done: dict[str, Any]) -> list[Write]:
    """Every write of one event's commit as plain commands (and SAME checks), but for the fired
    rules' run lists and counters: the worker batches those (store/usage.py)."""
    s = store.settings
    ticket_id = event["ticket"]["id"]
    run, new_contact = outcome.record, outcome.contact
    runs = K.ticket_runs(workspace, ticket_id)
    out: list[Write] = [
        ("SET", K.ticket(workspace, ticket_id), _dumps(outcome.ticket)),
        ("SET", K.event_marker(workspace, event["id"]), _dumps(done), "EX", s.event_ttl_s),
        ("SET", K.run(workspace, run_id), _dumps(run), "EX", s.run_ttl_s),
        ("LPUSH", runs, run_id), ("LTRIM", runs, 0, s.runs_per_ticket - 1),
        ("EXPIRE", runs, s.run_ttl_s),
        # h-manage: the workspace's recent-runs list (GET /v1/runs), capped like the ticket's
        ("LPUSH", K.workspace_runs(workspace), run_id),
        ("LTRIM", K.workspace_runs(workspace), 0, s.runs_per_workspace - 1),
    ]
    erred = False
    for rid, errors in rule_errors(run.get("rules")):   # usage.last_error: only rules that erred
        out.append(("HSET", K.rule_stats(workspace, rid), "error", _dumps(
            {"at": run["at"], "message": str(errors[-1])[:500]})))
        erred = True
    if erred:   # (what a kept usage answer is keyed by: store/rule_usage.py)
        out.append(("INCR", K.rule_fires_version(workspace)))
    if snapshot.previous is None and seq is not None:
        out.append(("ZADD", K.tickets(workspace), "NX", seq, ticket_id))
    if new_contact is not None:
        if new_contact != snapshot.contact:
            out.append(("SET", K.contact(workspace, new_contact["id"]), _dumps(new_contact)))
        out.append(("SADD", K.contact_tickets(workspace, new_contact["id"]), ticket_id))
        if (snapshot.contact or {}).get("id") != new_contact["id"]:
            # a stored contact is in the index already: whatever stores one adds it there
            # (store/catalog.py), and contacts from before the index are added by one scan
            out.append(("SADD", K.contacts(workspace), new_contact["id"]))
    out += context_writes(store, workspace, event, snapshot, outcome)
    if outcome.to_feed:
        body = {"ticket_id": ticket_id, "event_id": event["id"], "run_id": run_id,
                "changes": outcome.changes, "effects": outcome.effects, "at": run["at"]}
        out.append(("XADD", K.feed(workspace), "MAXLEN", "~", s.feed_maxlen, "*", "d", _dumps(body)))
    return out


def fire_hour(at: str) -> int:
    """Whole hours since the epoch of an RFC 3339 time (the per-rule fire counters' bucket)."""
    from server.automation import parse_time

    when = parse_time(at)
    return int(when.timestamp() // 3600) if when else 0
