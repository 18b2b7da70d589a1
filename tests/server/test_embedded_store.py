"""The embedded store's managed redis-server: how it opens, what it refuses, what it carries over
(server/store/embedded.py). The crash test is tests/server/test_embedded_crash.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from server.settings import Settings
from server.store import keys as K
from server.store.connect import close_store, open_store
from server.store.embedded import EmbeddedServerError, find_server_binary

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(find_server_binary() is None, reason="no redis-server binary")]


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_file=str(tmp_path / "data.json"), partitions=1, **kw)  # type: ignore[arg-type]


async def test_it_runs_on_a_managed_server_that_keeps_pending_entries(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = await open_store(settings)
    assert store.server is not None and not store.embedded
    assert "append-only file" in store.description
    await store.redis.xgroup_create(K.stream(0), K.GROUP, id="0", mkstream=True)
    await store.redis.xadd(K.stream(0), {"n": "1"})
    await store.redis.xreadgroup(K.GROUP, "a", {K.stream(0): ">"}, count=1)
    await store.redis.set("df:x", "1", ex=100)
    await close_store(store)
    store = await open_store(settings)
    try:  # a delivered, unacknowledged entry is still pending: XAUTOCLAIM takes it over
        assert (await store.redis.xpending(K.stream(0), K.GROUP))["pending"] == 1
        assert 0 < await store.redis.ttl("df:x") <= 100
        assert (await store.redis.config_get("appendfsync"))["appendfsync"] == "everysec"
    finally:
        await close_store(store)


async def test_a_second_process_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    store = await open_store(_settings(tmp_path))
    try:
        code = ("import asyncio\nfrom server.settings import Settings\n"
                "from server.store.connect import open_store\n"
                f"asyncio.run(open_store(Settings(data_file={str(tmp_path / 'data.json')!r})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode != 0
        assert "is in use by another deskflow process" in out.stderr
        assert await store.redis.ping()  # the running one was left alone
    finally:
        await close_store(store)


async def test_a_server_left_by_a_dead_owner_is_stopped_and_the_data_kept(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = await open_store(settings)
    await store.redis.set("df:kept", "yes")
    leftover = store.server.process
    # the owner "dies": its lock goes, its server keeps running (as if SIGTERM had not come yet)
    os.close(store.server._lock_fd)
    store.server._lock_fd = None
    store.server.process = None
    await store.redis.aclose()
    again = await open_store(settings)
    try:
        assert leftover.wait(30) == 0  # stopped with SIGTERM: a clean shutdown
        assert await again.redis.get("df:kept") == "yes"
    finally:
        await close_store(again)


async def test_an_old_json_snapshot_is_imported_once(tmp_path: Path) -> None:
    snap = {"version": 1, "keys": [{"k": "df:old", "t": "string", "ttl": -1, "v": "1"}]}
    (tmp_path / "data.json").write_bytes(orjson.dumps(snap))
    store = await open_store(_settings(tmp_path))
    try:
        assert await store.redis.get("df:old") == "1"
    finally:
        await close_store(store)
    assert not (tmp_path / "data.json").exists() and (tmp_path / "data.json.imported").exists()


async def test_a_binary_that_is_missing_falls_back_to_fakeredis(tmp_path: Path) -> None:
    store = await open_store(_settings(tmp_path, embedded_server=str(tmp_path / "no-such")))
    try:
        assert store.embedded and store.server is None
    finally:
        await close_store(store)


async def test_a_torn_last_record_is_dropped_at_open(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = await open_store(settings)
    await store.redis.set("df:a", "1")
    pid = store.server.process.pid
    os.kill(pid, signal.SIGKILL)  # no shutdown: the AOF is as the last write left it
    store.server.process.wait(30)
    await store.redis.aclose()
    store.server.process = None
    await store.server.stop()
    aof = sorted([*(tmp_path / "data").glob("appendonlydir/*.incr.aof"),
                  *(tmp_path / "data").glob("appendonly.aof")])[-1]  # Redis 7+ / 6
    with open(aof, "ab") as fh:  # a command cut off in the middle, as a kill mid-write leaves it
        fh.write(b"*3\r\n$3\r\nSET\r\n$4\r\ndf:b\r\n$5\r\n12")
    store = await open_store(settings)
    try:
        assert await store.redis.get("df:a") == "1" and await store.redis.get("df:b") is None
    finally:
        await close_store(store)
