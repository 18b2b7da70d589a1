"""The OS jail under RestrictedPython, tested with raw, unrestricted Python in real pool workers
(ScriptPool(allow_raw_code=True), which the server never builds): what an escape from the policy
would run must still fail to reach the network, the file system, other programs and processes.
And the layers seen from outside, through /proc."""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import JailUnavailable, ScriptPool, probe_jail
from sandbox.jail import _AARCH64, _X86_64, DENIED_SYSCALLS, missing, seccomp_program

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/ns"), reason="needs Linux namespaces")

WORKTREE = Path(__file__).resolve().parents[2]


class RawPool:
    """A raw-code pool on its own loop; `raw(source)` runs unrestricted Python in a fresh worker."""

    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = ScriptPool(2, allow_raw_code=True, **options)
        self.loop.run_until_complete(self.pool.start())

    def full(self) -> list[int]:
        """The pool's pids once every worker is up (a raw run's worker is replaced after it). At
        least `size`: a run that waited on replacements may have grown the elastic pool an extra
        worker, which stays until idle_retire_s (waiting for exactly `size` then timed out)."""
        for _ in range(600):
            if len(self.pool.pids) >= self.pool.size:
                return self.pool.pids
            self.loop.run_until_complete(asyncio.sleep(0.05))
        raise AssertionError("the pool did not refill")

    def raw(self, source: str) -> Any:
        reply = self.loop.run_until_complete(self.pool.run_raw(source))
        assert reply["error"] is None, reply["error"]
        return reply["result"]

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.close())
        self.loop.close()


@pytest.fixture(scope="module")
def jailed() -> Iterator[RawPool]:
    pool = RawPool()
    yield pool
    pool.close()


def attempt(action: str) -> str:
    """Raw code that tries `action` and reports what happened: "done" or the error's name."""
    return ("try:\n" + "".join(f"    {line}\n" for line in action.splitlines())
            + "    result = 'done'\nexcept BaseException as exc:\n"
            "    result = type(exc).__name__ + ': ' + str(exc)\n")


def refused(outcome: str) -> bool:
    return outcome != "done" and outcome.split(":")[0] in ("PermissionError", "OSError", "BlockingIOError")


def test_every_layer_is_active_on_this_machine(jailed) -> None:
    assert jailed.pool.jail == {"netns": True, "no_new_privs": True, "seccomp": True,
                                "landlock": True, "fs": "landlock"}
    assert missing(jailed.pool.jail) == []


@pytest.mark.parametrize("action", [
    "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)",
    "import socket\nsocket.socket(socket.AF_INET6, socket.SOCK_DGRAM)",
    "import socket\nsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)",
    "import socket\nsocket.socketpair()",
    "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', 6379))",
])
def test_raw_code_cannot_open_a_socket_or_reach_redis(jailed, action: str) -> None:
    assert refused(jailed.raw(attempt(action)))


@pytest.mark.parametrize("path", ["/tmp/deskflow-jail-probe", "deskflow-jail-probe",
                                  str(WORKTREE / "deskflow-jail-probe"), "/dev/shm/deskflow-jail-probe"])
def test_raw_code_cannot_create_or_write_a_file(jailed, path: str) -> None:
    assert refused(jailed.raw(attempt(f"open({path!r}, 'w').write('x')")))
    assert not os.path.exists(path if path.startswith("/") else "/" + path)


def test_raw_code_cannot_change_an_existing_file(jailed, tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("intact")
    target.chmod(0o666)
    tmp_path.chmod(0o777)
    for action in (f"open({str(target)!r}, 'a').write('x')", f"import os\nos.truncate({str(target)!r}, 0)",
                   f"import os\nos.unlink({str(target)!r})", f"import os\nos.mkdir({str(tmp_path / 'd')!r})"):
        assert refused(jailed.raw(attempt(action))), action
    assert target.read_text() == "intact"


def test_raw_code_reads_its_own_libraries_and_nothing_else(jailed) -> None:
    # beneath readable_paths: readable (lazy imports, time-zone data). The interpreter's own tree
    # may be closed to the worker's uid anyway (as root, the worker is nobody; /root is 0700), so
    # the check reads world-readable files there.
    assert jailed.raw("result = open('/usr/share/zoneinfo/UTC', 'rb').read(4) == b'TZif'") is True
    assert jailed.raw("result = len(open('/usr/lib/os-release').read()) > 0") is True
    # the rest of the machine is not (sandbox/jail.py readable_paths)
    for path in ("/etc/passwd", "/etc/hostname", "/proc/self/environ", "/home", "/root"):
        outcome = jailed.raw(attempt(f"open({path!r}).read()"))
        assert refused(outcome) or "FileNotFoundError" in outcome or "IsADirectory" in outcome, \
            (path, outcome)


@pytest.mark.parametrize("action", [
    "import os\nos.execv('/bin/true', ['true'])",
    "import os\nos.execve('/usr/bin/env', ['env'], {})",
    "import subprocess\nsubprocess.run(['/bin/true'])",
    "import os\nos.fork()",
    "import os\nos.posix_spawn('/bin/true', ['true'], {})",
    "import threading\nthreading.Thread(target=print).start()",
])
def test_raw_code_cannot_run_a_program_or_start_a_process(jailed, action: str) -> None:
    outcome = jailed.raw(attempt(action))
    assert outcome != "done" and "Error" in outcome, outcome


def test_raw_code_cannot_signal_another_process(jailed, sandbox) -> None:
    # Another pool's worker runs under the same uid: without the jail, signal 0 to it succeeds.
    sibling = sandbox.pool.pids[0]
    for target in (os.getpid(), 1, sibling, -1):
        assert refused(jailed.raw(attempt(f"import os\nos.kill({target}, 0)"))), target
    assert jailed.raw(attempt("import os\nos.kill(os.getpid(), 0)")) == "done"   # itself: allowed
    assert os.path.exists(f"/proc/{sibling}")


def test_raw_code_cannot_leave_its_namespaces_or_trace(jailed) -> None:
    for action in ("import os\nos.unshare(os.CLONE_NEWUSER)",
                   "import os\nos.setns(os.open('/proc/1/ns/net', os.O_RDONLY), 0)",
                   "import ctypes\nassert ctypes.CDLL(None).ptrace(16, 1, 0, 0) == 0, 'ptrace refused'"):
        assert jailed.raw(attempt(action)) != "done", action


def test_the_layers_seen_from_proc(jailed) -> None:
    own_net = os.readlink("/proc/self/ns/net")
    for pid in jailed.full():
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":\t" in line)
        assert status["NoNewPrivs"].strip() == "1"
        assert status["Seccomp"].strip() == "2"
        assert os.readlink(f"/proc/{pid}/ns/net") != own_net


@pytest.mark.parametrize("skip, error", [
    ({"seccomp"}, "PermissionError"),                   # Landlock (ABI >= 4) refuses TCP connect
    ({"seccomp", "landlock"}, "Network is unreachable"),  # the empty namespace has no route
])
def test_each_network_layer_holds_alone(skip: set[str], error: str) -> None:
    """With seccomp off a socket can be made, but the next layers still keep it from Redis."""
    pool = RawPool(skip_jail_layers=frozenset(skip))
    try:
        assert pool.pool.jail["seccomp"] is False and pool.pool.jail["netns"] is True
        outcome = pool.raw(attempt("import socket\ns = socket.socket()\ns.settimeout(2)\n"
                                   "s.connect(('127.0.0.1', 6379))"))
        assert error in outcome, outcome
    finally:
        pool.close()


def test_the_mount_namespace_holds_where_landlock_is_missing() -> None:
    pool = RawPool(skip_jail_layers=frozenset({"landlock"}))
    try:
        assert pool.pool.jail["fs"] == "mount_ns" and pool.pool.jail["landlock"] is False
        assert refused(pool.raw(attempt("open('/tmp/deskflow-jail-probe-mnt', 'w')")))
        assert pool.raw("import json\nresult = json.dumps([1])") == "[1]"
    finally:
        pool.close()
    assert not os.path.exists("/tmp/deskflow-jail-probe-mnt")


def test_require_jail_refuses_to_start_without_a_layer() -> None:
    async def go() -> None:
        pool = ScriptPool(1, require_jail=True, skip_jail_layers=frozenset({"seccomp"}))
        with pytest.raises(JailUnavailable, match="seccomp"):
            await pool.start()
        assert pool.pids == []
        async with ScriptPool(1, require_jail=True) as full:
            assert missing(full.jail) == []

    asyncio.run(go())


def test_raw_code_is_refused_by_an_ordinary_pool() -> None:
    async def go() -> None:
        async with ScriptPool(1) as pool:
            with pytest.raises(PermissionError):
                await pool.run_raw("result = 1")

    asyncio.run(go())


def test_probe_reports_the_jail_even_after_a_partial_test_pool() -> None:
    RawPool(skip_jail_layers=frozenset({"seccomp"})).close()
    report = asyncio.run(probe_jail())
    assert report["seccomp"] is True and report["netns"] is True and report["fs"] == "landlock"


def test_missing_names_each_absent_layer() -> None:
    report = {"netns": False, "no_new_privs": True, "seccomp": True, "landlock": False, "fs": "none",
              "unavailable": {"netns": "unshare: EPERM", "landlock": "landlock_create_ruleset: ENOSYS"}}
    assert missing(report) == ["netns (unshare: EPERM)", "fs (landlock_create_ruleset: ENOSYS)"]


@pytest.mark.skipif(ctypes.util.find_library("seccomp") is None, reason="libseccomp not installed")
@pytest.mark.parametrize("arch, table", [(0xC000003E, _X86_64), (0xC00000B7, _AARCH64)])
def test_syscall_tables_match_libseccomp(arch: int, table: dict[str, int]) -> None:
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp"))
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    for name in DENIED_SYSCALLS:
        nr = lib.seccomp_syscall_resolve_name_arch(arch, name.encode())
        if nr < 0:
            assert name not in table, name
        else:
            assert table.get(name) == nr, name


def test_the_filter_fits_bpf_jumps() -> None:
    for machine in ("x86_64", "aarch64"):
        program = seccomp_program(1234, machine)
        assert len(program) < 200
        assert all(0 <= jt <= 255 and 0 <= jf <= 255 for _, jt, jf, _ in program)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become an ordinary user")
@pytest.mark.parametrize("skip, fs", [(frozenset(), "landlock"), (frozenset({"landlock"}), "mount_ns")])
def test_an_ordinary_user_gets_the_same_jail_through_a_user_namespace(skip: frozenset[str], fs: str) -> None:
    """The service may run as an ordinary user: the net (and mount) namespace then come from a
    new user namespace. Forked here, not a pool worker: uid 1000 cannot read this interpreter."""
    import socket

    from sandbox.jail import Jail

    import warnings

    read, write = os.pipe()
    hold, release = os.pipe()
    with warnings.catch_warnings():     # 3.12+ warns about fork with threads; the children only unshare
        warnings.simplefilter("ignore", DeprecationWarning)
        victim = os.fork()
        if victim == 0:     # pragma: no cover - the service's stand-in: same uid, dumpable, a secret
            try:
                os.setgroups([])
                os.setgid(1000)
                os.setuid(1000)
                ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)     # PR_SET_DUMPABLE: as a normal process is
                os.environ["DESKFLOW_SECRETS_KEY"] = "s3cret"
                os.read(hold, 1)
            finally:
                os._exit(0)
        pid = os.fork()
    if pid == 0:     # pragma: no cover - the child reports through the pipe
        try:
            os.setgroups([])
            os.setgid(1000)
            os.setuid(1000)
            jail = Jail(skip)
            jail.enter_namespaces(privileged=False)
            jail.lock()
            outcomes = [repr(jail.report())]
            for action in (socket.socket, lambda: open("/tmp/deskflow-jail-user", "w"), lambda: os.kill(1, 0)):
                try:
                    action()
                    outcomes.append("done")
                except OSError as exc:
                    outcomes.append(type(exc).__name__)
            try:
                os.open(f"/proc/{victim}/environ", os.O_RDONLY)
                outcomes.append("read")
            except OSError as exc:
                outcomes.append(type(exc).__name__)
            libc = ctypes.CDLL(None)   # /proc is not readable in the jail: ask the kernel directly
            nnp, seccomp = libc.prctl(39, 0, 0, 0, 0), libc.prctl(21, 0, 0, 0, 0)   # PR_GET_*
            outcomes.append("nnp" if nnp == 1 and seccomp == 2 else f"no ({nnp}, {seccomp})")
            outcomes.append(os.readlink("/proc/self/ns/net") if fs == "landlock" else "hidden")
            os.write(write, "\n".join(outcomes).encode())
        except BaseException as exc:   # say what broke: the parent would wait on the pipe forever
            os.write(write, f"child failed: {exc!r}".encode())
        finally:
            os._exit(0)
    os.close(write)
    lines = os.read(read, 65536).decode().split("\n")
    os.waitpid(pid, 0)
    os.write(release, b"x")
    os.waitpid(victim, 0)
    report, sock, file, kill, environ, nnp, net = lines
    assert environ in ("PermissionError", "FileNotFoundError"), environ
    assert report == repr({"netns": True, "no_new_privs": True, "seccomp": True,
                           "landlock": fs == "landlock", "fs": fs})
    assert sock == "PermissionError" and file in ("PermissionError", "OSError") and kill == "PermissionError"
    assert nnp == "nnp" and net != os.readlink("/proc/self/ns/net")
    assert not os.path.exists("/tmp/deskflow-jail-user")
