"""The parent side: a pool of pre-started worker processes, wall clock, broker relay, refills.

    async with ScriptPool(size=2, broker=Broker.create()) as pool:
        result = await pool.run("crm-vip", 3, source, event, ticket,
                                ctx_info={"workspace": "acme", "vars": {}},
                                limits=Limits(), broker_config=BrokerConfig(allowlist, secrets))

`run` never raises for anything a script does: every outcome is a ScriptResult, failures carry
`error = {"code", "message"}`. A worker that overruns the wall clock is killed (timeout); one
that dies (SIGXCPU -> cpu_limit, a segfault -> sandbox_crash) is reaped; either way a fresh worker
is started in the background and the pool keeps serving.

Each workspace may hold at most `workspace_share` workers at once (shares.py); its other runs
wait in its own queue, at most `queue_timeout_s`, then fail `busy`. The pool is elastic: a run of
a workspace under its share that finds every worker held by others starts one more (up to
MAX_WORKERS), which stops after IDLE_RETIRE_S idle; two workspaces whose scripts hung held both
workers of the default pool of 2, and a third's trivial script failed `busy` after the whole wait
(tests/sandbox/test_pool_elastic.py). Every worker is jailed
(jail.py); `pool.jail` says which layers are active, and `require_jail=True` refuses to start
without all of them.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

from rules.updates import UPDATE_KEYS as _RULES_UPDATE_KEYS

from .broker import Broker, BrokerConfig
from .errors import JailUnavailable, PoolClosed
from .jail import missing
from .limits import DEFAULT_LIMITS, Limits
from .protocol import ChannelClosed, encode
from .shares import Shares
from .workers import PROJECT_ROOT, WORKER_ENV, _alive, _Worker  # noqa: F401 (bench imports _Worker here)

log = logging.getLogger("deskflow.sandbox")

MAX_WORKERS = 6         # workers at most (an extra per workspace that finds the others held)
IDLE_RETIRE_S = 30.0    # an extra worker idle this long is stopped
# The update vocabulary of API.md "Scripts" is the rules' own (one list, in rules/updates.py);
# rules.apply_updates checks the values when present.
UPDATE_KEYS: frozenset[str] = frozenset(_RULES_UPDATE_KEYS)


@dataclasses.dataclass
class ScriptResult:
    updates: dict[str, Any] | None
    logs: list[str]
    http_calls: list[dict[str, Any]]
    duration_ms: float
    error: dict[str, str] | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ScriptPool:
    def __init__(self, size: int = 2, *, broker: Broker | None = None, python: str = sys.executable,
                 max_runs_per_worker: int = 10_000, spawn_timeout: float = 30.0,
                 workspace_share: int | None = None, queue_timeout_s: float = 10.0,
                 require_jail: bool = False, allow_raw_code: bool = False,
                 skip_jail_layers: frozenset[str] = frozenset(), max_size: int = MAX_WORKERS,
                 idle_retire_s: float = IDLE_RETIRE_S) -> None:
        """`workspace_share`: most workers one workspace may hold at once (None: half the pool,
        rounded up). `queue_timeout_s`: longest a run waits for a worker before failing `busy`.
        `allow_raw_code` and `skip_jail_layers` are for the jail's own tests only: the server
        never sets them, and a worker started without `allow_raw_code` ignores raw frames."""
        self.size, self.max_size, self.idle_retire_s = size, max(size, max_size), idle_retire_s
        self.broker = broker
        self.python = python
        self.max_runs_per_worker = max_runs_per_worker
        self.spawn_timeout = spawn_timeout
        self.workspace_share = workspace_share or max(1, math.ceil(size / 2))
        self.queue_timeout_s = queue_timeout_s
        self.require_jail = require_jail
        self._options = {"raw_code": allow_raw_code, "skip_layers": sorted(skip_jail_layers)}
        self.jail: dict[str, Any] = {}      # the layers the workers run under (jail.py report)
        self.replaced = 0          # workers killed or lost and started again (for tests and metrics)
        self.runs = 0
        self.errors: dict[str, int] = {}
        self._shares: Shares[_Worker] = Shares(self.workspace_share, alive=_alive, on_dead=self._retire,
                                               grow=self._grow)
        self._all: set[_Worker] = set()
        self._growing = False
        self._retiring: asyncio.TimerHandle | None = None   # the pending retire round
        self._idle_since: dict[_Worker, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def __aenter__(self) -> ScriptPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        try:
            workers = await asyncio.gather(*(self._spawn() for _ in range(self.size)))
        except BaseException:
            await self.close()
            raise
        log.info("sandbox: %d workers, at most %d per workspace; jail %s", self.size,
                 self.workspace_share, orjson.dumps(self.jail).decode())
        for worker in workers:
            self._shares.give(worker)

    async def close(self) -> None:
        self._closed = True
        if self._retiring is not None:
            self._retiring.cancel()
        if self._tasks:     # replacements under way: let them stop their workers (about a start's time)
            await asyncio.wait(list(self._tasks), timeout=self.spawn_timeout)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(w.kill() for w in list(self._all)), return_exceptions=True)
        self._all.clear()

    @property
    def pids(self) -> list[int]:
        return sorted(w.pid for w in self._all)

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics: runs, failed runs by error code, workers alive, idle, replaced,
        runs waiting for a worker."""
        return {"runs": self.runs, "errors": dict(self.errors), "workers": len(self._all),
                "idle": len(self._shares.idle), "replaced": self.replaced,
                "waiting": self._shares.waiters}

    async def run(self, script_id: str, version: int, source: str, event: Any, ticket: Any,
                  ctx_info: Mapping[str, Any] | None = None, limits: Limits | None = None,
                  broker_config: BrokerConfig | None = None, *, workspace: str | None = None) -> ScriptResult:
        """`workspace` names whose share the run counts against; by default ctx_info's."""
        if self._closed:
            raise PoolClosed("the script pool is closed")
        limits = limits or DEFAULT_LIMITS
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        message = {"op": "run", "script": str(script_id), "version": version, "source": source,
                   "event": event, "ticket": ticket,
                   "ctx": {"workspace": (ctx_info or {}).get("workspace"),
                           "vars": (ctx_info or {}).get("vars") or {},
                           # plain data the worker loaded for scripts that name them
                           "history": (ctx_info or {}).get("history"),
                           "customer": (ctx_info or {}).get("customer")},
                   "limits": limits.wire}
        try:
            frame = encode(message)
        except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
            raise ValueError(f"event, ticket and ctx_info must be JSON data: {exc}") from exc
        owner = str(workspace if workspace is not None else (ctx_info or {}).get("workspace") or "")
        worker = self._shares.try_take(owner) or await self._shares.take(owner, self.queue_timeout_s)
        if worker is None:
            return self._result(started, None, [], None, _err(
                "busy", f"all sandbox workers are busy; try again (waited {self.queue_timeout_s:g}s)"))
        # The wall clock starts once a worker is ours: waiting for one is not the script's time.
        deadline = loop.time() + limits.wall_s
        session = self.broker.session(broker_config, limits, deadline) if (
            self.broker is not None and broker_config is not None) else None
        healthy = False
        try:
            done, error = await self._drive(worker, frame, session, deadline, limits)
            healthy = error is None or error["code"] not in ("timeout", "sandbox_crash", "cpu_limit", "memory_limit")
            if done is not None and done.get("recycle"):
                healthy = False
            if done is None:
                return self._result(started, None, [], session, error)
            updates, logs = done.get("updates"), done.get("logs") or []
            error = error or done.get("error")
            if error is None and updates is not None:
                problem = _check_updates(updates, ticket)
                if problem is not None:
                    updates, error = None, _err("invalid_output", problem)
            return self._result(started, updates if error is None else None, logs, session, error)
        finally:
            worker.runs += 1
            if healthy and worker.runs < self.max_runs_per_worker and not self._closed:
                self._idle_since[worker] = time.monotonic()
                self._shares.finish(owner, worker)
                self._retire_later()
            else:
                self._shares.finish(owner, None)
                self._retire(worker)

    async def run_raw(self, source: str, timeout: float = 10.0) -> dict[str, Any]:
        """Tests of the jail only: run unrestricted Python in a real worker, as an escape from the
        policy would. Needs `allow_raw_code=True`; returns {"result", "error", "pid"}."""
        if not self._options["raw_code"]:
            raise PermissionError("raw code is only for the jail's tests (allow_raw_code=True)")
        worker = await self._shares.take("", timeout)
        if worker is None:
            raise TimeoutError("no worker for the raw run")
        try:
            await worker.send_bytes(encode({"op": "raw", "source": source}))
            reply = await asyncio.wait_for(worker.receive(), timeout)
            return {**reply, "pid": worker.pid}
        finally:
            self._shares.finish("", None)
            self._retire(worker)        # raw code may have changed anything: never reused

    async def _drive(self, worker: _Worker, frame: bytes, session: Any, deadline: float,
                     limits: Limits) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
        try:
            async with asyncio.timeout_at(deadline):     # one timer for the whole run, HTTP included
                await worker.send_bytes(frame)
                while True:
                    reply = await worker.receive()
                    op = reply.get("op") if type(reply) is dict else None
                    if op == "done":
                        return reply, None
                    if op != "http":
                        return None, _err("sandbox_crash", "the worker sent an unexpected message")
                    if session is None:
                        answer = {"ok": False, "kind": "refused", "message": "HTTP is not configured for this run"}
                    else:
                        answer = await session.request(reply)
                    await worker.send_bytes(encode(answer))
        except TimeoutError:
            await worker.kill()
            return None, _err("timeout", f"the run took longer than {limits.wall_s:g}s (wall clock)")
        except (asyncio.IncompleteReadError, ChannelClosed, ConnectionError, orjson.JSONDecodeError):
            try:    # the channel closed: the worker is dying; let it finish so its status is real
                code: int | None = await asyncio.wait_for(asyncio.shield(worker.proc.wait()), 2)
            except asyncio.TimeoutError:
                code = await worker.kill()
            return None, _death(code, limits)

    def _result(self, started: float, updates: Any, logs: list[str], session: Any,
                error: dict[str, str] | None) -> ScriptResult:
        self.runs += 1
        if error is not None:
            self.errors[error["code"]] = self.errors.get(error["code"], 0) + 1
        calls = list(session.calls) if session is not None else []
        return ScriptResult(updates, logs, calls, round((time.perf_counter() - started) * 1000, 3), error)


    # -- workers ------------------------------------------------------------------------------

    async def _spawn(self) -> _Worker:
        worker = await _Worker.spawn(self.python, self.spawn_timeout, self._options)
        self.jail = worker.jail
        if not self._options["skip_layers"]:      # a test's partial jail is not the machine's
            _PROBED[self.python] = worker.jail
        if self.require_jail and missing(worker.jail):
            await worker.kill()
            raise JailUnavailable(missing(worker.jail))
        self._all.add(worker)
        return worker

    def _grow(self) -> _Worker | None:
        """Shares' `grow`: start one more worker in the background (one start at a time, under
        max_size, replacements under way counted); Shares hands it to the waiting run."""
        if self._closed or self._growing or len(self._all) + len(self._tasks) >= self.max_size:
            return None
        self._growing = True
        task = asyncio.get_running_loop().create_task(self._extra())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _extra(self) -> None:
        try:
            fresh = await self._spawn()
        except (OSError, ChannelClosed, asyncio.IncompleteReadError, asyncio.TimeoutError,
                JailUnavailable) as exc:
            log.warning("sandbox: an extra worker did not start: %s", exc)
            return
        finally:
            self._growing = False
        if self._closed:
            await fresh.kill()
            self._all.discard(fresh)
        else:
            self._idle_since[fresh] = time.monotonic()
            self._shares.give(fresh)
            self._retire_later()

    def _retire_later(self) -> None:
        """One pending retire round while the pool holds extras (not one a finished run)."""
        if self._retiring is None and len(self._all) > self.size and not self._closed:
            self._retiring = asyncio.get_running_loop().call_later(self.idle_retire_s,
                                                                   self._retire_idle)

    def _retire_idle(self) -> None:
        """Stop the workers beyond `size` idle for idle_retire_s (not replaced)."""
        self._retiring = None
        if self._closed:
            return
        for worker in self._shares.take_idle(len(self._all) - self.size, self.idle_retire_s,
                                             lambda w: self._idle_since.get(w, 0.0)):
            self._all.discard(worker)
            self._idle_since.pop(worker, None)
            task = asyncio.get_running_loop().create_task(self._stop(worker))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._retire_later()

    @staticmethod
    async def _stop(worker: _Worker) -> None:
        await worker.kill()

    def _retire(self, worker: _Worker) -> None:
        self._idle_since.pop(worker, None)
        self._all.discard(worker)
        self.replaced += 1
        task = asyncio.get_running_loop().create_task(self._replace(worker))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self, worker: _Worker) -> None:
        await worker.kill()
        delay = 0.05
        while not self._closed:
            try:
                fresh = await self._spawn()
            except (OSError, ChannelClosed, asyncio.IncompleteReadError, asyncio.TimeoutError,
                    JailUnavailable):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._closed:
                await fresh.kill()
                self._all.discard(fresh)
            else:
                self._shares.give(fresh)
            return


# The jail a worker of this machine gets, per interpreter: the kernel's features do not change
# while the service runs. Filled by a pool's first worker or by probe_jail().
_PROBED: dict[str, dict[str, Any]] = {}


async def probe_jail(python: str = sys.executable, timeout: float = 30.0) -> dict[str, Any]:
    """The jail description of this machine's sandbox workers, for /readyz and the start-up log:
    one worker started and stopped the first time (about as long as a worker's start), then cached."""
    report = _PROBED.get(python)
    if report is None:
        try:
            worker = await _Worker.spawn(python, timeout)
        except (OSError, ChannelClosed, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            return {"netns": False, "no_new_privs": False, "seccomp": False, "landlock": False,
                    "fs": "none", "unavailable": {"worker": f"could not start one: {exc!r}"}}
        await worker.kill()
        report = _PROBED[python] = worker.jail
    return dict(report)


def _err(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _death(returncode: int | None, limits: Limits) -> dict[str, str]:
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return _err("cpu_limit", f"the run used more than {limits.cpu_s:g}s of CPU time")
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return _err("sandbox_crash", f"the sandbox worker died (signal {name})")
    return _err("sandbox_crash", f"the sandbox worker exited (status {returncode})")


_apply_updates: Any = None


def _check_updates(updates: Any, ticket: Any) -> str | None:
    """API.md: anything outside the update vocabulary is a run error and nothing is applied."""
    if type(updates) is not dict:
        return "run() must return None or a dict"
    unknown = sorted(set(updates) - UPDATE_KEYS)
    if unknown:
        return (f"unknown update key(s): {', '.join(unknown)}; allowed: "
                f"{', '.join(sorted(UPDATE_KEYS))}")
    global _apply_updates
    if _apply_updates is None:
        try:
            from rules import UpdateError, apply_updates
            _apply_updates = (apply_updates, UpdateError)
        except ImportError:
            _apply_updates = False
    if _apply_updates and type(ticket) is dict:
        apply, update_error = _apply_updates
        try:
            apply(ticket, updates)          # works on its own copy (rules/actions.py)
        except update_error as exc:
            return str(exc)
        except Exception:  # noqa: BLE001 - the engine's own bug is not the script's; the server re-applies
            return None
    return None
