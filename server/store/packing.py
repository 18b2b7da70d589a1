"""Commands packed by hiredis' C packer on redis-py's asyncio connections, as on its sync ones.

Why: redis-py picks hiredis' `pack_command` for its sync connections when hiredis is installed
(HiredisRespSerializer), but its asyncio connections always pack in Python (redis-py issue
#4176; the fix, PR #4191, is not released). The worker sends every event's commit through
them, and a py-spy profile of bench/apply_profile.py had `pack_command` at ~10% of the worker's
samples. `install()` gives the asyncio connections the sync path's packer: the command name split
the same way, memoryviews and bytearrays as bytes, and anything hiredis refuses packed by
redis-py's own code, so the bytes sent are those redis-py would send
(tests/server/test_packing.py compares them). Installed once, by server/store/connect.py; a
redis-py that packs with hiredis itself, or a hiredis without `pack_command`, is left as it is.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.connection import AbstractConnection

__all__ = ["install", "installed"]

_python_pack = AbstractConnection.pack_command
try:
    from hiredis import pack_command as _pack
except ImportError:   # install() then leaves redis-py's packer in place
    _pack = None  # type: ignore[assignment]


def _hiredis_pack(self: Any, *args: Any) -> list[bytes]:
    name = args[0]
    if isinstance(name, str):
        if " " in name:
            args = (*name.encode().split(), *args[1:])
    elif isinstance(name, (bytes, bytearray)) and b" " in name:
        args = (*bytes(name).split(), *args[1:])
    try:   # the common case as it comes: hiredis packs a memoryview as its bytes, as redis-py does
        return [_pack(args)]
    except TypeError:
        pass
    # a bytearray (hiredis refuses it) as bytes; per argument, so only for the commands that have
    # one (the commit's EVAL has ~40 arguments: converting each was 3% of a worker's CPU)
    plain: Any = tuple(bytes(a) if isinstance(a, bytearray) else a for a in args)
    try:
        return [_pack(plain)]
    except TypeError:   # a type hiredis does not pack: redis-py's own packer (and its errors)
        return _python_pack(self, *args)


def installed() -> bool:
    return AbstractConnection.pack_command is _hiredis_pack


def install() -> bool:
    """Use hiredis' packer on every asyncio connection; whether it is in use."""
    try:
        import hiredis
    except ImportError:
        return False
    if not hasattr(hiredis, "pack_command") or hasattr(AbstractConnection, "_construct_command_packer"):
        return False   # (the second: redis-py chooses a packer for asyncio connections itself)
    if AbstractConnection.pack_command is _python_pack:
        AbstractConnection.pack_command = _hiredis_pack  # type: ignore[method-assign]
    return installed()
