"""Workspaces, API keys, rules, contact groups and contacts: the slowly-changing data."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import WatchError

from server.errors import Conflict
from server.store import keys as K
from server.store.rule_snapshot import read_rules, rule_order
from server.store.replies import json_or_none, text_map
from server.store.encoding import dumps as _dumps
from server.store.connect import Store
from server.store.counts import check_count
from server.store.errors import guarded
from server.store.usage import SINCE_FIELD

__all__ = [
    "ROLES", "now_iso", "hash_key", "create_workspace", "get_workspace", "find_workspace_by_name",
    "create_key", "list_keys", "revoke_key", "lookup_key", "rules_revision", "list_rules", "listed_rules", "get_rule",
    "put_rule", "rule_order", "list_groups", "get_group", "put_group", "create_group", "update_group",
    "delete_group", "get_contact", "set_contact_groups", "group_contacts",
]

ROLES = ("ingest", "viewer", "manager", "developer", "admin")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hash_key(key: str) -> str:
    """Keys are random 32-byte tokens, so a plain SHA-256 is a sufficient one-way hash."""
    return hashlib.sha256(key.encode()).hexdigest()


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


# -- workspaces and keys ---------------------------------------------------------------------


@guarded
async def create_workspace(store: Store, name: str) -> tuple[dict[str, Any], str]:
    """Create a workspace and its first admin key; returns (workspace, admin key secret)."""
    ws = {"id": _new_id("ws"), "name": name, "created_at": now_iso()}
    await store.redis.set(K.ws_meta(ws["id"]), _dumps(ws))
    # The outbox follows the feed from its very first entry (store/outbox.py): a webhook action
    # of the workspace's first event is delivered even before any sender has seen the workspace.
    await store.redis.set(K.outbox_cursor(ws["id"]), "0-0")
    await store.redis.sadd(K.contacts(ws["id"]), "")  # its contact index is complete from the start
    await store.redis.hset(K.index_build(ws["id"]), "done", "1")  # nothing to build: no contact is older than its index
    await store.redis.set(K.rule_fires_since(ws["id"]), "0")  # every fire in the packed day counters
    await store.redis.hset(K.WORKSPACES, ws["id"], name)
    _, secret = await create_key(store, ws["id"], "admin", "initial admin key")
    return ws, secret


@guarded
async def get_workspace(store: Store, workspace: str) -> dict[str, Any] | None:
    return json_or_none(await store.redis.get(K.ws_meta(workspace)))


@guarded
async def find_workspace_by_name(store: Store, name: str) -> str | None:
    for ws_id, ws_name in (await store.redis.hgetall(K.WORKSPACES)).items():
        if ws_name == name:
            return str(ws_id)
    return None


@guarded
async def create_key(store: Store, workspace: str, role: str, name: str) -> tuple[dict[str, Any], str]:
    secret = "df_" + secrets.token_urlsafe(32)
    digest = hash_key(secret)
    record = {"id": _new_id("key"), "name": name, "role": role, "prefix": secret[:7],
              "created_at": now_iso()}
    # The workspace's list first, the auth lookup last: a key is usable only once fully recorded.
    # Counted (Settings.max_keys, 422 too_many_keys) under the WATCH of the list that writes it,
    # so racing creates cannot pass the limit together (the lookup lives in another slot).
    await _counted_hset(store, K.ws_keys(workspace), record["id"], _dumps({**record, "hash": digest}),
                        store.settings.max_keys, one="API key", many="API keys",
                        setting="DESKFLOW_MAX_KEYS", code="too_many_keys",
                        advice="Revoke keys you no longer use (DELETE /v1/keys/{key_id}).")
    await store.redis.set(K.apikey(digest), _dumps(
        {"id": record["id"], "workspace": workspace, "role": role, "name": name}))
    return record, secret


async def _counted_hset(store: Store, hkey: str, field: str, value: str, limit: int, *, one: str,
                        many: str, setting: str, code: str, advice: str,
                        exists: Exception | None = None) -> None:
    """HSET a new `field` of `hkey` unless that makes more than `limit` fields (check_count's
    422), with the count read under WATCH of the hash: concurrent writers cannot pass the limit
    together. `exists`: raised when the field is there already (else it is replaced, uncounted)."""
    from server.store.revisions import TRANSACT_TRIES, lost_races   # (revisions imports this module)

    for _ in range(TRANSACT_TRIES):
        async with store.redis.pipeline(transaction=True) as p:
            try:
                await p.watch(hkey)
                if await p.hexists(hkey, field):
                    if exists is not None:
                        raise exists
                else:
                    check_count(await p.hlen(hkey) + 1, limit, one=one, many=many,
                                per="workspace", setting=setting, code=code, advice=advice)
                p.multi()
                p.hset(hkey, field, value)
                await p.execute()
                return
            except WatchError:
                continue
    raise lost_races()


@guarded
async def list_keys(store: Store, workspace: str) -> list[dict[str, Any]]:
    items = [orjson.loads(v) for v in (await store.redis.hgetall(K.ws_keys(workspace))).values()]
    for item in items:
        item.pop("hash", None)
    return sorted(items, key=lambda k: (k["created_at"], k["id"]))


@guarded
async def revoke_key(store: Store, workspace: str, key_id: str) -> bool:
    raw = await store.redis.hget(K.ws_keys(workspace), key_id)
    if raw is None:
        return False
    # The auth lookup goes first: from this moment the key no longer authenticates.
    await store.redis.delete(K.apikey(orjson.loads(raw)["hash"]))
    await store.redis.hdel(K.ws_keys(workspace), key_id)
    return True


@guarded
async def lookup_key(store: Store, secret: str) -> dict[str, Any] | None:
    return json_or_none(await store.redis.get(K.apikey(hash_key(secret))))


# -- rules ------------------------------------------------------------------------------------


@guarded
async def rules_revision(store: Store, workspace: str) -> int:
    return int(await store.redis.get(K.rules_rev(workspace)) or 0)


@guarded
async def list_rules(store: Store, workspace: str) -> list[dict[str, Any]]:
    """All rules of a workspace in their order (position, then creation)."""
    return parse_rules(await raw_rules(store, workspace))


@guarded
async def raw_rules(store: Store, workspace: str) -> dict[str, str]:
    """The workspace's rules hash as stored (rule id -> JSON), for `parse_rules` elsewhere: at the
    rule limits that is 4 MiB of JSON, ~40 ms to parse (the worker parses it in its compile's
    thread, server/rulecache.py, not on the loop)."""
    return text_map(await store.redis.hgetall(K.rules(workspace)))


def parse_rules(raw: dict[str, str]) -> list[dict[str, Any]]:
    """`raw_rules`' hash as list_rules gives it: parsed, in their order."""
    return sorted((orjson.loads(v) for v in raw.values()), key=rule_order)


@guarded
async def listed_rules(store: Store, workspace: str) -> list[dict[str, Any]]:
    """list_rules, kept in this process per rules revision (server/store/rule_snapshot.py), so a
    listing reads one counter, not every rule's body: GET /v1/rules lists them all to page them,
    and 1,000 rules parsed each time were most of a listing's cost. A workspace's rules are kept
    up to Settings.max_rule_bytes, the most it may hold (store/rule_size.py). The dicts are
    shared: the caller copies before it changes one."""
    return list((await read_rules(store, workspace)).ordered())


@guarded
async def get_rule(store: Store, workspace: str, rule_id: str) -> dict[str, Any] | None:
    return json_or_none(await store.redis.hget(K.rules(workspace), rule_id))


@guarded
async def put_rule(store: Store, workspace: str, rule: dict[str, Any]) -> None:
    """A rule written as it is (the demo workspace, tests), with a revision like every rule the
    API writes: a run record names the revision each rule ran under and is read back through it
    (server/store/run_rules.py). Written without one, a later edit through the API numbered
    itself 1, the number the runs before it named for the rule as first written."""
    from server.store import revisions as R
    from server.store.rule_size import check_rule_changes

    rid = str(rule["id"])

    def compute(current: dict[str, dict[str, Any]]) -> list[Any]:
        old = current.get(rid)
        return [R.Change(rid, dict(rule), old, "update" if old is not None else "create")]

    async def check(p: Any, current: dict[str, dict[str, Any]], changes: list[Any]) -> None:
        # the demo's rules (and tests') within the bounds of every rule write
        check_rule_changes(store.settings.max_rule_bytes, R.sizes_of(current), changes)

    await R.write(store, workspace, R.RULE, {"key_id": None, "key_name": "deskflow"}, compute,
                  check=check)


def new_rule_id() -> str:
    return _new_id("rule")


# -- groups and contacts ----------------------------------------------------------------------


@guarded
async def list_groups(store: Store, workspace: str) -> list[dict[str, Any]]:
    raw = await store.redis.hgetall(K.groups(workspace))
    return sorted((orjson.loads(v) for v in raw.values()), key=lambda g: g["name"])


@guarded
async def get_group(store: Store, workspace: str, name: str) -> dict[str, Any] | None:
    return json_or_none(await store.redis.hget(K.groups(workspace), name))


@guarded
async def put_group(store: Store, workspace: str, group: dict[str, Any]) -> None:
    await store.redis.hset(K.groups(workspace), group["name"], _dumps(group))


@guarded
async def update_group(store: Store, workspace: str, group: dict[str, Any]) -> bool:
    """Replace a group that exists (False when it does not: a change never brings back a group
    deleted meanwhile, past the count create_group keeps)."""
    from server.store.revisions import TRANSACT_TRIES, lost_races   # (revisions imports this module)

    hkey = K.groups(workspace)
    for _ in range(TRANSACT_TRIES):
        async with store.redis.pipeline(transaction=True) as p:
            try:
                await p.watch(hkey)
                if not await p.hexists(hkey, group["name"]):
                    return False
                p.multi()
                p.hset(hkey, group["name"], _dumps(group))
                await p.execute()
                return True
            except WatchError:
                continue
    raise lost_races()


@guarded
async def create_group(store: Store, workspace: str, group: dict[str, Any],
                       exists: Exception | None = None) -> None:
    """Add a new group: `exists` (default 409 already_exists) when one has its name, 422
    too_many_groups past Settings.max_groups, both read under the WATCH of the groups hash that
    writes it. (The route passes its own 409, so the API document, read off each route's code,
    lists it: server/api/openapi.py.)"""
    name = group["name"]
    await _counted_hset(store, K.groups(workspace), name, _dumps(group), store.settings.max_groups,
                        one="group", many="groups", setting="DESKFLOW_MAX_GROUPS",
                        code="too_many_groups",
                        advice="Delete groups you no longer use (DELETE /v1/groups/{name}).",
                        exists=exists or Conflict(f"A group named {name!r} exists already.",
                                                  code="already_exists"))


@guarded
async def delete_group(store: Store, workspace: str, name: str) -> bool:
    return bool(await store.redis.hdel(K.groups(workspace), name))


@guarded
async def get_contact(store: Store, workspace: str, contact_id: str) -> dict[str, Any] | None:
    return json_or_none(await store.redis.get(K.contact(workspace, contact_id)))


@guarded
async def set_contact_groups(store: Store, workspace: str, contact_id: str,
                             groups: list[str]) -> dict[str, Any]:
    from server.store.context_writes import set_record_groups

    def also(p: Any) -> None:
        p.sadd(K.contacts(workspace), contact_id)
        p.zadd(K.contacts_by_id(workspace), {contact_id: 0})

    return await set_record_groups(store, workspace, "contact", contact_id,
                                   K.contact(workspace, contact_id), groups, {"id": contact_id}, also)


@guarded
async def group_contacts(store: Store, workspace: str, group: str) -> int:
    """How many known contacts are in a group: the workspace's contact index (keys.contacts),
    read in chunks. Contacts stored before the index existed are added by one scan, once.
    Once the group indexes are complete (store/directory.py), one ZCARD."""
    if await store.redis.hget(K.index_build(workspace), "done") == "1":
        return int(await store.redis.zcard(K.group_members(workspace, "contact", group)))
    index = K.contacts(workspace)
    if not await store.redis.sismember(index, ""):
        found = [k.rsplit(":contact:", 1)[1] async for k in
                 store.redis.scan_iter(match=K.contact(workspace, "*"), count=500)]
        await store.redis.sadd(index, "", *found)
    count = 0
    folded = group.casefold()
    async for chunk in _chunks(store.redis.sscan_iter(index, count=500), 500):
        ids = [c for c in chunk if c]
        raws = await store.redis.mget([K.contact(workspace, c) for c in ids]) if ids else []
        for raw in raws:
            if raw and any(g.casefold() == folded for g in orjson.loads(raw).get("groups") or []):
                count += 1
    return count


async def _chunks(items: Any, size: int) -> Any:
    chunk: list[Any] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@guarded
async def add_rule_checks(store: Store, counts: dict[tuple[str, str, int], int]) -> None:
    """Add (workspace, rule id, hour) -> times the rule was checked, in one pipeline. Workers batch
    these in memory and flush every few seconds: a counter per rule per event inside the apply
    transaction would cost a command for every rule checked. A worker that dies loses at most
    its last unflushed batch (usage stats, never automation)."""
    if not counts:
        return
    async with store.redis.pipeline(transaction=False) as p:
        for (workspace, rule_id, hour), n in counts.items():
            key = K.rule_stats(workspace, rule_id)
            p.hincrby(key, f"c:{hour}", n)
            p.hdel(key, f"c:{hour - 31 * 24}")
            p.hsetnx(key, SINCE_FIELD, 0)   # not a hash from before the daily counters (usage.py)
        for workspace in {ws for ws, _, _ in counts}:   # (a kept usage answer: rule_usage.py)
            p.incr(K.rule_fires_version(workspace))
        await p.execute()
