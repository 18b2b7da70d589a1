"""One worker process of the script pool (sandbox/pool.py): its start (an isolated interpreter,
an empty environment, sandbox/child.py's main), its framed pipe, and its kill and reap."""
from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from typing import Any

import orjson

from .limits import MAXIMA
from .protocol import ChannelClosed, read_frame_async

__all__ = ["PROJECT_ROOT", "WORKER_ENV", "_Worker", "_alive"]

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from sandbox.child import main; main()"
# The worker's whole environment: nothing inherited (no tokens, no proxies, no PYTHON* switches).
WORKER_ENV: Mapping[str, str] = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}



class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process, pid: int) -> None:
        self.proc = proc
        self.pid = pid
        self.runs = 0
        self.jail: dict[str, Any] = {}

    @classmethod
    async def spawn(cls, python: str, timeout: float, options: Mapping[str, Any] | None = None) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            python, "-I", "-c", _BOOT, PROJECT_ROOT, str(MAXIMA.memory_bytes),
            orjson.dumps(dict(options or {})).decode(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=dict(WORKER_ENV), cwd="/",
            close_fds=True, start_new_session=True)
        worker = cls(proc, proc.pid)
        try:
            ready = await asyncio.wait_for(worker.receive(), timeout)
            if ready.get("op") != "ready":
                raise ChannelClosed()
            worker.jail = ready.get("jail") or {}
        except BaseException:
            await worker.kill()
            raise
        return worker

    async def send_bytes(self, frame: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(frame)
        await self.proc.stdin.drain()

    async def receive(self) -> Any:
        assert self.proc.stdout is not None
        return await read_frame_async(self.proc.stdout)

    async def kill(self) -> int | None:
        """SIGKILL by pid, then reap. Not Popen.kill(): its poll() would reap a dead worker
        behind asyncio's child watcher, and the real exit status (SIGXCPU, SIGSEGV) would be lost."""
        if self.proc.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            code = await asyncio.wait_for(self.proc.wait(), 10)
        except asyncio.TimeoutError:
            return None
        # Reaped: close the pipes now, not when the loop next sees their EOF (a loop closed right
        # after a refused start would leave them to the garbage collector, a ResourceWarning).
        transport = getattr(self.proc, "_transport", None)
        if transport is not None:
            transport.close()
        return code


def _alive(worker: _Worker) -> bool:
    return worker.proc.returncode is None
