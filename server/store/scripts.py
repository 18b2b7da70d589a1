"""Scripts (immutable versions), the HTTP allow-list and secrets of a workspace.

Layout (slot {ws:W}, see store/keys.py):

  df:{ws:W}:scripts               hash  name -> JSON {name, latest, kept, timeout, created_at, updated_at}
  df:{ws:W}:script:<name>:<n>     str   JSON {name, version, source, timeout, created_at, created_by}
  df:{ws:W}:allowlist             str   JSON ["crm.example.com", "http://127.0.0.1:9000", ...]
  df:{ws:W}:secrets               hash  name -> sealed value (write-only through the API; read by
                                        the worker to hand to the HTTP broker, never to a script)

A secret set with `hosts` is sealed as "\0" + JSON {"value", "hosts"}: the binding to the hosts it
may be sent to is inside the AES-GCM envelope, so whoever can write Redis but lacks the key cannot
re-bind it. A value can never start with NUL (the API refuses NUL), so an old plain value — set
before secrets had hosts — is told apart: it is *unbound* and may go to any allow-listed host.

A new version is written with WATCH/MULTI on the script's hash, so two uploads racing to the same
name get consecutive version numbers, never the same one, and the counts (Settings.max_scripts
scripts, 422 too_many_scripts; max_script_versions versions kept of each) are read under the same
WATCH: racing uploads cannot pass them together. A script keeps its newest max_script_versions
versions: an upload past them drops the oldest version that no rule pins (`"version": n` in a
run_script action, enabled or not; the rules hash is watched too, so a rule saved meanwhile that
pins it is seen), and only when every older version is pinned is it refused (422
too_many_script_versions). `kept` lists the version numbers kept once one was dropped (absent: 1
to latest). Why not refuse at the count: a script deployed weekly would stop taking uploads after
two years, and deleting it (to start again at 1) means unhooking every rule that runs it.
The kept versions of all of a workspace's scripts hold at most Settings.max_script_bytes (64 MiB;
200 scripts x 100 versions x 64 KiB was 1.25 GiB a workspace): `script_bytes` counts each
version's record as written (`sizes` on the script's entry), an upload past it drops more of the
same script's oldest unpinned versions, else 422 too_many_script_bytes. Secrets are counted the same
way (Settings.max_secrets, 422 too_many_secrets); replacing one is never refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from redis.exceptions import WatchError

from server.history import uses_of
from server.store import keys as K
from server.store.replies import json_or_none, text_map, texts
from server.store.catalog import now_iso
from server.store.connect import Store
from server.store.counts import check_count
from server.errors import Unprocessable
from server.store.errors import guarded
from server.store.revisions import TRANSACT_TRIES, lost_races
from server.store.sealing import SealingError

__all__ = ["add_version", "public", "kept_versions", "kept_text", "pinned_versions", "queue_delete_script", "get_script", "get_version", "list_scripts", "list_versions",
           "get_allowlist", "put_allowlist", "put_secret", "delete_secret", "list_secrets", "get_secrets",
           "get_secret_records"]

_BOUND = "\0"     # marks a sealed {"value", "hosts"} envelope (a plain value cannot hold NUL)


log = logging.getLogger("deskflow.store")


@guarded
async def add_version(store: Store, workspace: str, name: str, source: str, timeout: str | None,
                      created_by: str, description: str | None = None,
                      also: Callable[[Any, int], None] | None = None) -> dict[str, Any]:
    """Store a new version of `name` (creating the script); returns the version record.
    `also(pipe, version)` queues more writes (the audit entry) in the same transaction; a
    `description` is kept on the script (the export shows it)."""
    hkey = K.scripts(workspace)
    for _ in range(TRANSACT_TRIES):
        async with store.redis.pipeline(transaction=True) as p:
            try:
                await p.watch(hkey, K.rules(workspace))
                raw = await p.hget(hkey, name)
                if raw is None:   # a new script: counted here, under the WATCH that writes it
                    check_count(await p.hlen(hkey) + 1, store.settings.max_scripts,
                                one="script", many="scripts", per="workspace",
                                setting="DESKFLOW_MAX_SCRIPTS", code="too_many_scripts",
                                advice="Delete scripts you no longer use (DELETE /v1/scripts/{name}).",
                                path="name")
                meta = orjson.loads(raw) if raw else {"name": name, "created_at": now_iso()}
                version = int(meta.get("latest", 0)) + 1
                kept = kept_versions(meta)
                at = now_iso()
                uses = uses_of(source)   # ctx.history / ctx.customer: loaded only for these
                record = {"name": name, "version": version, "source": source, "timeout": timeout,
                          "created_at": at, "created_by": created_by, "uses": uses}
                text = orjson.dumps(record).decode()
                size = len(text.encode())
                stored_sizes = meta.get("sizes")
                sizes = ({str(k): int(v) for k, v in stored_sizes.items()}
                         if isinstance(stored_sizes, dict) else {})
                dropped, freed = await _to_drop(p, store, workspace, name, kept, sizes, size)
                kept = [n for n in kept if n not in dropped] + [version]
                for n in dropped:
                    sizes.pop(str(n), None)
                sizes[str(version)] = size
                meta["sizes"] = sizes
                meta.update(latest=version, timeout=timeout, updated_at=at,
                            uses=sorted(set(meta.get("uses") or []) | set(uses)))
                if dropped or "kept" in meta:
                    meta["kept"] = kept
                if description is not None:
                    meta["description"] = description
                p.multi()
                p.set(K.script_version(workspace, name, version), text)
                for n in dropped:
                    p.delete(K.script_version(workspace, name, n))
                p.incrby(K.script_bytes(workspace), size - freed)
                p.hset(hkey, name, orjson.dumps(meta).decode())
                if also is not None:
                    also(p, version)
                await p.execute()
                return record
            except WatchError:
                continue
    raise lost_races()


PRIVATE = ("sizes",)   # the entry's bookkeeping, not part of what the API shows


def public(meta: dict[str, Any]) -> dict[str, Any]:
    """A script's entry as the API shows it (without its version sizes)."""
    return {k: v for k, v in meta.items() if k not in PRIVATE}


def kept_versions(meta: dict[str, Any]) -> list[int]:
    """The version numbers a script keeps, oldest first (1 to latest until one was dropped)."""
    kept = meta.get("kept")
    if isinstance(kept, list) and all(type(n) is int for n in kept):
        return list(kept)
    return list(range(1, int(meta.get("latest") or 0) + 1))


def kept_text(versions: Any) -> str:
    """Kept version numbers, briefly, for messages: "versions 4 to 103", or at most 12 of them
    ("versions 2, 5, 6, ...") when some between were kept by pins."""
    ns = sorted(versions)
    if ns and ns[-1] - ns[0] + 1 == len(ns):
        return f"versions {ns[0]} to {ns[-1]}"
    shown = ", ".join(str(n) for n in ns[:12])
    return f"versions {shown}{', ...' if len(ns) > 12 else ''}"


def pinned_versions(rules: Any, name: str) -> set[int]:
    """The versions of script `name` that the rules' run_script actions pin (`"version": n`)."""
    out: set[int] = set()
    named = orjson.dumps(name)   # stored rules are compact JSON: one that runs `name` holds this
    for raw in rules:
        if named not in (raw if isinstance(raw, bytes) else raw.encode()):
            continue   # (a substring scan instead of parsing each of up to 4 MiB of rules)
        try:
            rule = orjson.loads(raw)
        except ValueError:
            continue
        actions = rule.get("actions") if isinstance(rule, dict) else None
        for a in actions if isinstance(actions, list) else []:
            if (isinstance(a, dict) and a.get("type") == "run_script" and a.get("script") == name
                    and type(a.get("version")) is int):
                out.add(a["version"])
    return out


async def _to_drop(p: Any, store: Store, workspace: str, name: str, kept: list[int],
                   sizes: dict[str, int], adding: int) -> tuple[list[int], int]:
    """(the oldest versions no rule pins that must go for one more of `adding` bytes to fit
    max_script_versions and the workspace's max_script_bytes, the bytes they free), read through
    `p` under WATCH (the rules and the byte counter are watched here); 422
    too_many_script_versions / too_many_script_bytes when the unpinned older versions are not
    enough. The version written now is the latest, so any older one may go. A version without
    a size in `sizes` was stored before the bytes were counted: it frees none."""
    limit, budget = store.settings.max_script_versions, store.settings.max_script_bytes
    await p.watch(K.script_bytes(workspace))
    held = int(await p.get(K.script_bytes(workspace)) or 0)
    excess, over = len(kept) + 1 - limit, held + adding - budget
    if excess <= 0 and over <= 0:
        return [], 0
    pinned = pinned_versions((await p.hgetall(K.rules(workspace))).values(), name)
    drop: list[int] = []
    freed = 0
    for n in (n for n in kept if n not in pinned):   # (the one written now becomes the latest)
        if len(drop) >= excess and freed >= over:
            break
        drop.append(n)
        freed += sizes.get(str(n), 0)
    pins = ", ".join(str(n) for n in sorted(pinned)[:10]) or "none"
    if len(drop) < excess:
        check_count(len(kept) + 1, limit, one="script version", many="versions", per="script",
                    setting="DESKFLOW_MAX_SCRIPT_VERSIONS", code="too_many_script_versions",
                    advice=f"Script {name!r} keeps its newest {limit} versions and drops the oldest "
                           f"one no rule pins to make room, but rules pin every older version "
                           f"({pins}); change those rules to a newer version (or none: the "
                           "latest) first.",
                    path="name")
    if freed < over:
        raise Unprocessable(
            f"The workspace's scripts keep {held} bytes of versions and this one adds {adding}, "
            f"past the limit of {budget} bytes (DESKFLOW_MAX_SCRIPT_BYTES), even with every older "
            f"version of {name!r} that no rule pins dropped (pinned: {pins}); nothing was "
            "changed. Delete scripts you no longer use (DELETE /v1/scripts/{name}).",
            code="too_many_script_bytes",
            details=[{"path": "source", "reason": f"at most {budget} bytes of script versions a workspace",
                      "limit": budget, "bytes": held, "adding": adding}])
    return drop, freed


def queue_delete_script(pipe: Any, workspace: str, meta: dict[str, Any]) -> None:
    """Queue the deletion of a script and every version of it in a MULTI pipeline (the caller
    WATCHes the scripts hash, so no version is added meanwhile). Run records keep what they ran; a
    script uploaded again under the name starts at version 1 (the sandbox caches code by source
    hash too, so a reused number never runs the old text)."""
    name = meta["name"]
    pipe.hdel(K.scripts(workspace), name)
    for n in kept_versions(meta):
        pipe.delete(K.script_version(workspace, name, n))
    stored_sizes = meta.get("sizes")
    counted = sum(int(v) for v in stored_sizes.values()) if isinstance(stored_sizes, dict) else 0
    if counted:
        pipe.decrby(K.script_bytes(workspace), counted)


@guarded
async def get_script(store: Store, workspace: str, name: str) -> dict[str, Any] | None:
    return json_or_none(await store.redis.hget(K.scripts(workspace), name))


@guarded
async def list_scripts(store: Store, workspace: str) -> list[dict[str, Any]]:
    raw = await store.redis.hgetall(K.scripts(workspace))
    return sorted((orjson.loads(v) for v in raw.values()), key=lambda s: s["name"])


@guarded
async def get_version(store: Store, workspace: str, name: str, version: int) -> dict[str, Any] | None:
    return json_or_none(await store.redis.get(K.script_version(workspace, name, version)))


@guarded
async def list_versions(store: Store, workspace: str, name: str) -> list[dict[str, Any]]:
    meta = await get_script(store, workspace, name)
    if meta is None:
        return []
    keys = [K.script_version(workspace, name, n) for n in kept_versions(meta)]
    out = []
    for raw in await store.redis.mget(keys):
        if raw:
            record = orjson.loads(raw)
            record.pop("source", None)
            out.append(record)
    return out


@guarded
async def get_allowlist(store: Store, workspace: str) -> list[str]:
    raw = await store.redis.get(K.allowlist(workspace))
    return list(orjson.loads(raw)) if raw else []


@guarded
async def put_allowlist(store: Store, workspace: str, hosts: list[str]) -> None:
    await store.redis.set(K.allowlist(workspace), orjson.dumps(hosts).decode())


@guarded
async def put_secret(store: Store, workspace: str, name: str, value: str,
                     hosts: list[str] | None = None) -> bool:
    """Set a secret, sealed (store/sealing.py: AES-GCM bound to workspace and name), bound to
    `hosts` (allow-list entry spellings; [] = no host) or unbound when None; True when new."""
    plain = value if hosts is None else _BOUND + orjson.dumps({"value": value, "hosts": hosts}).decode()
    sealed = store.sealer.seal(workspace, name, plain)
    hkey = K.secrets(workspace)
    for _ in range(TRANSACT_TRIES):
        async with store.redis.pipeline(transaction=True) as p:
            try:
                await p.watch(hkey)
                created = not await p.hexists(hkey, name)
                if created:   # replacing one at the limit is never refused
                    check_count(await p.hlen(hkey) + 1, store.settings.max_secrets,
                                one="secret", many="secrets", per="workspace",
                                setting="DESKFLOW_MAX_SECRETS", code="too_many_secrets",
                                advice="Delete secrets you no longer use (DELETE /v1/secrets/{name}).",
                                path="name")
                p.multi()
                p.hset(hkey, name, sealed)
                await p.execute()
                return created
            except WatchError:
                continue
    raise lost_races()


@guarded
async def delete_secret(store: Store, workspace: str, name: str) -> bool:
    return bool(await store.redis.hdel(K.secrets(workspace), name))


@guarded
async def list_secrets(store: Store, workspace: str) -> list[str]:
    return sorted(texts(await store.redis.hkeys(K.secrets(workspace))))


@guarded
async def get_secrets(store: Store, workspace: str) -> dict[str, str]:
    """Every secret value, opened: for the worker's broker config only, never for an API response."""
    return {name: value for name, (value, _) in (await get_secret_records(store, workspace)).items()}


@guarded
async def get_secret_records(store: Store, workspace: str) -> dict[str, tuple[str, list[str] | None]]:
    """name -> (value, hosts or None when unbound). A value no configured key opens is left out
    (a call naming it fails as "no secret named ...") and logged, never guessed."""
    out: dict[str, tuple[str, list[str] | None]] = {}
    for name, stored in text_map(await store.redis.hgetall(K.secrets(workspace))).items():
        try:
            plain = store.sealer.unseal(workspace, name, stored)
        except SealingError as exc:
            log.error("workspace %s: %s", workspace, exc)
            continue
        if plain.startswith(_BOUND):
            doc = orjson.loads(plain[1:])
            out[name] = (str(doc["value"]), [str(h) for h in doc.get("hosts") or []])
        else:
            out[name] = (plain, None)
    return out
