"""One question and answer over a worker process's pipe, within a wait: what the check processes
(server/checkpool.py) and the backtest processes (server/backtest_proc.py) both ask."""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["NoAnswer", "exchange"]


class NoAnswer(Exception):
    """The process did not answer within the wait."""


def exchange(conn: Connection, msg: tuple[Any, ...], wait: float) -> tuple[Any, ...]:
    """Send `msg` and return the answer; NoAnswer when none came within `wait` seconds of the
    call (a send that blocked on a full pipe counts against it). Blocking: run it in a thread."""
    started = time.monotonic()
    conn.send(msg)
    if not conn.poll(max(0.0, wait - (time.monotonic() - started))):
        raise NoAnswer
    reply: tuple[Any, ...] = conn.recv()
    return reply
