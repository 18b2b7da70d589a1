"""Secrets at rest: sealed with AES-GCM bound to workspace and name, keys from the environment."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from server.settings import Settings
from server.store import keys as K
from server.store import scripts as S
from server.store.connect import close_store, open_store
from server.store.sealing import Sealer, SealingError, new_key, parse_keys

pytestmark = pytest.mark.anyio


async def test_values_in_the_store_are_sealed_and_open_for_the_worker(settings: Settings) -> None:
    store = await open_store(dataclasses.replace(settings, secrets_key=new_key()))
    try:
        await S.put_secret(store, "w1", "CRM_TOKEN", "hunter2-token")
        raw = await store.redis.hget(K.secrets("w1"), "CRM_TOKEN")
        assert raw.startswith("v1:") and "hunter2" not in raw
        dump = [await store.redis.dump(k) for k in await store.redis.keys("*")]
        assert all(b"hunter2" not in (d or b"") for d in dump)
        assert await S.get_secrets(store, "w1") == {"CRM_TOKEN": "hunter2-token"}
        # two seals of one value differ (fresh nonce): equal secrets are not visible as equal
        await S.put_secret(store, "w1", "OTHER", "hunter2-token")
        assert await store.redis.hget(K.secrets("w1"), "OTHER") != raw
    finally:
        await close_store(store)


async def test_a_value_moved_to_another_workspace_or_name_does_not_open(settings: Settings,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    store = await open_store(dataclasses.replace(settings, secrets_key=new_key()))
    try:
        await S.put_secret(store, "victim", "CRM_TOKEN", "victim-token")
        raw = await store.redis.hget(K.secrets("victim"), "CRM_TOKEN")
        await store.redis.hset(K.secrets("attacker"), "CRM_TOKEN", raw)
        await store.redis.hset(K.secrets("victim"), "RENAMED", raw)
        assert await S.get_secrets(store, "attacker") == {}
        assert await S.get_secrets(store, "victim") == {"CRM_TOKEN": "victim-token"}
        assert "does not open" in caplog.text and "victim-token" not in caplog.text
    finally:
        await close_store(store)


async def test_rotation_and_values_from_before_encryption(settings: Settings) -> None:
    old, new = new_key(), new_key()
    store = await open_store(dataclasses.replace(settings, secrets_key=old))
    try:
        await S.put_secret(store, "w", "A", "sealed-with-old")
        await store.redis.hset(K.secrets("w"), "LEGACY", "plain-from-v0")
        store.sealer = Sealer(parse_keys(f"{new},{old}"))          # new key first, old kept
        assert await S.get_secrets(store, "w") == {"A": "sealed-with-old", "LEGACY": "plain-from-v0"}
        await S.put_secret(store, "w", "LEGACY", "plain-from-v0")   # written again: sealed, new key
        raw = await store.redis.hget(K.secrets("w"), "LEGACY")
        assert raw.startswith("v1:") and Sealer(parse_keys(new)).unseal("w", "LEGACY", raw) == "plain-from-v0"
        store.sealer = Sealer(parse_keys(new))                      # old key dropped too early
        assert await S.get_secrets(store, "w") == {"LEGACY": "plain-from-v0"}
    finally:
        await close_store(store)


@pytest.mark.parametrize("text", ["", "not base64 !!", "c2hvcnQ", f"{new_key()},abc"],
                         ids=["empty", "not base64", "short", "a good key then a bad one"])
def test_bad_key_settings_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(SealingError) as exc:
        parse_keys(text)
    assert "DESKFLOW_SECRETS_KEY" in str(exc.value)


def test_key_file_is_created_private_once_and_reused(tmp_path: Path) -> None:
    path = str(tmp_path / "keys" / "k")
    os.makedirs(os.path.dirname(path))
    one = Sealer.from_settings(None, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    two = Sealer.from_settings(None, path)
    assert two.unseal("w", "n", one.seal("w", "n", "v")) == "v"
    with pytest.raises(SealingError):
        Sealer.from_settings(new_key(), None).unseal("w", "n", one.seal("w", "n", "v"))


def test_from_env_reads_the_key_and_the_rate_limit() -> None:
    key = new_key()
    s = Settings.from_env({"DESKFLOW_SECRETS_KEY": key})
    assert s.secrets_key == key and s.secrets_key_file == "deskflow-secrets.key"
    assert s.rate_limit_per_s == 200
    assert Settings.from_env({"DESKFLOW_RATE_LIMIT": "0"}).rate_limit_per_s == 0
