"""The asyncio connections pack commands with hiredis (server/store/packing.py): the same bytes
redis-py's own packer makes, for every kind of argument the store sends."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from server.store import packing

ARGS = st.one_of(st.text(), st.binary(), st.integers(min_value=-(2**63), max_value=2**64),
                 st.floats(allow_nan=False), st.binary().map(memoryview), st.binary().map(bytearray))


def _python(args: tuple[Any, ...]) -> bytes:
    return b"".join(bytes(c) for c in packing._python_pack(Connection(), *args))


def _ours(args: tuple[Any, ...]) -> bytes:
    return b"".join(bytes(c) for c in packing._hiredis_pack(Connection(), *args))


def test_the_store_packs_with_hiredis() -> None:
    import server.store.connect  # noqa: F401 -- installs it
    assert packing.installed()
    assert Connection().pack_command("SET", "k", "v") == [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"]


@given(st.sampled_from(["SET", "ZADD", "EVALSHA", "CONFIG GET", "XADD", b"CLIENT SETNAME", b"HSET"]),
       st.lists(ARGS, max_size=6))
def test_the_bytes_are_redis_pys(name: Any, args: list[Any]) -> None:
    assert _ours((name, *args)) == _python((name, *args))


def test_what_hiredis_refuses_redis_py_refuses_the_same_way() -> None:
    import pytest
    from redis.exceptions import DataError

    for bad in (True, None, object()):
        with pytest.raises(DataError):
            _python(("SET", "k", bad))
        with pytest.raises(DataError):
            _ours(("SET", "k", bad))
