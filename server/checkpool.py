"""Check processes: the compile-time checks of what tenants write (server/checkwork.py) run here,
off the API process, when they are big.

Why: checking a rule compiles it, and 300 regexes of ~770 characters are about a second of re's
Python parser. In a thread of the API process that still held the GIL the event loop needs: another
workspace's p99 was 134-174 ms while one workspace wrote such rules (1,050 ms on the loop itself;
tests/server/test_tenant_isolation.py). In a process of its own it costs the loop a pipe message.

    checks = CheckPool(processes=2)              # the app's lifespan: one per API process
    problems = await checks.run(workspace, "rule", rule, "", cal)   # OPS["rule"](rule, "", cal)
    await checks.aclose()                         # every check process stopped (and reaped)

Bounds, each named in its error (never a 500):

* an input of at most FAST_BYTES (as compact JSON) is checked right here, on the loop: the
  common small rule pays no process hop, and its worst case is about 20 ms (re's parser, ~5 ms
  a 1,000-character pattern). Not a dry run that names a regex or business-time condition
  (SLOW_OPS): it runs the rule, and its size does not bound that -- a 1.4 KiB rule of 18
  backtracking regexes spends the whole regex budget, 250 ms, on the loop every workspace's
  requests wait on (another workspace's p99 was 552-578 ms while one workspace ran such dry
  runs: tests/server/test_tenant_isolation.py). Such a dry run goes to a process whatever its
  size;
* an input over MAX_CHECK_BYTES never crosses (413 check_too_large); the request body limit
  (1 MiB) and the stored policies' limits keep real ones well under it;
* a check gets CHECK_TIMEOUT_S seconds of CPU time in its process (CPU, not wall time: the
  process runs at a lower priority, and a loaded machine must not turn a valid rule into an
  error), then stops with a 422 check_timeout; one that has not answered in WALL_FACTOR times
  that (stuck, or starved) is killed and replaced, with the same answer. Its start (the
  interpreter's imports, about a second) is not counted;
* a workspace holds at most `per_workspace` processes at once; its further checks wait in its
  own queue (at most MAX_WAITING, for at most QUEUE_TIMEOUT_S, else 503 checks_busy with
  Retry-After) while other workspaces' checks go first, round-robin (sandbox/shares.py);
* the pool is elastic: `processes` is what it keeps, MAX_PROCESSES what it may hold at once. A
  check of a workspace under its share that finds every process held by other workspaces starts
  another (Shares' `grow`) instead of waiting; an extra process idle for RETIRE_S is stopped.
  Why: with a fixed two, two workspaces whose imports each ran to CHECK_TIMEOUT_S (10 s of CPU at
  CHILD_NICE, 15-40 s of wall time on a loaded machine) held both, and a third workspace's
  ordinary big-rule save waited for one of them, then failed 503 past QUEUE_TIMEOUT_S
  (tests/server/test_checkpool.py test_two_workspaces_..._do_not_hold_a_third: 16.1 and 19.6 s
  at load 2-3). While two workspaces or more hold every process, a spare is started at once, so
  the third finds one ready and waits its own CPU share only (0.5 and 1.0 s, the same run; a
  start is 1.5 s at load 3, 6.5 s at load 12, and is waited for only when the spare is taken).
  Preempting the holders (SIGSTOP) was the other way: it costs no memory, but a stopped check
  still holds its process and its pipe, and its CPU limit must then be kept across stops; a
  process is ~70 MB of RSS (the regex and rules modules), so MAX_PROCESSES (6) bounds an API
  process's checks at ~420 MB, and past it the fixed pool's waits come back (docs/api.md);
* a process that dies is a 503 check_unavailable; the next check starts a fresh one.

The worker's rule cache keeps a pool of its own (server/rulecache.py) for CPython's compile of a
big rule bucket's generated source (op "bucket_code"), one C call that holds the GIL for up to a
second at the rule limits.

The processes are started on the first check that needs one (tests and API processes that never
see a big rule start none), with "spawn" (a fresh interpreter: no fork of a threaded server), at a
lower CPU priority (CHILD_NICE), and die with the API process: they read until their pipe closes,
and on Linux the kernel kills them when it exits (PR_SET_PDEATHSIG), so a killed API leaves no
orphan behind.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import re
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

import orjson

from sandbox.shares import Shares
from server.checkwork import OPS
from server.errors import ApiError, PayloadTooLarge, Unprocessable
from server.pipes import NoAnswer, exchange

__all__ = ["CheckPool", "CheckTimeout", "ChecksBusy", "CheckUnavailable", "FAST_BYTES",
           "MAX_CHECK_BYTES", "CHECK_TIMEOUT_S", "WALL_FACTOR", "QUEUE_TIMEOUT_S", "MAX_WAITING", "CHILD_NICE",
           "START_S", "SLOW_OPS", "MAX_PROCESSES", "RETIRE_S", "input_size", "slow_input"]

log = logging.getLogger("deskflow.checks")

FAST_BYTES = 4 * 1024              # inputs up to this size are checked here (see SLOW_OPS)
MAX_CHECK_BYTES = 8 * 1024 * 1024  # no input over this size is sent to a check process
CHECK_TIMEOUT_S = 10.0             # a check's CPU time in its process (a 1 MiB rule: ~3.5 s)
WALL_FACTOR = 4                    # ... and past this many times it in wall time, it is killed
QUEUE_TIMEOUT_S = 30.0             # a check's wait for a process of its workspace's share
MAX_WAITING = 8                    # checks of one workspace waiting at once; more are refused
CHILD_NICE = 10                    # the API's loop and the workers come first on a busy machine
START_S = 60.0                     # a process's start (imports) on a loaded machine
MAX_PROCESSES = 6                  # check processes of one API process at once (~70 MB each)
RETIRE_S = 30.0                    # an extra process idle this long is stopped
# Condition ops whose evaluation a small input does not bound (rules/ruleset.py's needs_thread
# names the same ones for the worker's passes): a dry run that names one never runs on the loop.
SLOW_OPS = frozenset({"matches", "older_than_business", "newer_than_business"})
_SLOW = re.compile(b'"op":"(?:' + b"|".join(op.encode() for op in sorted(SLOW_OPS)) + b')"')

_CTX = multiprocessing.get_context("spawn")
_PR_SET_PDEATHSIG = 1


class CheckTimeout(Unprocessable):
    code = "check_timeout"


class ChecksBusy(ApiError):
    status, code = 503, "checks_busy"


class CheckUnavailable(ApiError):
    status, code = 503, "check_unavailable"


# -- the child ----------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """Ask Linux to kill this process when the thread that started it ends (the API process's
    loop thread: the pool starts processes there, never from a pool thread)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class _OverTime(BaseException):
    """The check used its CPU time (a BaseException: no `except Exception` of a check stops it)."""


def _over_time(signum: int, frame: Any) -> None:
    raise _OverTime


def _serve(conn: Connection, parent: int) -> None:
    """A check process: checks one after another until the pipe closes."""
    _die_with_parent()
    if os.getppid() != parent:   # the parent was gone before the death signal was asked for
        return
    try:
        os.nice(CHILD_NICE)
    except OSError:
        pass
    signal.signal(signal.SIGVTALRM, _over_time)
    conn.send(("ready",))
    while True:
        try:
            op, args, cpu_s = conn.recv()
        except (EOFError, OSError):
            return
        try:
            signal.setitimer(signal.ITIMER_VIRTUAL, cpu_s)
            try:
                reply: tuple[Any, ...] = ("ok", OPS[op](*args))
            finally:
                signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        except _OverTime:
            reply = ("timeout",)
        except Exception as exc:  # noqa: BLE001 -- a bug answers (a 503), never hangs the API
            log.exception("check process: %s failed", op)
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


# -- the parent ---------------------------------------------------------------------------------

class _Slot:
    """One of the pool's places: a check process once one has been started in it."""

    def __init__(self) -> None:
        self.proc: Any = None
        self.conn: Connection | None = None
        self.used = time.monotonic()    # when its last check ended (an extra retires by it)
        self.starting: asyncio.Task[None] | None = None   # a spare's start under way

    def stop(self, kill: bool) -> None:
        """End the process: close its pipe (it exits at once when idle) or kill it; reap it."""
        proc, conn, self.proc, self.conn = self.proc, self.conn, None, None
        if kill and proc is not None:
            proc.kill()    # first: a thread waiting on the pipe then reads its end, not a hang
        if conn is not None:
            conn.close()
        if proc is None:
            return
        proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)
        if not proc.is_alive():
            proc.close()


def input_size(args: tuple[Any, ...]) -> int:
    """An input's size as compact JSON (what the fast path and MAX_CHECK_BYTES measure)."""
    try:
        return len(orjson.dumps(args))
    except TypeError:   # a YAML document's dates, say: measured as what is sent
        return len(pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL))


def slow_input(args: tuple[Any, ...]) -> bool:
    """Whether a (small) input names a SLOW_OPS op: found in its compact JSON by a C-speed
    search, where a quote inside a string is escaped, so a string's text never looks like an
    `op` key. Over-collecting (an event's own `op` key) only sends a check to a process."""
    return _SLOW.search(orjson.dumps(args, default=str)) is not None


class CheckPool:
    """Check processes for one API process's event loop (see the module docstring)."""

    def __init__(self, processes: int = 2, *, per_workspace: int = 1,
                 timeout_s: float = CHECK_TIMEOUT_S, queue_timeout_s: float = QUEUE_TIMEOUT_S,
                 max_waiting: int = MAX_WAITING, fast_bytes: int = FAST_BYTES,
                 max_processes: int = MAX_PROCESSES, retire_s: float = RETIRE_S,
                 max_bytes: int | None = None) -> None:
        self.processes, self.retire_s, self.max_bytes = processes, retire_s, max_bytes
        self.max_processes = max(processes, max_processes)
        self.timeout_s, self.queue_timeout_s, self.fast_bytes = timeout_s, queue_timeout_s, fast_bytes
        self.per_workspace = max(1, min(per_workspace, processes)) if processes > 0 else 1
        self._slots = [_Slot() for _ in range(processes)]
        self._shares: Shares[_Slot] = Shares(self.per_workspace, max_waiting=max_waiting,
                                             grow=self._grow)
        for slot in self._slots:
            self._shares.give(slot)
        self._closed = False
        self._retiring: asyncio.TimerHandle | None = None
        self.started = 0     # processes started so far (the tests and the bench read it)
        self.inline = 0      # checks answered in this process (the fast path)

    @property
    def pids(self) -> list[int]:
        return [s.proc.pid for s in self._slots if s.proc is not None]

    async def run(self, workspace: str, op: str, *args: Any) -> Any:
        """OPS[op](*args): here when the input is small (and, for a dry run, names no SLOW_OPS
        op), else in a process of the workspace's share. Raises CheckTimeout (422), ChecksBusy /
        CheckUnavailable (503), PayloadTooLarge."""
        size = input_size(args)
        if self.processes == 0 or (size <= self.fast_bytes
                                   and not (op == "dry_run" and slow_input(args))):
            self.inline += 1
            return OPS[op](*args)
        limit = MAX_CHECK_BYTES if self.max_bytes is None else self.max_bytes
        if size > limit:
            raise PayloadTooLarge(f"The input to check is {size} bytes; the check size limit is "
                                  f"{limit} bytes (MAX_CHECK_BYTES).",
                                  code="check_too_large")
        if self._closed:
            raise CheckUnavailable("The service is stopping; retry shortly.",
                                   headers={"Retry-After": "1"})
        slot = self._shares.try_take(workspace) or await self._shares.take(workspace,
                                                                           self.queue_timeout_s)
        if slot is None:
            raise ChecksBusy(
                f"This workspace's checks are queued past the limit (at most {self.per_workspace} "
                f"at a time, {self._shares.max_waiting} waiting, QUEUE_TIMEOUT_S "
                f"{self.queue_timeout_s:g} s); retry shortly.", headers={"Retry-After": "1"})
        if not self._shares.idle and len(self._shares.holding) >= 2:
            self._spare()
        try:
            return await self._call(slot, op, args)
        finally:
            slot.used = time.monotonic()
            self._shares.finish(workspace, slot)
            if len(self._slots) > self.processes and self._retiring is None and not self._closed:
                self._retiring = asyncio.get_running_loop().call_later(self.retire_s, self._retire)

    def _grow(self) -> _Slot | None:
        """Shares' `grow`: a new (empty) slot while under max_processes; its process starts on its
        first check (_call, on the loop's thread)."""
        if self._closed or len(self._slots) >= self.max_processes:
            return None
        slot = _Slot()
        self._slots.append(slot)
        return slot

    def _spare(self) -> None:
        """Every slot is held, by two workspaces or more: start a spare process now (under
        max_processes), idle in the pool, so the next workspace's check finds it ready, not a start to wait for (1.5 s at load 3,
        6.5 s at load 12 on this 2-core machine)."""
        slot = self._grow()
        if slot is None:
            return
        slot.starting = asyncio.create_task(self._start_spare(slot))
        self._shares.give(slot)

    async def _start_spare(self, slot: _Slot) -> None:
        try:
            await self._start(slot)
        except (EOFError, OSError) as exc:   # its first check starts another (_call)
            log.warning("a spare check process did not start: %s", exc)
            await asyncio.to_thread(slot.stop, True)
        finally:
            slot.starting = None

    def _retire(self) -> None:
        """Stop the extra slots (beyond `processes`) idle for `retire_s`, empty ones first."""
        self._retiring = None
        if self._closed:
            return
        for slot in self._shares.take_idle(
                len(self._slots) - self.processes, self.retire_s,
                lambda s: s.used if s.starting is None else float("inf"),
                first=lambda s: s.proc is not None):
            self._slots.remove(slot)
            if slot.proc is not None:   # idle: it exits as its pipe closes
                asyncio.get_running_loop().run_in_executor(None, slot.stop, False)
        if len(self._slots) > self.processes:
            self._retiring = asyncio.get_running_loop().call_later(self.retire_s / 2, self._retire)

    async def _call(self, slot: _Slot, op: str, args: tuple[Any, ...]) -> Any:
        try:
            if slot.starting is not None:   # a spare: its start is under way
                await asyncio.shield(slot.starting)
            self._warm(slot)
            if slot.proc is None or not slot.proc.is_alive():
                await self._start(slot)
            assert slot.conn is not None
            reply = await asyncio.to_thread(exchange, slot.conn, (op, args, self.timeout_s),
                                            self.timeout_s * WALL_FACTOR)
        except NoAnswer:   # stuck (or starved past WALL_FACTOR): killed, replaced next time
            await asyncio.to_thread(slot.stop, True)
            raise self._timeout() from None
        except (EOFError, OSError) as exc:
            await asyncio.to_thread(slot.stop, True)
            raise CheckUnavailable(f"The check process stopped ({type(exc).__name__}); retry.",
                                   headers={"Retry-After": "1"}) from exc
        except BaseException:   # cancelled mid-exchange: the process's state is unknown
            slot.stop(True)
            raise
        if reply[0] == "timeout":
            raise self._timeout()
        if reply[0] != "ok":
            log.error("check %s failed in its process: %s", op, reply[1])
            raise CheckUnavailable("The check failed in its process; retry, and report it if it "
                                   "persists.", headers={"Retry-After": "1"})
        return reply[1]

    def _warm(self, slot: _Slot) -> None:
        """Give an empty slot the process of an idle one: a second process starts only when two
        checks run at once."""
        if slot.proc is None:
            warm = next((s for s in self._shares.idle if s.proc is not None and s.starting is None),
                        None)
            if warm is not None:
                slot.proc, slot.conn, warm.proc, warm.conn = warm.proc, warm.conn, None, None

    def _timeout(self) -> CheckTimeout:
        return CheckTimeout(f"Checking this took more than {self.timeout_s:g} s of CPU time, the "
                            "check time limit (CHECK_TIMEOUT_S); make it smaller (fewer or shorter "
                            "regexes, conditions or holidays).",
                            details=[{"path": "", "reason": f"took over {self.timeout_s:g} s to check"}])

    async def _start(self, slot: _Slot) -> None:
        """Start the slot's process (here, on the loop's thread: see _die_with_parent) and wait,
        off the loop, for its ready message (its imports), at most START_S."""
        slot.stop(True)
        mine, theirs = _CTX.Pipe()
        proc = _CTX.Process(target=_serve, args=(theirs, os.getpid()), name="deskflow-check",
                            daemon=True)
        proc.start()
        theirs.close()
        slot.proc, slot.conn = proc, mine
        self.started += 1
        if not await asyncio.to_thread(mine.poll, START_S):
            raise EOFError("no ready message")
        mine.recv()

    async def aclose(self) -> None:
        """Stop every process (an idle one exits when its pipe closes; a busy one is killed)."""
        self._closed = True
        if self._retiring is not None:
            self._retiring.cancel()
        for slot in self._slots:
            if slot.starting is not None:
                slot.starting.cancel()
        idle = set(map(id, self._shares.idle))
        await asyncio.gather(*(asyncio.to_thread(s.stop, id(s) not in idle) for s in self._slots))
