"""Every Redis key deskflow uses, and why it is shaped that way.

Cluster-ready from the start: every multi-key atomic operation (WATCH/MULTI/EXEC) touches keys of
one hash slot. Two kinds of slot:

* ``{ws:<workspace>}`` -- everything a workspace owns: its metadata, key list, rules, groups,
  contacts, tickets, runs, updates feed and event idempotency markers. Applying an event writes the
  ticket, its processed marker, the run record, the feed entry and the contact in ONE transaction
  in this slot, so apply is all-or-nothing and exactly-once.
* ``{q:<n>}`` -- event stream partition n (0 <= n < partitions) and its ownership lease. An event
  goes to partition crc32(workspace + NUL + ticket id) % partitions, so one ticket always lands in
  one stream and is read by one worker at a time (the lease holder): per-ticket order is the
  stream's order. More partitions (and shards) mean more throughput, never reordering within a
  ticket.

Global single-key lookups (no multi-key atomicity needed) have no tag:

  df:workspaces                         hash  workspace id -> name (operators' listing, demo reuse)
  df:apikey:<sha256 hex of the key>     str   JSON {id, workspace, role, name}; auth reads only this
  df:workers                            zset  worker name -> last heartbeat (ms); sizes lease share

Per workspace W (slot {ws:W}):

  df:{ws:W}:meta                        str   JSON {id, name, created_at}
  df:{ws:W}:keys                        hash  key id -> JSON {id, name, role, prefix, hash, created_at}
  df:{ws:W}:rules                       hash  rule id -> JSON rule (with position, revision, ...)
  df:{ws:W}:rules:rev                   str   counter, bumped on every rule change: the worker's
                                              compiled-ruleset cache key
  df:{ws:W}:groups                      hash  group name -> JSON {name, color, created_at}
  df:{ws:W}:contact:<C>                 str   JSON {id, email, name, groups, custom}
  df:{ws:W}:contact-tickets:<C>         set   ticket ids of contact C (for ?group= filters)
  df:{ws:W}:ticket:<T>                  str   JSON ticket as automation left it, with version
  df:{ws:W}:tickets                     zset  ticket id -> creation sequence (list order, cursor)
  df:{ws:W}:tickets:seq                 str   counter for the above
  df:{ws:W}:ticket-runs:<T>             list  run ids, newest first (trimmed)
  df:{ws:W}:run:<R>                     str   JSON run record
  df:{ws:W}:rule-runs:<rule id>         list  ids of the runs in which that rule fired, newest
                                              first (trimmed)
  df:{ws:W}:event:<E>                   str   JSON {entry, partition, ticket, status, run_id}: the
                                              idempotency marker of client event id E (TTL
                                              event_ttl_s). The stream entry it names is THE copy
                                              of the event; other copies are skipped.
  df:{ws:W}:feed                        stream updates feed; entry id = the feed cursor

Per partition n (slot {q:n}):

  df:{q:n}:events                       stream events; consumer group "workers"
  df:{q:n}:lease                        str   owning worker's name, PX = reclaim_idle_ms
  df:{q:n}:timers:<W>                   zset  the timers of workspace W's tickets in the partition
                                              -> due ms (one set per workspace: fair firing)
  df:{q:n}:timer-index                  zset  workspace -> its next due ms (a lower bound; the
                                              firing round fixes it), or the round it was last
                                              served at while it still has timers due
  df:{q:n}:timers                       zset  the older layout: every workspace's timers in one
                                              set; still read, drained into the above as they
                                              come due
  df:{q:n}:timer-data                   hash  event data of the timers whose reason does not imply
                                              it (store/timers.py has the layouts)
"""

from __future__ import annotations

import zlib

__all__ = [
    "GROUP", "WORKSPACES", "WORKERS", "apikey", "ws_meta", "ws_keys", "rules", "rules_rev", "groups",
    "contact", "contact_tickets", "ticket", "tickets", "tickets_seq", "ticket_runs", "run", "rule_runs",
    "event_marker", "feed", "stream", "lease", "partition_of",
]

GROUP = "workers"
WORKSPACES = "df:workspaces"
WORKERS = "df:workers"


def apikey(key_hash: str) -> str:
    return f"df:apikey:{key_hash}"


def _ws(w: str) -> str:
    return f"df:{{ws:{w}}}"


def ws_meta(w: str) -> str:
    return f"{_ws(w)}:meta"


def ws_keys(w: str) -> str:
    return f"{_ws(w)}:keys"


def rules(w: str) -> str:
    return f"{_ws(w)}:rules"


def rules_rev(w: str) -> str:
    return f"{_ws(w)}:rules:rev"


def groups(w: str) -> str:
    return f"{_ws(w)}:groups"


def contact(w: str, c: str) -> str:
    return f"{_ws(w)}:contact:{c}"


def contact_tickets(w: str, c: str) -> str:
    return f"{_ws(w)}:contact-tickets:{c}"


def ticket(w: str, t: str) -> str:
    return f"{_ws(w)}:ticket:{t}"


def tickets(w: str) -> str:
    return f"{_ws(w)}:tickets"


def tickets_seq(w: str) -> str:
    return f"{_ws(w)}:tickets:seq"


def ticket_runs(w: str, t: str) -> str:
    return f"{_ws(w)}:ticket-runs:{t}"


def run(w: str, r: str) -> str:
    return f"{_ws(w)}:run:{r}"


def workspace_runs(w: str) -> str:
    """Newest-first run ids of the whole workspace (capped at Settings.runs_per_workspace)."""
    return f"{_ws(w)}:runs"


def rule_runs(w: str, rule_id: str) -> str:
    return f"{_ws(w)}:rule-runs:{rule_id}"


def event_marker(w: str, e: str) -> str:
    return f"{_ws(w)}:event:{e}"


def feed(w: str) -> str:
    return f"{_ws(w)}:feed"


def stream(n: int) -> str:
    return f"df:{{q:{n}}}:events"


def lease(n: int) -> str:
    return f"df:{{q:{n}}}:lease"


def partition_of(workspace: str, ticket_id: str, partitions: int) -> int:
    """The stream partition of a ticket: stable across processes (crc32, not hash())."""
    return zlib.crc32(f"{workspace}\0{ticket_id}".encode()) % partitions


# -- scripts, allow-list, secrets (slot {ws:W}; store/scripts.py) and timers (slot {q:n};
#    store/timers.py). Layouts are documented in those modules.

__all__ += ["scripts", "script_bytes", "script_version", "allowlist", "secrets", "timers", "timer_data", "timers_of",
            "timer_index"]


def scripts(w: str) -> str:
    return f"{_ws(w)}:scripts"


def script_bytes(w: str) -> str:
    """string  bytes of every kept script version's record of the workspace (store/scripts.py)."""
    return f"{_ws(w)}:scripts:bytes"


def script_version(w: str, name: str, version: int) -> str:
    return f"{_ws(w)}:script:{name}:{version}"


def allowlist(w: str) -> str:
    return f"{_ws(w)}:allowlist"


def secrets(w: str) -> str:
    return f"{_ws(w)}:secrets"


def timers(n: int) -> str:
    """zset  the older layout: every workspace's timers of partition n in one set (members as in
    timers_of); read and drained, never written."""
    return f"df:{{q:{n}}}:timers"


def timers_of(n: int, w: str) -> str:
    """zset  member "<workspace>\\x1f<reason code>\\x1f<ticket>" (or, from older installs and for a
    reason holding \\x1f, JSON [workspace, ticket, reason]) -> due time in ms; workspace w's
    timers in partition n. The hash tag is {q:n} whatever w holds (the first {...} counts)."""
    return f"df:{{q:{n}}}:timers:{w}"


def timer_index(n: int) -> str:
    """zset  workspace -> the due ms of its earliest timer in partition n (or lower: a cancel
    leaves it; the firing round raises it), which workspaces a firing round serves."""
    return f"df:{{q:{n}}}:timer-index"


def timer_data(n: int) -> str:
    """hash  timer member -> JSON event data, only where it differs from what the reason implies
    (so empty for the service's own timers; older installs wrote one field per timer)."""
    return f"df:{{q:{n}}}:timer-data"


__all__ += ["sla_policies"]


def sla_policies(w: str) -> str:
    """hash  policy name -> JSON policy with `position` (store/sla.py)."""
    return f"{_ws(w)}:sla-policies"


__all__ += ["rule_stats"]


def rule_stats(w: str, rule_id: str) -> str:
    """hash  "last" -> when the rule last fired (run time); "h:<hour since epoch>" -> fires in that
    hour, "d:<day since epoch>" -> fires that day, "dsince" -> the first day all of whose fires
    are in "d:" (store/usage.py); "c:<hour>" -> checks. Written in batches by the worker; the
    bucket 31 days back (32 for days) is dropped on each write."""
    return f"{_ws(w)}:rule-stats:{rule_id}"


# -- webhook and outbox (slot {ws:W}; layouts in store/outbox.py) ------------------------------

__all__ += ["webhook", "outbox_cursor", "delivery", "outbox_due", "outbox_failed",
            "outbox_delivered", "outbox_all", "outbox_lease"]

def webhook(w: str) -> str:
    return f"{_ws(w)}:webhook"


def outbox_cursor(w: str) -> str:
    return f"{_ws(w)}:outbox:cursor"


def delivery(w: str, d: str) -> str:
    return f"{_ws(w)}:delivery:{d}"


def outbox_due(w: str) -> str:
    return f"{_ws(w)}:outbox:due"


def outbox_failed(w: str) -> str:
    return f"{_ws(w)}:outbox:failed"


def outbox_delivered(w: str) -> str:
    return f"{_ws(w)}:outbox:delivered"


def outbox_all(w: str) -> str:
    return f"{_ws(w)}:outbox:all"


def outbox_lease(w: str) -> str:
    return f"{_ws(w)}:outbox:lease"


__all__ += ["ratelimit"]


def ratelimit(key_hash: str, second: int) -> str:
    """str  requests made with one API key in one wall-clock second (INCR, expires after 2 s;
    store/ratelimit.py). Global: one key per counter, no multi-key atomicity needed."""
    return f"df:rl:{key_hash[:32]}:{second}"


# -- rule / SLA policy revisions and the audit log (slot {ws:W}; store/revisions.py, audit.py) --

__all__ += ["revisions", "revision_bytes", "revisions_retired", "audit"]


def revisions(w: str, kind: str, ident: str) -> str:
    """hash  revision number -> JSON {n, action, at, by, <kind>}: immutable revisions of one rule
    (kind "rule", ident = rule id) or SLA policy (kind "sla", ident = name). Written in the same
    MULTI/EXEC as the change; kept when the rule or policy is deleted."""
    return f"{_ws(w)}:revisions:{kind}:{ident}"


def revision_bytes(w: str) -> str:
    """string  bytes of the workspace's rule and SLA policy revisions as written (each record's
    JSON + REVISION_OVERHEAD), counted in the MULTI that writes or drops them (store/revisions.py);
    bounded by Settings.max_revision_bytes."""
    return f"{_ws(w)}:revisions:bytes"


def revisions_retired(w: str) -> str:
    """zset  JSON [kind, ident, n] -> when revision n stopped being its object's latest (ms), or
    when its object was deleted: what may be dropped, oldest first, once no run record can name it
    (Settings.run_ttl_s + RETIRED_GRACE_S later) and the revisions pass max_revision_bytes."""
    return f"{_ws(w)}:revisions:retired"


def audit(w: str) -> str:
    """stream  audit log: field "e" = JSON {at, actor, action, target, detail}; capped (MAXLEN ~)."""
    return f"{_ws(w)}:audit"


# -- loop and flood guard limits (slot {ws:W}; store/guards.py) --

__all__ += ["guards"]


def guards(w: str) -> str:
    """string  JSON {send_caps: [{count, per}], generated_per_minute}: the workspace's guard limits
    (server/guards.py); absent = the defaults."""
    return f"{_ws(w)}:guards"


__all__ += ["policy_rev"]


def policy_rev(w: str) -> str:
    """string  counter bumped in the same MULTI as every write of the SLA policies or the guard
    limits (store/revisions.py, store/sla.py, store/guards.py): the key server/policy_cache.py
    caches their compiled form by, as rules:rev is for the rules."""
    return f"{_ws(w)}:policy:rev"


def workspace_settings(w: str) -> str:
    """string  JSON {strict_events: bool}: the workspace's settings (server/api/workspace_settings.py);
    absent = every setting at its default."""
    return f"{_ws(w)}:settings"
# -- the workspace's contact index (slot {ws:W}) --

__all__ += ["contacts"]


def contacts(w: str) -> str:
    """set  ids of the workspace's contact records, so a group's contact count reads only this
    workspace's keys (a SCAN MATCH walks every tenant's keyspace). The member "" says the index
    is complete (contacts stored before it existed were added by one scan)."""
    return f"{_ws(w)}:contacts"


# -- ticket history, contact counts, group indexes (slot {ws:W}; issue 19) --

__all__ += ["ticket_history", "contact_stats", "contact_recent", "contacts_by_id", "group_members"]


def ticket_history(w: str, t: str) -> str:
    """list  JSON history entries of ticket T, oldest first, the last 50 kept (server/history.py);
    what a script reads as ctx.history. Expires with the ticket's run records."""
    return f"{_ws(w)}:history:{t}"


def contact_stats(w: str, c: str) -> str:
    """hash  counts of contact C's tickets kept by the apply commit (server/customers.py):
    `open` (tickets not solved or closed), `d:<YYYY-MM-DD>` (tickets created that day, the last
    31 days kept). Deltas (HINCRBY), so no commit needs to read or check them."""
    return f"{_ws(w)}:contact-stats:{c}"


def contact_recent(w: str, c: str) -> str:
    """zset  ticket ids of contact C scored by creation time (epoch seconds), the newest 50 kept:
    ctx.customer's `recent` reads the newest 10."""
    return f"{_ws(w)}:contact-recent:{c}"


def contacts_by_id(w: str) -> str:
    """zset  every contact id of the workspace, score 0 (GET /v1/contacts without ?group= pages
    it by id; keys.contacts is a set, which cannot be paged in order)."""
    return f"{_ws(w)}:contacts-by-id"


def group_members(w: str, kind: str, group: str) -> str:
    """zset  ids of the contacts (kind "contact") or companies (kind "company") in a group (its
    name case-folded), score 0 so the listing pages by id: a group's listing reads only its
    members."""
    plural = "companies" if kind == "company" else f"{kind}s"   # kind "company": its groups'
    return f"{_ws(w)}:group-{plural}:{group.casefold()}"


# -- companies (slot {ws:W}; server/store/companies.py; issue 19 item 3) --

__all__ += ["company", "companies_by_id", "index_build", "index_build_lease"]


def company(w: str, c: str) -> str:
    """str  JSON {id, name, domain, groups, custom}: company C as events and
    PUT /v1/companies/{id}/groups left it (a contact's record names it by `company_id`)."""
    return f"{_ws(w)}:company:{c}"


def companies_by_id(w: str) -> str:
    """zset  every company id of the workspace, score 0 (GET /v1/companies pages it by id)."""
    return f"{_ws(w)}:companies-by-id"


def index_build(w: str) -> str:
    """hash  the one-time build of the contact indexes (contacts_by_id, group_members) for
    contacts stored before they existed (server/store/directory.py): `cursor` (the SSCAN cursor
    over keys.contacts), `indexed` (contacts done), `done` ("1" once complete)."""
    return f"{_ws(w)}:index-build"


def index_build_lease(w: str) -> str:
    """str  the process building the workspace's contact indexes (PX: it renews while it works),
    so one process at a time advances the cursor."""
    return f"{_ws(w)}:index-build:lease"


# -- rule drafts (slot {ws:W}; store/drafts.py) --

__all__ += ["rule_drafts"]


def rule_drafts(w: str) -> str:
    """hash  rule id -> JSON draft {rule_id, base_revision, rule, created_at, updated_at, by}: at
    most one draft per live rule. Nothing on the run path reads it (the worker reads only
    keys.rules); publishing deletes it in the same MULTI/EXEC that writes the rule."""
    return f"{_ws(w)}:rule-drafts"


# -- workspace charts (slot {ws:W}; store/stats.py) --

__all__ += ["ws_stats_day", "rule_fires_day", "rule_fires_since", "rule_fires_version"]


def rule_fires_day(w: str, day: int) -> str:
    """hash  rule id -> the rule's fires that UTC day (days since the epoch): every rule's day in
    one key, so GET /v1/stats/rules reads one HMGET a day, not a command a rule (store/usage.py
    writes it with the batch's "d:" counters, each write renewing a TTL of KEEP_DAYS days)."""
    return f"{_ws(w)}:rule-fires:{day}"


def rule_fires_since(w: str) -> str:
    """string  the first UTC day all of whose fires are in rule_fires_day: "0" for a workspace
    made with these keys, else the day after their first write (days before are read from each
    rule's own "d:" counters, store/stats.rules_per_day)."""
    return f"{_ws(w)}:rule-fires:since"


def rule_fires_version(w: str) -> str:
    """string  bumped by every write to the workspace's rule_stats hashes (store/usage.py's
    batches of fires, catalog.add_rule_checks, a run's rule error in store/tickets.py): what the
    answers of GET /v1/stats/rules and the usage of GET /v1/rules kept in a process are keyed by,
    with the rules revision and the day or hour."""
    return f"{_ws(w)}:rule-fires:v"


def ws_stats_day(w: str, day: int) -> str:
    """hash  one UTC day (days since the epoch) of the workspace's chart counters: "e:<hour since
    the epoch>" -> events applied in that hour, "met:<target>" / "breached:<target>" -> SLA
    targets met in time / breached that day. Written in the worker's batched usage flush, each
    write renews a TTL of store/stats.KEEP_DAYS days: a day's key holds at most 24 + 6 fields and
    old days expire on their own."""
    return f"{_ws(w)}:stats:{day}"
