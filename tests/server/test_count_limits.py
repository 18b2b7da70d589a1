"""Count and size limits of what a workspace keeps (README "Limits"): scripts, versions of a
script, secrets, API keys, SLA policies (and one policy's size), contact groups (and a group's
description). Past each, a 422 (413 for a size) in the error envelope naming the limit and its
maximum; at it, accepted; replacing what exists at the limit still works; an import that would
pass a limit is refused whole; and 20 concurrent creates at limit - 1 leave exactly the limit
(each count is read in the transaction that writes the object), on both stores."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
import pytest
from server_helpers import Workspace
from starlette.testclient import TestClient

from server.api.groups import MAX_GROUP_DESCRIPTION
from server.api.scripts import MAX_SCRIPT_DESCRIPTION
from server.api.sla import MAX_POLICY_BYTES
from server.app import create_app
from server.errors import Unprocessable
from server.settings import Settings
from server.store import catalog
from server.store import keys as K
from server.store import scripts as S
from server.store.connect import close_store, open_store

LIMIT = 3
KEYS = 6          # the workspace's admin key and the role keys the tests make count too
RUN = "def run(event, ticket, ctx):\n    return {}\n"
POLICY = {"targets": {"resolution": "8h"}}


@pytest.fixture
def ws(settings: Settings) -> Iterator[Workspace]:
    """A workspace on a service whose workspaces may keep LIMIT of everything (KEYS keys)."""
    small = dataclasses.replace(settings, max_scripts=LIMIT, max_script_versions=LIMIT,
                                max_secrets=LIMIT, max_keys=KEYS, max_sla_policies=LIMIT,
                                max_groups=LIMIT)
    with TestClient(create_app(small)) as c:
        yield Workspace(c)


def _refused(r: Any, status: int, code: str, *words: str) -> dict[str, Any]:
    """`status` in the error envelope with `code`, its message and details containing `words`."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    err = body["error"]
    assert err["code"] == code, err
    text = err["message"] + " " + orjson.dumps(err["details"]).decode()
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    return dict(err)


def _script(ws: Workspace, name: str) -> Any:
    return ws.client.post("/v1/scripts", json={"name": name, "source": RUN}, headers=ws.h("developer"))


def _secret(ws: Workspace, name: str, value: str = "v") -> Any:
    return ws.client.put(f"/v1/secrets/{name}", json={"value": value}, headers=ws.h())


def _key(ws: Workspace, name: str) -> Any:
    return ws.client.post("/v1/keys", json={"role": "viewer", "name": name}, headers=ws.h())


def _policy(ws: Workspace, name: str, **extra: Any) -> Any:
    return ws.client.post("/v1/sla-policies", json={"name": name, **POLICY, **extra},
                          headers=ws.h("manager"))


def _group(ws: Workspace, name: str, **extra: Any) -> Any:
    return ws.client.post("/v1/groups", json={"name": name, **extra}, headers=ws.h("manager"))


def _names(ws: Workspace, path: str, key: str = "name") -> list[str]:
    r = ws.client.get(f"{path}?limit=500", headers=ws.h())
    assert r.status_code == 200, r.text
    return sorted(str(item[key]) for item in r.json()["items"])


def test_the_limits_are_settings_with_environment_overrides() -> None:
    defaults = Settings()
    assert (defaults.max_scripts, defaults.max_script_versions, defaults.max_secrets,
            defaults.max_keys, defaults.max_sla_policies, defaults.max_groups) == (200, 100, 100, 100, 100, 1000)
    env = {"DESKFLOW_MAX_SCRIPTS": "7", "DESKFLOW_MAX_SCRIPT_VERSIONS": "8", "DESKFLOW_MAX_SECRETS": "9",
           "DESKFLOW_MAX_KEYS": "10", "DESKFLOW_MAX_SLA_POLICIES": "11", "DESKFLOW_MAX_GROUPS": "12"}
    s = Settings.from_env(env)
    assert (s.max_scripts, s.max_script_versions, s.max_secrets, s.max_keys, s.max_sla_policies,
            s.max_groups) == (7, 8, 9, 10, 11, 12)


def test_scripts_per_workspace(ws: Workspace) -> None:
    for i in range(LIMIT):
        assert _script(ws, f"s{i}").status_code == 201
    _refused(_script(ws, "one-more"), 422, "too_many_scripts", "script count limit",
             f"{LIMIT} scripts per workspace", "DESKFLOW_MAX_SCRIPTS")
    assert _names(ws, "/v1/scripts") == ["s0", "s1", "s2"]
    assert _script(ws, "s0").json()["version"] == 2       # a new version of one at the limit
    assert ws.client.delete("/v1/scripts/s1", headers=ws.h("developer")).status_code == 204
    assert _script(ws, "one-more").status_code == 201


def _kept(ws: Workspace, name: str = "s") -> list[int]:
    body = ws.client.get(f"/v1/scripts/{name}", headers=ws.h()).json()
    return sorted(v["version"] for v in body["versions"])


def test_a_script_keeps_its_newest_versions_and_those_rules_pin(ws: Workspace) -> None:
    """Past LIMIT versions an upload drops the oldest version no rule pins (it was refused for
    good before: a script deployed weekly stopped taking uploads after two years)."""
    c, h = ws.client, ws.h()
    for n in range(1, LIMIT + 3):
        assert _script(ws, "s").json()["version"] == n
    assert _kept(ws) == [3, 4, 5]
    assert c.get("/v1/scripts/s/versions/1", headers=h).status_code == 404
    assert c.get("/v1/scripts/s/versions/3", headers=h).json()["version"] == 3
    r = c.post("/v1/scripts/s/test", json={"event": {"type": "ticket.created"}, "version": 2}, headers=h)
    assert r.status_code == 422 and "versions 3 to 5" in r.text, r.text
    # a rule pinning a dropped version is refused, naming what is kept
    pin = {"name": "pin", "enabled": True, "triggers": ["ticket.created"],
           "actions": [{"type": "run_script", "script": "s", "version": 2}]}
    r = c.post("/v1/rules", json=pin, headers=ws.h("manager"))
    assert r.status_code == 422 and "no longer keeps version 2" in r.text, r.text
    # a pinned version is kept: the next uploads drop the unpinned ones around it
    assert c.post("/v1/rules", json={**pin, "actions": [{"type": "run_script", "script": "s",
                                                         "version": 3}]},
                  headers=ws.h("manager")).status_code == 201
    assert _script(ws, "s").json()["version"] == 6
    assert _kept(ws) == [3, 5, 6]
    disabled = {**pin, "enabled": False, "actions": [{"type": "run_script", "script": "s", "version": 5}]}
    assert c.post("/v1/rules", json=disabled, headers=ws.h("manager")).status_code == 201
    # the latest before the upload may go too (rules that pin none run the new one)
    assert _script(ws, "s").json()["version"] == 7 and _kept(ws) == [3, 5, 7]
    assert c.post("/v1/rules", json={**disabled, "actions": [{"type": "run_script", "script": "s",
                                                              "version": 7}]},
                  headers=ws.h("manager")).status_code == 201
    # every older version pinned (a disabled rule's pin counts too): refused, naming the pins
    _refused(_script(ws, "s"), 422, "too_many_script_versions", "script version count limit",
             f"{LIMIT} versions per script", "DESKFLOW_MAX_SCRIPT_VERSIONS", "3, 5, 7")
    assert c.get("/v1/scripts/s", headers=h).json()["latest"] == 7 and _kept(ws) == [3, 5, 7]
    # the version keys of dropped versions are gone from the store
    store = c.app_state["store"]
    left = c.portal.call(_version_keys, store, ws.id)
    assert left == {K.script_version(ws.id, "s", n) for n in (3, 5, 7)}


def test_script_description_length(ws: Workspace) -> None:
    def upload(description: str) -> Any:
        return ws.client.post("/v1/scripts", json={"name": "s", "source": RUN, "description": description},
                              headers=ws.h("developer"))

    assert upload("d" * MAX_SCRIPT_DESCRIPTION).status_code == 201
    err = _refused(upload("d" * (MAX_SCRIPT_DESCRIPTION + 1)), 422, "validation_failed",
                   "script description limit", f"{MAX_SCRIPT_DESCRIPTION:,} characters",
                   f"is {MAX_SCRIPT_DESCRIPTION + 1:,} characters")
    assert [d["path"] for d in err["details"]] == ["description"]
    assert ws.client.get("/v1/scripts/s", headers=ws.h()).json()["latest"] == 1


def test_secrets_per_workspace(ws: Workspace) -> None:
    for i in range(LIMIT):
        assert _secret(ws, f"S{i}").status_code == 201
    _refused(_secret(ws, "ONE_MORE"), 422, "too_many_secrets", "secret count limit",
             f"{LIMIT} secrets per workspace", "DESKFLOW_MAX_SECRETS")
    assert _secret(ws, "S0", "new value").status_code == 200   # replacing one at the limit
    assert ws.client.delete("/v1/secrets/S1", headers=ws.h()).status_code == 204
    assert _secret(ws, "ONE_MORE").status_code == 201
    assert _names(ws, "/v1/secrets") == ["ONE_MORE", "S0", "S2"]


def test_keys_per_workspace(ws: Workspace) -> None:
    made = [_key(ws, f"k{i}") for i in range(KEYS - 1)]      # the admin key is the first
    assert [r.status_code for r in made] == [201] * (KEYS - 1)
    _refused(_key(ws, "one-more"), 422, "too_many_keys", "API key count limit",
             f"{KEYS} API keys per workspace", "DESKFLOW_MAX_KEYS")
    assert len(_names(ws, "/v1/keys", "id")) == KEYS
    assert ws.client.delete(f"/v1/keys/{made[0].json()['id']}", headers=ws.h()).status_code == 204
    assert _key(ws, "one-more").status_code == 201


def test_sla_policies_per_workspace(ws: Workspace) -> None:
    m = ws.h("manager")
    for i in range(LIMIT):
        assert _policy(ws, f"p{i}").status_code == 201
    words = ("SLA policy count limit", f"{LIMIT} SLA policies per workspace", "DESKFLOW_MAX_SLA_POLICIES")
    _refused(_policy(ws, "one-more"), 422, "too_many_policies", *words)
    r = ws.client.put("/v1/sla-policies/p0", json={"targets": {"resolution": "4h"}}, headers=m)
    assert r.status_code == 200, r.text                          # replacing one at the limit
    # a deleted policy restored comes back: counted like a create
    assert ws.client.delete("/v1/sla-policies/p1", headers=m).status_code == 204
    assert _policy(ws, "p3").status_code == 201
    _refused(ws.client.post("/v1/sla-policies/p1/revisions/1/restore", headers=m), 422,
             "too_many_policies", *words)
    # an import that would leave more changes nothing
    doc = {"deskflow": 1, "sla_policies": [{"name": "imported", **POLICY}]}
    _refused(ws.client.post("/v1/import", json=doc, headers=m), 422, "too_many_policies", *words)
    assert _names(ws, "/v1/sla-policies") == ["p0", "p2", "p3"]
    # one that deletes as many as it creates is not past it
    keep = [{"name": n, **POLICY} for n in ("p0", "p2")]
    doc = {"deskflow": 1, "sla_policies": [*keep, {"name": "imported", **POLICY}]}
    r = ws.client.post("/v1/import?missing=delete", json=doc, headers=m)
    assert r.status_code == 200, r.text
    assert _names(ws, "/v1/sla-policies") == ["imported", "p0", "p2"]


def _padded_policy(size: int) -> dict[str, Any]:
    """A valid policy whose definition is `size` bytes of compact JSON."""
    def policy(pad: str) -> dict[str, Any]:
        return {"name": "big", **POLICY,
                "conditions": {"all": [{"field": "subject", "op": "contains", "value": pad}]}}
    return policy("x" * (size - len(orjson.dumps(policy("")))))


def test_one_sla_policy_size(ws: Workspace) -> None:
    m = ws.h("manager")
    at = _padded_policy(MAX_POLICY_BYTES)
    assert len(orjson.dumps(at)) == MAX_POLICY_BYTES
    r = ws.client.post("/v1/sla-policies", json=at, headers=m)
    assert r.status_code == 201, r.text
    over = _padded_policy(MAX_POLICY_BYTES + 1)
    words = ("SLA policy size limit", f"{MAX_POLICY_BYTES} bytes", f"is {MAX_POLICY_BYTES + 1} bytes")
    _refused(ws.client.post("/v1/sla-policies", json={**over, "name": "bug"}, headers=m), 413,
             "policy_too_large", *words)
    _refused(ws.client.put("/v1/sla-policies/big", json=over, headers=m), 413,
             "policy_too_large", *words)
    doc = {"deskflow": 1, "sla_policies": [{**over, "name": "bug"}]}
    err = _refused(ws.client.post("/v1/import", json=doc, headers=m), 413, "policy_too_large", *words)
    assert err["details"][0]["path"] == "sla_policies[0]"
    assert _names(ws, "/v1/sla-policies") == ["big"]


def test_groups_per_workspace(ws: Workspace) -> None:
    m = ws.h("manager")
    for i in range(LIMIT):
        assert _group(ws, f"g{i}").status_code == 201
    words = ("group count limit", f"{LIMIT} groups per workspace", "DESKFLOW_MAX_GROUPS")
    _refused(_group(ws, "one-more"), 422, "too_many_groups", *words)
    _refused(_group(ws, "g0"), 409, "already_exists", "exists already")   # as before the limit
    r = ws.client.patch("/v1/groups/g0", json={"color": "#ff8800"}, headers=m)
    assert r.status_code == 200, r.text                          # changing one at the limit
    doc = {"deskflow": 1, "groups": [{"name": "imported"}]}
    _refused(ws.client.post("/v1/import", json=doc, headers=m), 422, "too_many_groups", *words)
    assert _names(ws, "/v1/groups") == ["g0", "g1", "g2"]
    assert ws.client.delete("/v1/groups/g1", headers=m).status_code == 204
    assert ws.client.post("/v1/import", json=doc, headers=m).status_code == 200
    assert _names(ws, "/v1/groups") == ["g0", "g2", "imported"]


def test_group_description_length(ws: Workspace) -> None:
    m = ws.h("manager")
    assert _group(ws, "g", description="d" * MAX_GROUP_DESCRIPTION).status_code == 201
    words = ("group description limit", f"{MAX_GROUP_DESCRIPTION:,} characters",
             f"is {MAX_GROUP_DESCRIPTION + 1:,} characters")
    over = "d" * (MAX_GROUP_DESCRIPTION + 1)
    _refused(_group(ws, "h", description=over), 422, "validation_failed", "description", *words)
    _refused(ws.client.patch("/v1/groups/g", json={"description": over}, headers=m), 422,
             "validation_failed", "description", *words)
    doc = {"deskflow": 1, "groups": [{"name": "h", "description": over}]}
    err = _refused(ws.client.post("/v1/import", json=doc, headers=m), 422, "validation_failed", *words)
    assert [d["path"] for d in err["details"]] == ["groups[0].description"]
    assert _names(ws, "/v1/groups") == ["g"]


# (create the i-th, list the names, how many exist before the workspace's own) per collection
Race = tuple[Callable[[Workspace, int], Any], Callable[[Workspace], list[str]], int, int]
RACES: dict[str, Race] = {
    "scripts": (lambda ws, i: _script(ws, f"r{i}"), lambda ws: _names(ws, "/v1/scripts"), 0, LIMIT),
    "secrets": (lambda ws, i: _secret(ws, f"R{i}"), lambda ws: _names(ws, "/v1/secrets"), 0, LIMIT),
    "keys": (lambda ws, i: _key(ws, f"r{i}"), lambda ws: _names(ws, "/v1/keys", "id"), 3, KEYS),
    "policies": (lambda ws, i: _policy(ws, f"r{i}"), lambda ws: _names(ws, "/v1/sla-policies"), 0, LIMIT),
    "groups": (lambda ws, i: _group(ws, f"r{i}"), lambda ws: _names(ws, "/v1/groups"), 0, LIMIT),
}


@pytest.mark.parametrize("kind", sorted(RACES))
def test_concurrent_creates_at_the_limit_leave_the_limit(ws: Workspace, kind: str) -> None:
    """20 creates at once through the API, one below the limit: exactly one is made, 19 are
    refused with the limit's 422, and the workspace holds exactly the limit. (Requests of the
    test client's threads seldom interleave between a count and its write: the store-level race
    below is the one that fails on a count read outside the transaction.)"""
    create, names, held, limit = RACES[kind]
    ws.h("developer"), ws.h("manager")   # the role keys exist before the race (3 with admin)
    for i in range(limit - 1 - held):
        assert create(ws, 100 + i).status_code == 201
    assert len(names(ws)) == limit - 1
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = sorted(r.status_code for r in pool.map(lambda i: create(ws, i), range(20)))
    assert codes == [201] + [422] * 19, codes
    assert len(names(ws)) == limit


StoreCreate = Callable[[Any, str, int], Awaitable[Any]]


async def _store_script(store: Any, w: str, i: int) -> Any:
    return await S.add_version(store, w, f"r{i}", RUN, None, created_by="k")


async def _store_version(store: Any, w: str, i: int) -> Any:
    return await S.add_version(store, w, "one", RUN, None, created_by="k")


async def _versions(store: Any, w: str) -> int:
    meta = await S.get_script(store, w, "one")
    return int(meta["latest"]) if meta else 0


async def _version_keys(store: Any, w: str, name: str = "s") -> set[str]:
    found = set()
    async for key in store.redis.scan_iter(match=K.script_version(w, name, 0)[:-1] + "*"):
        found.add(key.decode() if isinstance(key, bytes) else key)
    return found


async def _store_secret(store: Any, w: str, i: int) -> Any:
    return await S.put_secret(store, w, f"R{i}", "v")


async def _store_key(store: Any, w: str, i: int) -> Any:
    return await catalog.create_key(store, w, "viewer", f"r{i}")


async def _store_group(store: Any, w: str, i: int) -> Any:
    return await catalog.create_group(store, w, {"name": f"r{i}", "color": None})


# (create the i-th through the store module, how many the workspace holds, the limit)
STORE_RACES: dict[str, tuple[StoreCreate, Callable[[Any, str], Awaitable[int]], int]] = {
    "scripts": (_store_script, lambda store, w: store.redis.hlen(K.scripts(w)), LIMIT),
    "secrets": (_store_secret, lambda store, w: store.redis.hlen(K.secrets(w)), LIMIT),
    "keys": (_store_key, lambda store, w: store.redis.hlen(K.ws_keys(w)), KEYS),
    "groups": (_store_group, lambda store, w: store.redis.hlen(K.groups(w)), LIMIT),
}


@pytest.mark.anyio
@pytest.mark.parametrize("kind", sorted(STORE_RACES))
async def test_concurrent_store_creates_at_the_limit_leave_the_limit(settings: Settings,
                                                                     kind: str) -> None:
    """The same race on one event loop, where the 20 writers' round trips interleave (each reads
    the count before any writes): a count read outside the WATCH that writes lets them all in
    (seen: 22 scripts, secrets and groups where the limit is 3; 25 keys where it is 6)."""
    create, count, limit = STORE_RACES[kind]
    store = await open_store(dataclasses.replace(
        settings, max_scripts=LIMIT, max_script_versions=LIMIT, max_secrets=LIMIT, max_keys=KEYS,
        max_groups=LIMIT))
    try:
        ws, _ = await catalog.create_workspace(store, "race")   # (its admin key is one)
        w = ws["id"]
        held = await count(store, w)
        for i in range(limit - 1 - held):
            await create(store, w, 100 + i)
        assert await count(store, w) == limit - 1
        # a connection each first, as concurrent API requests hold: else the first writer's
        # round trips go on the one open connection while the others are still connecting
        await asyncio.gather(*(count(store, w) for _ in range(20)))
        results = await asyncio.gather(*(create(store, w, i) for i in range(20)),
                                       return_exceptions=True)
        refused = [r for r in results if isinstance(r, Unprocessable)]
        assert len(refused) == 19 and all(r.code == f"too_many_{kind}" for r in refused), results
        assert await count(store, w) == limit
    finally:
        await close_store(store)


@pytest.mark.anyio
async def test_concurrent_uploads_past_the_versions_kept(settings: Settings) -> None:
    """20 uploads of one script at once, past LIMIT versions: each gets its own number, the
    newest LIMIT are kept and no dropped version's key is left behind."""
    store = await open_store(dataclasses.replace(settings, max_script_versions=LIMIT))
    try:
        ws, _ = await catalog.create_workspace(store, "race")
        w = ws["id"]
        await asyncio.gather(*(S.get_script(store, w, "one") for _ in range(20)))
        results = await asyncio.gather(*(_store_version(store, w, i) for i in range(20)))
        assert sorted(r["version"] for r in results) == list(range(1, 21))
        meta = await S.get_script(store, w, "one")
        assert S.kept_versions(meta) == [18, 19, 20]
        assert await _version_keys(store, w, "one") == {K.script_version(w, "one", n) for n in (18, 19, 20)}
    finally:
        await close_store(store)


def test_a_workspaces_script_versions_stop_at_their_bytes(settings: Settings) -> None:
    """The kept versions of all scripts together at most max_script_bytes: an upload past it
    drops the same script's oldest unpinned versions, else 422 too_many_script_bytes; the
    counter follows drops and deletes (200 scripts x 100 versions x 64 KiB was 1.25 GiB)."""
    big = RUN + "# " + "x" * 10_000 + "\n"
    small = dataclasses.replace(settings, max_script_bytes=50_000)
    with TestClient(create_app(small)) as c:
        ws = Workspace(c)
        store = c.app_state["store"]

        def held() -> int:
            return int(c.portal.call(store.redis.get, K.script_bytes(ws.id)) or 0)

        def up(name: str) -> Any:
            return c.post("/v1/scripts", json={"name": name, "source": big}, headers=ws.h("developer"))

        for i in range(4):
            assert up(f"s{i}").status_code == 201
        one = held() // 4
        assert 10_000 < one < 11_000
        # a fifth script does not fit, and has no older versions to drop
        _refused(up("s4"), 422, "too_many_script_bytes", "DESKFLOW_MAX_SCRIPT_BYTES", "50000")
        # a new version of s0 fits by dropping s0's version 1
        assert up("s0").json()["version"] == 2
        assert _kept(ws, "s0") == [2] and held() == 4 * one
        # a pinned version is not dropped for room: refused
        rule = {"name": "pin", "enabled": True, "triggers": ["ticket.created"],
                "actions": [{"type": "run_script", "script": "s1", "version": 1}]}
        assert c.post("/v1/rules", json=rule, headers=ws.h("manager")).status_code == 201
        _refused(up("s1"), 422, "too_many_script_bytes", "pinned: 1")
        # a delete gives its bytes back
        assert c.delete("/v1/scripts/s2", headers=ws.h("developer")).status_code == 204
        assert held() == 3 * one
        assert up("s4").status_code == 201
        assert "sizes" not in c.get("/v1/scripts/s0", headers=ws.h()).json()
        assert all("sizes" not in s for s in c.get("/v1/scripts", headers=ws.h()).json()["items"])
