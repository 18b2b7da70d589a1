"""What a worker process holds, read from the outside through /proc: two pipes, /dev/null, an
empty environment, rlimits, no privileges. And the pool's own lifecycle."""
from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from sandbox import PoolClosed, ScriptPool

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")


def test_a_worker_holds_only_its_pipes_and_dev_null(sandbox) -> None:
    for pid in sandbox.pool.pids:
        targets = sorted(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
        pipes = [t for t in targets if t.startswith("pipe:")]
        # and /proc/self/statm, opened before the jail (its own memory size, read every 64 runs)
        own = ("/dev/null", f"/proc/{pid}/statm")
        assert len(pipes) == 2 and all(t in own or t.startswith("pipe:") for t in targets), targets


def test_a_worker_has_an_empty_environment_and_cwd_root(sandbox) -> None:
    pid = sandbox.pool.pids[0]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert sorted(e for e in environ if e) == [b"LANG=C.UTF-8", b"PATH=/usr/bin:/bin"]
    assert os.readlink(f"/proc/{pid}/cwd") == "/"


def test_a_worker_runs_under_rlimits_and_without_root(sandbox) -> None:
    pid = sandbox.pool.pids[0]
    limits = {line[:26].strip(): line[26:].split()[:2] for line in Path(f"/proc/{pid}/limits").read_text().splitlines()}
    assert limits["Max open files"] == ["16", "16"]
    assert limits["Max file size"] == ["0", "0"]
    assert limits["Max processes"] == ["0", "0"]
    assert limits["Max core file size"] == ["0", "0"]
    assert limits["Max address space"][1] != "unlimited"
    if os.getuid() == 0:
        uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")).split()[1:]
        assert uids == ["65534"] * 4


def test_our_own_process_keeps_its_limits() -> None:
    # setrlimit happens in the worker only: the service process is untouched.
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 16


def test_a_closed_pool_refuses_runs_and_leaves_no_workers() -> None:
    import asyncio

    async def go() -> list[int]:
        async with ScriptPool(1) as pool:
            pids = pool.pids
            result = await pool.run("s", 1, "def run(e, t, c):\n    return None\n", {}, {})
            assert result.error is None and result.updates is None
            await pool.run("s", 2, "def run(e, t, c):\n    return 1 / 0\n", {}, {})
            stats = pool.stats()
            assert stats["runs"] == 2 and stats["errors"] == {"script_error": 1}
            assert stats["workers"] == 1 and stats["idle"] == 1
        with pytest.raises(PoolClosed):
            await pool.run("s", 1, "def run(e, t, c):\n    return None\n", {}, {})
        return pids

    pids = asyncio.run(go())
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
