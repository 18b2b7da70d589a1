"""Framing between the pool and its workers: a 4-byte big-endian length, then one orjson document.

The worker reads and writes raw file descriptors (not sys.stdin/stdout, which point at /dev/null
there, so nothing a script prints can forge a frame). Frames are capped so neither side can be
made to allocate without bound.
"""
from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

import orjson

HEADER = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024


class ChannelClosed(Exception):
    pass


def encode(message: Any) -> bytes:
    body = orjson.dumps(message)
    if len(body) > MAX_FRAME:
        raise ValueError("frame too large")
    return HEADER.pack(len(body)) + body


# -- worker side (blocking) ----------------------------------------------------------------------

def read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise ChannelClosed()
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> Any:
    (size,) = HEADER.unpack(read_exact(fd, HEADER.size))
    if size > MAX_FRAME:
        raise ChannelClosed()
    return orjson.loads(read_exact(fd, size))


def write_frame(fd: int, message: Any) -> None:
    view = memoryview(encode(message))
    while view:
        written = os.write(fd, view)
        view = view[written:]


# -- pool side (asyncio) --------------------------------------------------------------------------

async def read_frame_async(reader: asyncio.StreamReader) -> Any:
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if size > MAX_FRAME:
        raise ChannelClosed()
    return orjson.loads(await reader.readexactly(size))
