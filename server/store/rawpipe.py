"""A coalesced round trip's replies read straight from hiredis, without redis-py's per-reply steps.

Why: the worker's loads, commits and acks share round trips (store/coalesce.py), about five
replies an event. redis-py's pipeline reads each reply through `Connection.read_response`: a
timeout context (a loop timer armed and cancelled), the host's name formatted for an error that
does not happen, the retry wrapper and the reply's callback lookup: a pipeline of 20 GETs cost
26-28 us of CPU a command, queueing included, and 11 us read this way (bench/RESULTS.md, apply,
"Session 9"). `execute` sends the pipeline's command stack as redis-py packs it, reads every
reply through the connection's own hiredis parser under ONE timeout for the whole round trip,
and applies the client's response callbacks as redis-py's `parse_response` does, so callers get
the same values and the same error objects (tests/server/test_rawpipe.py compares them).

Only where it is the same thing: a plain redis-py TCP or Unix-socket connection with the hiredis
parser (RESP2 or RESP3: the parser's own read handles push replies, and the client's callbacks
are those of its protocol), and commands with no option that changes how a reply is read (NEVER_DECODE).
Anything else -- fakeredis, the cluster's pipeline (store/cluster_pipeline.py routes each command
to its slot's node), another parser -- runs `pipe.execute`.
A connection that fails mid-way is dropped and the round trip goes again through
`pipe.execute`, whose retry is what a coalesced round trip had before: every command sent again
(the commit's check-and-set finds its own write then and says conflict; store/tickets.py).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from redis.asyncio import connection as _conn
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["execute", "usable"]

try:
    from redis._parsers.hiredis import _AsyncHiredisParser
except ImportError:   # no such parser in this redis-py: every round trip goes through pipe.execute
    _AsyncHiredisParser = None  # type: ignore[assignment,misc]

# the connection classes whose send and read this module repeats (subclasses may change either)
_PLAIN = tuple(c for c in (getattr(_conn, "Connection", None),
                           getattr(_conn, "UnixDomainSocketConnection", None)) if c is not None)
# options of a queued command that change how its reply is read or parsed
_READ_OPTIONS = frozenset({"never_decode", "NEVER_DECODE"})
_EMPTY = "EMPTY_RESPONSE"


def usable(pipe: Any) -> bool:
    """Whether `pipe` may go through `execute`'s reads: a non-transactional redis-py pipeline of a
    plain connection pool -- that class itself: a subclass may send elsewhere than its pool (the
    cluster's NodesPipeline holds a placeholder pool and routes each command to its slot's node)."""
    pool = getattr(pipe, "connection_pool", None)
    return (_AsyncHiredisParser is not None and type(pipe) is Pipeline
            and not getattr(pipe, "is_transaction", True)
            and not getattr(pipe, "explicit_transaction", False) and not pipe.scripts
            and getattr(pool, "connection_class", None) in _PLAIN)


async def execute(pipe: Any) -> list[Any]:
    """The replies of `pipe`'s queued commands, as `pipe.execute(raise_on_error=False)` gives them:
    a failed command's reply is its ResponseError, the others' parsed by the client's callbacks."""
    stack = pipe.command_stack
    if not stack:
        return []
    if not usable(pipe) or any(_READ_OPTIONS.intersection(opts) for _, opts in stack):
        return list(await pipe.execute(raise_on_error=False))
    pool = pipe.connection_pool
    conn = await pool.get_connection()
    try:
        parser = getattr(conn, "_parser", None)
        if type(conn) not in _PLAIN or not isinstance(parser, _AsyncHiredisParser):
            replies = None
        else:
            replies = await _round_trip(conn, parser, [args for args, _ in stack])
    finally:
        await pool.release(conn)
    if replies is None:   # not what this module reads, or the connection failed: redis-py's way
        return list(await pipe.execute(raise_on_error=False))
    out = []
    for (args, opts), reply in zip(stack, replies, strict=True):
        value = _parsed(pipe, args[0], opts, reply)
        out.append(await value if inspect.isawaitable(value) else value)
    return out


async def _round_trip(conn: Any, parser: Any, commands: list[Any]) -> list[Any] | None:
    """Send every command and read every reply (None: the connection failed and was dropped)."""
    try:
        async with asyncio.timeout(conn.socket_timeout):
            if not conn.is_connected:
                await conn.connect()
            conn._writer.writelines(conn.pack_commands(commands))
            await conn._writer.drain()
            read = parser.read_response
            replies = [await read() for _ in commands]
    except (OSError, TimeoutError, RedisConnectionError, RedisTimeoutError):
        await conn.disconnect(nowait=True)
        return None
    except BaseException:   # cancelled mid-way: replies may be left unread on the socket
        await conn.disconnect(nowait=True)
        raise
    if conn.health_check_interval:
        conn.next_health_check = asyncio.get_running_loop().time() + conn.health_check_interval
    return replies


def _parsed(pipe: Any, name: Any, options: dict[str, Any], reply: Any) -> Any:
    """One reply as redis-py's `parse_response` returns it (an error reply as its exception), or
    the awaitable an async callback returns for it (no coroutine of its own for each reply: a
    round trip has ~5 replies an event, and their callbacks are plain functions)."""
    if isinstance(reply, ResponseError):
        return options[_EMPTY] if _EMPTY in options else reply
    callback = pipe.response_callbacks.get(name)
    if callback is None:
        return reply
    if options:
        options = {k: v for k, v in options.items() if k not in (_EMPTY, "keys")}
    return callback(reply, **options)
