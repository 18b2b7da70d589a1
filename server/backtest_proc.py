"""Backtest worker processes: a backtest's checking (server/backtest_check.py) runs here, not in
the API process, so a maximal backtest costs the API process's event loop -- which serves every
other workspace -- its reads and a few pipe messages, not the CPU of 1000 rebuilt events and their
regexes (pure-Python checks hold the GIL; in a thread they stalled other workspaces' requests).

    job = await Job.start(rule, replaces, calendars, budget_s)   # a process from the pool
    summaries = await job.parse(raws)        # records parsed there; what the reads need comes back
    tally = await job.check(reads, fired_defs)   # rebuilt and checked there; the tally so far
    job.finish()                             # the process goes back to the pool (or is killed)

Each process serves one backtest at a time (the API allows one per workspace and MAX_CONCURRENT
per process, server/api/backtest.py); idle processes are kept, at most POOL_SIZE, so a backtest
does not pay an interpreter's start. Bounds: the process stops checking at the backtest's
deadline and answers what it checked (`truncated`); a process that has not answered GRACE_S past
the deadline (a pathological rule, a stuck child) is killed, and the backtest answers the last
tally it sent, truncated. The children run at a lower CPU priority (os.nice CHILD_NICE), die with
the API process (they read until their pipe closes; daemonic), and are started with "spawn" (a
fresh interpreter: no fork of a threaded server).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from server.pipes import NoAnswer, exchange

__all__ = ["Job", "BacktestProcessError", "POOL_SIZE", "GRACE_S", "CHILD_NICE"]

log = logging.getLogger("deskflow.backtest")

POOL_SIZE = 2      # idle backtest processes kept (the API runs at most 4 backtests at once)
GRACE_S = 1.0      # past the deadline, how long a silent process lives before it is killed
CHILD_NICE = 10    # the children's niceness: the API and workers come first on a busy machine

_CTX = multiprocessing.get_context("spawn")
_idle: list[tuple[Any, Connection]] = []
_lock = threading.Lock()


class BacktestProcessError(Exception):
    """The backtest process died or did not answer in time (it has been killed)."""


# -- the child ----------------------------------------------------------------------------------

def _serve(conn: Connection) -> None:
    """A backtest process: jobs one after another until the pipe closes."""
    try:
        os.nice(CHILD_NICE)
    except OSError:
        pass
    state: dict[str, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(_handle(state, msg))
        except (BrokenPipeError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 -- a bug here answers, never hangs the API
            log.exception("backtest process: %s failed", msg[0] if msg else msg)
            state.clear()
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _handle(state: dict[str, Any], msg: tuple[Any, ...]) -> tuple[Any, ...]:
    from server.backtest_check import Checker, Tally, parse_runs

    op = msg[0]
    if op == "start":
        _, rule, replaces, calendars, budget_s = msg
        state.clear()
        state.update(checker=Checker(rule, replaces, calendars), tally=Tally(), runs=[],
                     fired_defs={}, deadline=time.monotonic() + budget_s)
        return ("ok",)
    if op == "parse":
        state["runs"] = parse_runs(msg[1], state["tally"])
        return ("runs", [{"id": r.get("id"), "ticket_id": r.get("ticket_id"),
                          "matched": r.get("matched"), "rule_revisions": r.get("rule_revisions")}
                         for r in state["runs"]])
    if op == "check":
        _, reads, fired_defs = msg
        state["fired_defs"].update(fired_defs)
        tally = state["tally"]
        state["checker"].check(state["runs"], reads, state["fired_defs"], tally, state["deadline"])
        state["runs"] = []
        return ("tally", tally.as_dict())
    raise ValueError(f"unknown message {op!r}")


# -- the parent ---------------------------------------------------------------------------------

def _spawn() -> tuple[Any, Connection]:
    mine, theirs = _CTX.Pipe()
    proc = _CTX.Process(target=_serve, args=(theirs,), name="deskflow-backtest", daemon=True)
    proc.start()
    theirs.close()
    return proc, mine


def _take() -> tuple[Any, Connection]:
    with _lock:
        while _idle:
            proc, conn = _idle.pop()
            if proc.is_alive():
                return proc, conn
            conn.close()
    return _spawn()


def _kill(proc: Any, conn: Connection) -> None:
    proc.kill()
    proc.join(5)
    conn.close()
    if hasattr(proc, "close") and not proc.is_alive():
        proc.close()


class Job:
    """One backtest's conversation with its process."""

    def __init__(self, proc: Any, conn: Connection, deadline: float) -> None:
        self._proc, self._conn, self.deadline = proc, conn, deadline
        self.tally: dict[str, Any] | None = None   # the last tally the process sent
        self._done = False

    @classmethod
    async def start(cls, rule: dict[str, Any], replaces: str | None, calendars: Any,
                    budget_s: float) -> Job:
        proc, conn = await asyncio.to_thread(_take)
        job = cls(proc, conn, time.monotonic() + budget_s)
        # the interpreter start is the pool's, not the budget's: a cold process gets 5 s more,
        # and the budget counts from the process's reply (its own deadline is set before it)
        await job._ask(("start", rule, replaces, calendars, budget_s), extra_s=5.0)
        job.deadline = time.monotonic() + budget_s
        return job

    async def parse(self, raws: list[Any]) -> list[dict[str, Any]]:
        reply = await self._ask(("parse", raws))
        return list(reply[1])

    async def check(self, reads: dict[str, Any],
                    fired_defs: dict[tuple[str, int | None], dict[str, Any]]) -> dict[str, Any]:
        reply = await self._ask(("check", reads, fired_defs))
        self.tally = dict(reply[1])
        return self.tally

    def finish(self) -> None:
        """Back to the pool (or killed, when the pool is full or the job failed)."""
        if self._done:
            return
        self._done = True
        with _lock:
            if self._proc.is_alive() and len(_idle) < POOL_SIZE:
                _idle.append((self._proc, self._conn))
                return
        _kill(self._proc, self._conn)

    def kill(self) -> None:
        self._done = True
        _kill(self._proc, self._conn)

    async def _ask(self, msg: tuple[Any, ...], extra_s: float = 0.0) -> tuple[Any, ...]:
        wait = max(0.0, self.deadline - time.monotonic()) + GRACE_S + extra_s
        try:
            reply: tuple[Any, ...] = await asyncio.wait_for(asyncio.to_thread(exchange, self._conn, msg, wait),
                                                            wait + GRACE_S)
        except (asyncio.TimeoutError, EOFError, OSError, NoAnswer) as exc:
            await asyncio.to_thread(self.kill)
            raise BacktestProcessError(f"the backtest process did not answer {msg[0]!r} in time "
                                       f"({type(exc).__name__})") from exc
        if reply[0] == "error":
            await asyncio.to_thread(self.kill)
            raise BacktestProcessError(f"the backtest process failed: {reply[1]}")
        return reply
