"""Compiled rule sets per workspace for the worker, recompiled only when something they depend on
moves: the workspace's rules revision (bumped by every rule change) or the SLA policies' calendars
that business-time conditions name. A recompile compiles only the rules that changed: each
workspace keeps its compiled rules by definition and its buckets' code by source
(rules/compile_cache.py), so renaming one of 1,000 rules compiles one rule and no bucket, not
1,000 rules and the bucket (5.8 s -> 0.06 s of CPU at 1,000 long regexes, bench/RESULTS.md).

A bucket's source that is compiled (its shape changed: a condition's op, their number) and is
over INLINE_SOURCE_BYTES is compiled in a process of the cache's own (a CheckPool, "bucket_code",
server/checkwork.py), not in the compile's thread: CPython's compile is one C call holding the
GIL, ~1 s for the 3.6 MB of a bucket at the rule limits, which no switch interval interrupts; the
process stopped for every workspace each time an attacker changed a shape (another workspace's
p99 838 ms, tests/server/test_tenant_isolation.py). Only `marshal.loads` of the answer is left
here, ~10 ms at the limits. The processes start on the first such source (a worker that never
sees one starts none), at most MAX_COMPILE_PROCESSES, shared round-robin by workspace.

A compile that fails -- its process stopped, used its CPU limit (CHECK_TIMEOUT_S) or refused the
source, or the compile itself raised -- is the workspace's state, not the worker's: `get` raises
RulesUnavailable for that workspace until a retry time (RETRY_FIRST_S, doubling per failure up to
RETRY_MAX_S; at once when its rules or calendars change), the worker holds the workspace's events
pending until then (server/worker.py), and every other workspace goes on. Before, a failed process
compile was done again in the worker, one C call holding the GIL (20 s and more for the sources
the red team built: another workspace's requests timed out), and a compile that raised dropped
every event of the workspace as a bug."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import marshal
import threading
from types import CodeType
from typing import Any

from rules.calendar import Calendar
from rules.codegen import compile_bucket
from rules.compile_cache import CompileCache
from server.checkpool import CHECK_TIMEOUT_S, CheckPool, ChecksBusy, CheckTimeout
from server.errors import PayloadTooLarge
from server.gcpolicy import freeze_compiled
from server.inflight import lead, outcome
from server.metrics import count_rule_compile_failure
from server.store import catalog
from server.store.connect import Store
from server.store.errors import StoreError

__all__ = ["RuleCache", "RulesUnavailable", "compile_stored_rules"]

log = logging.getLogger("deskflow.worker")


INLINE_SOURCE_BYTES = 64 * 1024   # a bucket's source compiled here: ~17 ms of CPython's compile
MAX_COMPILE_PROCESSES = 3          # processes compiling bigger ones at once (~70 MB each)
COMPILE_THREADS = 4                # workspaces' rule compiles at once (threads of the cache's own)
AWAY_TIMEOUT_S = 120.0             # a compile's wait for its process (then a failed compile)
BUSY_RETRY_S = 0.5                 # every process held past the queue's bound: asked again after
MAX_SOURCE_BYTES = 64 * 1024 * 1024   # (a bucket at the rule limits: 3.6-10 MB)
SMALL_RULES_BYTES = 32 * 1024      # a workspace's stored rules up to this compile in a lane of their own
SMALL_THREADS = 2                  # ... of this many threads
RETRY_FIRST_S = 1.0                # a workspace's failed compile: tried again after this long,
RETRY_MAX_S = 60.0                 # doubled per failure in a row, up to this


_Key = tuple[int, frozenset[Any]]
_Entry = tuple[_Key, Any, dict[str, int]]


class RulesUnavailable(Exception):
    """The workspace's rules could not be compiled (see the module doc): its events wait until
    `retry_at` (the loop's clock), when `get` compiles them again."""

    def __init__(self, workspace: str, reason: str, retry_at: float, failures: int) -> None:
        super().__init__(f"the rules of workspace {workspace} could not be compiled ({reason}); "
                         f"{failures} failure(s) in a row, tried again in a while")
        self.workspace, self.reason, self.retry_at, self.failures = workspace, reason, retry_at, failures


class _AwayFailed(Exception):
    """A bucket's compile process did not give its code (the reason is the message; `kind` the
    metric's label)."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.kind = kind

    @classmethod
    def of(cls, exc: BaseException, size: int) -> _AwayFailed:
        where = f"a rule bucket's generated source of {size:,} bytes, in its compile process"
        if isinstance(exc, CheckTimeout):
            return cls(f"{where}: past its CPU time limit ({CHECK_TIMEOUT_S:g} s)", "timeout")
        if isinstance(exc, PayloadTooLarge):
            return cls(f"{where}: over its size limit ({MAX_SOURCE_BYTES:,} bytes)", "too_large")
        if isinstance(exc, (concurrent.futures.TimeoutError, TimeoutError)):
            return cls(f"{where}: no answer in {AWAY_TIMEOUT_S:g} s", "timeout")
        return cls(f"{where}: {type(exc).__name__}: {exc}"[:500], "unavailable")


class _Failed:
    __slots__ = ("key", "reason", "retry_at", "failures")

    def __init__(self, key: _Key, reason: str, retry_at: float, failures: int) -> None:
        self.key, self.reason, self.retry_at, self.failures = key, reason, retry_at, failures


class RuleCache:
    """Compiled rulesets per workspace, recompiled only when the workspace's rules revision moves.

    One compile per (workspace, revision, calendars) at a time: the passes in flight that miss
    together (a worker's start, a rule saved) wait for the compile already running instead of
    each starting its own. Before, a worker's 128 lanes compiled the same 100 rules ~100 times
    at start, about 0.5 ms of CPU per event over the apply benchmark's run (bench/RESULTS.md)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # own threads: a compile waits in its thread for its process's answer, which the pool
        # reads in a thread of the loop's default executor; sharing that executor, compiles of
        # enough workspaces at once would wait on each other's exchanges
        self._threads = concurrent.futures.ThreadPoolExecutor(COMPILE_THREADS,
                                                              thread_name_prefix="deskflow-compile")
        # Red team, session 18 (tests/server/test_redteam18.py): five workspaces at the limits
        # editing at once held all four threads for seconds each, and another workspace's
        # one-rule compile queued behind them (its event applied 1.9-4.8 s late). Small rule sets
        # compile in threads of their own, never behind a big one; and of the big ones only one
        # at a time runs Python (`_cpu`: a thread waiting for its compile process lets it go), so
        # the event loop competes for the interpreter with one compile, not four.
        self._small = concurrent.futures.ThreadPoolExecutor(SMALL_THREADS,
                                                            thread_name_prefix="deskflow-compile-small")
        self._cpu = threading.Semaphore(1)
        self._holding = threading.local()   # .cpu: this thread holds `_cpu`
        self._away = CheckPool(1, max_processes=MAX_COMPILE_PROCESSES, max_bytes=MAX_SOURCE_BYTES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cache: dict[str, _Entry] = {}
        self._compiling: dict[str, asyncio.Future[_Entry]] = {}
        # per workspace, its rules compiled by definition: bounded by the workspace's own rules
        # (each compile keeps only the rules it used), never evicted by another workspace's
        self._compiled: dict[str, CompileCache] = {}
        self._failed: dict[str, _Failed] = {}   # workspaces whose last compile failed
        self.compiles = 0   # compiles started so far: what the tests count

    async def get(self, workspace: str, rev: int | None = None,
                  calendars: dict[str, Calendar] | None = None) -> Any:
        """The compiled ruleset at revision `rev` (read from the store when not given)."""
        return (await self.get_with_revisions(workspace, rev, calendars))[0]

    async def get_with_revisions(self, workspace: str, rev: int | None = None,
                                 calendars: dict[str, Calendar] | None = None
                                 ) -> tuple[Any, dict[str, int]]:
        """(compiled ruleset, rule id -> the rule's revision number) at workspace revision `rev`:
        run records name the revision of each rule that fired (GET /v1/rules/{id}/revisions/{n}).
        `calendars` (the SLA policies' business hours by policy name, for business-time
        conditions) is part of the cache key: editing a policy's hours recompiles the rules."""
        if rev is None:
            rev = await catalog.rules_revision(self._store, workspace)
        key = (rev, frozenset((calendars or {}).items()))
        while True:   # again after a compile shared: it failed, or was of another revision
            hit = self._cache.get(workspace)
            if hit and hit[0] == key:
                return hit[1], hit[2]
            failed = self._failed.get(workspace)
            now = asyncio.get_running_loop().time()
            if failed is not None and failed.key == key and now < failed.retry_at:
                raise RulesUnavailable(workspace, failed.reason, failed.retry_at, failed.failures)
            pending = self._compiling.get(workspace)
            if pending is None:
                try:
                    entry = await self._compile(workspace, key, calendars)
                except (StoreError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # noqa: BLE001 -- the workspace's state (module doc)
                    raise self._fail(workspace, key, exc) from exc
                self._failed.pop(workspace, None)
                return entry[1], entry[2]
            shared = await outcome(pending)
            if shared is not None and shared[0] == key:
                return shared[1], shared[2]

    def _fail(self, workspace: str, key: _Key, exc: Exception) -> RulesUnavailable:
        """Keep the workspace's failed compile (see the module doc) and say so, once per failure."""
        before = self._failed.get(workspace)
        failures = before.failures + 1 if before is not None else 1
        reason = str(exc) if isinstance(exc, _AwayFailed) else f"{type(exc).__name__}: {exc}"[:500]
        wait = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(failures - 1, 16))
        retry_at = asyncio.get_running_loop().time() + wait
        self._failed[workspace] = _Failed(key, reason, retry_at, failures)
        count_rule_compile_failure(exc.kind if isinstance(exc, _AwayFailed) else "error")
        log.error("the rules of workspace %s could not be compiled (%s): its events wait, tried "
                  "again in %.0f s (failure %d in a row)", workspace, reason, wait, failures,
                  exc_info=not isinstance(exc, _AwayFailed))
        return RulesUnavailable(workspace, reason, retry_at, failures)

    def unavailable(self) -> dict[str, str]:
        """Workspaces whose last compile failed, with the reason (what the tests read)."""
        return {ws: f.reason for ws, f in self._failed.items()}

    async def _compile(self, workspace: str, key: _Key,
                       calendars: dict[str, Calendar] | None) -> _Entry:
        async def compile_now() -> _Entry:
            self.compiles += 1
            raw = await catalog.raw_rules(self._store, workspace)
            # in a thread, the parse too: 1,000 rules of 1,000-character regexes take seconds to
            # compile, and a workspace's 4 MiB of rules ~40 ms to parse, which on the loop every
            # other workspace waited out (one compile per workspace at a time, `lead`: its
            # CompileCache is never shared)
            self._loop = asyncio.get_running_loop()
            compiled = self._compiled.get(workspace)
            if compiled is None:
                compiled = self._compiled[workspace] = CompileCache(self._compiler(workspace))
            small = sum(map(len, raw.values())) <= SMALL_RULES_BYTES
            ruleset, revisions = await self._loop.run_in_executor(
                self._small if small else self._threads,
                _compile_raw if small else self._compile_gated, raw, calendars, compiled)
            entry: _Entry = (key, ruleset, revisions)
            self._cache[workspace] = entry
            return entry
        return await lead(self._compiling, workspace, compile_now)

    def _compile_gated(self, raw: dict[str, str], calendars: dict[str, Calendar] | None,
                       cache: CompileCache) -> tuple[Any, dict[str, int]]:
        """_compile_raw holding `_cpu` (a big rule set's compile, in a compile thread)."""
        with self._cpu:
            self._holding.cpu = True
            try:
                return _compile_raw(raw, calendars, cache)
            finally:
                self._holding.cpu = False

    def compiled(self, workspace: str) -> CompileCache | None:
        """The workspace's rules and bucket codes as compiled so far (what the tests count)."""
        return self._compiled.get(workspace)

    @property
    def compile_processes(self) -> int:
        """Compile processes started so far (what the tests count)."""
        return self._away.started

    def _compiler(self, workspace: str) -> Any:
        """CompileCache's compiler for the workspace: called in a compile thread (see the module
        doc). A source the process cannot compile (it stopped, it used its time, it refused the
        source, no answer in AWAY_TIMEOUT_S) raises _AwayFailed: never compiled here, where it
        would stop every workspace for as long."""
        def compile_source(source: str) -> CodeType:
            loop = self._loop
            if len(source) <= INLINE_SOURCE_BYTES or loop is None or loop.is_closed():
                return compile_bucket(source)
            future = asyncio.run_coroutine_threadsafe(self._compile_away(workspace, source), loop)
            gated = getattr(self._holding, "cpu", False)
            if gated:   # (waiting, this thread runs no Python: another big compile may)
                self._cpu.release()
            try:
                data = future.result(AWAY_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 -- see the doc (a timeout, a cancel: Exceptions here)
                future.cancel()
                raise _AwayFailed.of(exc, len(source)) from exc
            finally:
                if gated:
                    self._cpu.acquire()
            code = marshal.loads(data)
            assert isinstance(code, CodeType)
            return code
        return compile_source

    async def _compile_away(self, workspace: str, source: str) -> bytes:
        """The source's marshalled code from a compile process. While every process is held by
        other workspaces' compiles and this workspace's wait passed its bound (503 checks_busy),
        it asks again: compiled here instead, it would stop every workspace for that compile."""
        while True:
            try:
                data: bytes = await self._away.run(workspace, "bucket_code", source)
                return data
            except ChecksBusy:
                await asyncio.sleep(BUSY_RETRY_S)

    def close(self) -> None:
        """Stop the compile threads (a compile under way ends first)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._small.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """close(), and the compile processes stopped (and reaped)."""
        self.close()
        await self._away.aclose()


def _compile_raw(raw: dict[str, str], calendars: dict[str, Calendar] | None,
                 cache: CompileCache) -> tuple[Any, dict[str, int]]:
    """(compiled ruleset, rule id -> revision) of a workspace's rules hash as stored."""
    stored = catalog.parse_rules(raw)
    revisions = {str(r["id"]): int(r.get("revision", 1)) for r in stored if r.get("id") is not None}
    try:
        return compile_stored_rules(stored, calendars, cache), revisions
    finally:
        freeze_compiled()   # its objects never walked by the collector again (server/gcpolicy.py)


def compile_stored_rules(rules: list[dict[str, Any]], calendars: dict[str, Calendar] | None = None,
                         cache: CompileCache | None = None) -> Any:
    """Compile a workspace's rules; a stored rule the engine refuses (it was valid when saved, but
    the engine may have grown stricter, or names a calendar whose SLA policy was deleted) is left
    out and logged instead of stopping every event. `cache`: the workspace's rules as compiled
    before, by definition (only the rules not in it are compiled); afterwards it keeps only
    these rules."""
    from rules import RuleError, compile_rules

    try:
        if not rules:
            return None
        try:
            return compile_rules(rules, calendars=calendars, cache=cache)
        except RuleError:
            good = []
            for rule in rules:
                try:
                    compile_rules([rule], calendars=calendars, cache=cache)
                    good.append(rule)
                except RuleError as exc:
                    log.warning("skipping invalid stored rule %s: %s", rule.get("id"), exc)
            return compile_rules(good, calendars=calendars, cache=cache) if good else None
    finally:
        if cache is not None:
            cache.sweep()
