"""The worker process: runs restricted code, one run at a time, under setrlimit.

Started by pool.py as `python -I -c <boot> <project root>` with an empty environment, cwd "/",
stdin/stdout as its two pipes and stderr on /dev/null. At start it moves the pipes to private
descriptors, points 0/1/2 at /dev/null, closes everything else, imports all it will ever need,
drops root if it has it, then sets its rlimits (open files, processes, file size, core dumps;
address space and CPU per run). Then: read a frame, run, write a frame — forever.

ctx.http does no I/O here: it converts its arguments to plain JSON types, sends them to the
parent and blocks for the broker's reply.
"""
from __future__ import annotations

import datetime
import gc
import math
import os
import resource
import sys
import traceback
from typing import Any

import orjson

from .compile import compile_script
from .context import Context, LimitBreach, _printer_factory, _Run
from .convert import Unconvertible, clean_text, to_plain
from .guards import script_globals
from .jail import Jail
from .modules import build_module
from .policy import SCRIPT_FILENAME
from .protocol import ChannelClosed, read_frame, write_frame

_CODE_CACHE_SIZE = 256


class Worker:
    def __init__(self, rfd: int, wfd: int, *, raw_code: bool = False) -> None:
        self.channel = (rfd, wfd)
        self.raw_code = raw_code        # tests only: the pool was built with allow_raw_code=True
        self.codes: dict[tuple[str, Any, int], Any] = {}
        self.as_hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        self._unlimited = (self.as_hard, self.as_hard)
        self.runs = 0
        self.vm_base = 0

    def serve(self) -> None:
        while True:
            try:
                message = read_frame(self.channel[0])
            except ChannelClosed:
                return
            if message.get("op") == "run":
                reply = self.run(message)
                try:
                    write_frame(self.channel[1], reply)
                except (TypeError, ValueError):   # safety net: a reply that cannot be framed
                    write_frame(self.channel[1], {
                        "op": "done", "updates": None, "logs": [], "recycle": True,
                        "error": {"code": "invalid_output", "message": "the run's output could not be encoded"}})
                if reply.get("recycle"):
                    return
            elif message.get("op") == "raw" and self.raw_code:
                write_frame(self.channel[1], _run_raw(message.get("source")))

    def run(self, message: dict[str, Any]) -> dict[str, Any]:
        limits = message["limits"]
        code, errors = self._code(message)
        if code is None:
            return {"op": "done", "updates": None, "logs": [],
                    "error": {"code": "script_error", "message": "; ".join(errors)}}
        run = _Run(self.channel, limits)
        namespace = script_globals(_printer_factory(run))
        result: Any = None
        error: dict[str, str] | None = None
        recycle = False
        self._limit(limits)
        outcome: BaseException | None = None
        try:
            try:
                event, ticket = message["event"], message["ticket"]   # fresh copies: decoded from this frame
                exec(code, namespace)
                fn = namespace.get("run")
                if not callable(fn):
                    raise TypeError("the script does not define run(event, ticket, ctx)")
                result = fn(event, ticket, Context(run, message["ctx"]))
            finally:
                # First of all: a MemoryError leaves the address space full, and anything that
                # allocates before the limit is lifted (an error message, say) raises again and
                # kills the worker -- a memory_limit turned sandbox_crash (issue 13).
                self._unlimit()
        except ChannelClosed:
            raise
        except BaseException as exc:  # noqa: BLE001 - everything a script raises is its error
            outcome = exc                 # nothing else here: classified below, with headroom
        if outcome is not None:
            result = None
            if isinstance(outcome, LimitBreach):
                error = {"code": outcome.code, "message": str(outcome)}
            elif isinstance(outcome, MemoryError):
                recycle = True
                error = {"code": "memory_limit", "message": f"the script used more than "
                         f"{limits['memory_bytes'] // (1024 * 1024)} MiB of memory"}
            else:
                error = {"code": "script_error", "message": _describe(outcome)}
            outcome = None                # its traceback holds the script's frames and their data
        if run.breach is not None:        # caught by the script: the run still fails
            error = {"code": run.breach.code, "message": str(run.breach)}
        updates = None
        if error is None and result is not None:
            try:
                if type(result) is not dict:
                    raise Unconvertible(f"run() must return None or a dict, not {type(result).__name__}")
                updates = to_plain(result, max_bytes=limits["output_bytes"], what="the returned updates")
                size = len(orjson.dumps(updates))
                if size > limits["output_bytes"]:
                    raise Unconvertible(f"the returned updates are {size} bytes, over the "
                                        f"{limits['output_bytes']}-byte limit", too_large=True)
            except Unconvertible as exc:
                updates = None
                error = {"code": "output_size_limit" if exc.too_large else "invalid_output",
                         "message": str(exc)}
        namespace.clear()
        del result, namespace
        gc.collect(0)
        return {"op": "done", "updates": updates if error is None else None, "logs": run.logs,
                "error": error, "recycle": recycle}

    def _code(self, message: dict[str, Any]) -> tuple[Any, list[str]]:
        # The source's hash is part of the key: a (name, version) reused with other text - another
        # workspace's script of the same name, say - never runs the cached code of the first.
        key = (message["script"], message["version"], hash(message["source"]))
        code = self.codes.get(key)
        if code is None:
            compiled = compile_script(message["source"])
            if compiled.code is None:
                return None, compiled.errors
            if len(self.codes) >= _CODE_CACHE_SIZE:
                self.codes.pop(next(iter(self.codes)))
            code = self.codes[key] = compiled.code
        return code, []

    def _limit(self, limits: dict[str, Any]) -> None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu_used = used.ru_utime + used.ru_stime
        soft_cpu = math.ceil(cpu_used) + max(1, math.ceil(limits["cpu_s"]))
        resource.setrlimit(resource.RLIMIT_CPU, (soft_cpu, resource.RLIM_INFINITY))
        if self.runs % 64 == 0:          # the idle size drifts slowly; reading it costs ~15 µs
            self.vm_base = _vm_size()
        self.runs += 1
        soft_as = self.vm_base + int(limits["memory_bytes"])
        if self.as_hard != resource.RLIM_INFINITY:
            soft_as = min(soft_as, self.as_hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft_as, self.as_hard))

    def _unlimit(self) -> None:
        # Prebuilt arguments: this runs with the address space possibly full and must not allocate.
        resource.setrlimit(resource.RLIMIT_AS, self._unlimited)


def _run_raw(source: Any) -> dict[str, Any]:
    """Tests of the jail only: run unrestricted Python, as an escape from the policy would.
    The code sets `result`; its repr comes back (a string, whatever the value)."""
    import builtins
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "__raw__"}
    try:
        exec(compile(str(source), "<raw>", "exec"), namespace)   # noqa: S102 - the point of the test
        result = namespace.get("result")
        try:
            orjson.dumps(result)
        except TypeError:
            result = repr(result)
        return {"op": "done", "result": result, "error": None}
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        return {"op": "done", "result": None, "error": f"{type(exc).__name__}: {exc}"}


_statm: int | None = None      # /proc/self/statm, opened before the jail (which may hide /proc)


def _vm_size() -> int:
    global _statm
    if _statm is None:
        _statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    return int(os.pread(_statm, 256, 0).split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _describe(exc: BaseException) -> str:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:  # noqa: BLE001 - str() of the exception itself failed
        text = type(exc).__name__
    if len(text) > 1000:
        text = text[:1000] + "…"
    text = clean_text(text)
    return f"Line {line}: {text}" if line is not None else text


def _isolate() -> tuple[int, int]:
    """Pipes to private descriptors, 0/1/2 to /dev/null, every other descriptor closed."""
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    keep = sorted({0, 1, 2, rfd, wfd})
    for fd in range(3, max(keep) + 64):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    os.closerange(max(keep) + 64, 65536)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker
    return rfd, wfd


def _warm() -> None:
    """Import now everything a run could import lazily: no file opens once limits are set."""
    datetime.datetime.strptime("2026-01-01", "%Y-%m-%d")
    for name in ("json", "re", "math", "datetime"):
        build_module(name)
    compile_script("import json, re, math, datetime\ndef run(e, t, c):\n    return {'x': [1]}\n")
    try:
        raise ValueError("warm")
    except ValueError as exc:
        _describe(exc)
    traceback.extract_stack()


def _drop_privileges() -> None:
    if os.getuid() == 0:
        nobody = 65534
        os.setgroups([])
        os.setgid(nobody)
        os.setuid(nobody)


def main() -> None:
    rfd, wfd = _isolate()
    options = orjson.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    _warm()
    _vm_size()
    jail = Jail(frozenset(options.get("skip_layers") or ()))
    if os.getuid() == 0:
        jail.enter_namespaces(privileged=True)
    _drop_privileges()
    jail.enter_namespaces(privileged=False)   # only if root could not: inside a user namespace
    jail.lock()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
    max_memory = int(sys.argv[2]) if len(sys.argv) > 2 else 512 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + max_memory + (64 << 20),) * 2)
    write_frame(wfd, {"op": "ready", "pid": os.getpid(), "uid": os.getuid(), "jail": jail.report()})
    Worker(rfd, wfd, raw_code=bool(options.get("raw_code"))).serve()
