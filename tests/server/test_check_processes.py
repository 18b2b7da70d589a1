"""`deskflow serve` (embedded store) and `deskflow api` start their check processes on the first
big check and leave none behind: stopped with SIGTERM they reap them, killed with SIGKILL the
kernel ends them (PR_SET_PDEATHSIG, server/checkpool.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from testkit import START_S, free_port, wait_until

ROOT = "check-processes-root"


def _children(pid: int) -> list[int]:
    """Check processes of `pid` (spawned children running multiprocessing's spawn_main)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmd:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _big_rule() -> dict[str, object]:
    patterns = ["|".join(f"k{k}w{j:03d}" for j in range(70)) for k in range(20)]
    return {"name": "wide", "triggers": ["ticket.created"],
            "conditions": {"any": [{"field": "subject", "op": "matches", "value": p} for p in patterns]},
            "actions": [{"type": "add_tags", "tags": ["w"]}]}


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", *args, "--port", str(port)],
                            env={**{k: v for k, v in os.environ.items() if k != "DESKFLOW_REDIS_URL"},
                                 "DESKFLOW_ROOT_TOKEN": ROOT, "DESKFLOW_RATE_LIMIT": "0",
                                 "DESKFLOW_LOG_LEVEL": "warning", **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, "deskflow exited at start"
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout=START_S, what="deskflow to answer /healthz")
    return proc, base


def _check_big_rule(base: str) -> None:
    r = httpx.post(f"{base}/v1/workspaces", json={"name": "w"},
                   headers={"Authorization": f"Bearer {ROOT}"}, timeout=10)
    assert r.status_code == 201, r.text
    key = r.json()["admin_key"]
    r = httpx.post(f"{base}/v1/rules", json=_big_rule(), headers={"Authorization": f"Bearer {key}"},
                   timeout=60)
    assert r.status_code == 201, r.text[:300]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_serve_leaves_no_check_process_behind(tmp_path: Path, stop: signal.Signals) -> None:
    env = {"DESKFLOW_DATA_FILE": str(tmp_path / "d.json"), "DESKFLOW_PARTITIONS": "1"}
    proc, base = _start(["serve"], env)
    with _killed_at_exit(proc):
        assert _children(proc.pid) == []        # none until a check needs one
        _check_big_rule(base)
        kids = _children(proc.pid)
        assert len(kids) == 1
        proc.send_signal(stop)
        proc.wait(30)
    _assert_gone(kids)


@contextlib.contextmanager
def _killed_at_exit(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _assert_gone(kids: list[int]) -> None:
    wait_until(lambda: [k for k in kids if _alive(k)], lambda left: not left, timeout=10,
               what="the check and compile processes to end")


def test_api_leaves_no_check_process_behind(redis_url: str) -> None:
    proc, base = _start(["api"], {"DESKFLOW_REDIS_URL": redis_url})
    try:
        _check_big_rule(base)
        kids = _children(proc.pid)
        assert len(kids) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not [k for k in kids if _alive(k)]


def _dense(i: int) -> dict[str, object]:
    return {"id": f"d{i:04d}", "name": f"dense {i}", "enabled": True, "triggers": ["ticket.created"],
            "conditions": {"all": [{"field": "subject", "op": "contains", "value": f"w{i}x{j:02d}"}
                                   for j in range(20)]},
            "actions": [{"type": "add_tags", "tags": ["d"]}]}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_serves_compile_process_is_left_behind_by_neither_stop(tmp_path: Path, stop: signal.Signals) -> None:
    """The worker's rule cache compiles a big bucket's source in a process of its own
    (server/rulecache.py): started by the first such compile, reaped on SIGTERM, ended by the
    kernel on SIGKILL, as the API's check processes are."""
    env = {"DESKFLOW_DATA_FILE": str(tmp_path / "d.json"), "DESKFLOW_PARTITIONS": "1"}
    proc, base = _start(["serve"], env)
    with _killed_at_exit(proc):
        r = httpx.post(f"{base}/v1/workspaces", json={"name": "w"},
                       headers={"Authorization": f"Bearer {ROOT}"}, timeout=10)
        h = {"Authorization": f"Bearer {r.json()['admin_key']}"}
        r = httpx.post(f"{base}/v1/import", json={"deskflow": 1, "rules": [_dense(i) for i in range(300)]},
                       headers=h, timeout=120)
        assert r.status_code < 300, r.text[:300]
        checks = set(_children(proc.pid))   # the import's check, in the API's pool
        r = httpx.post(f"{base}/v1/events?wait=true", headers=h, timeout=120, json={
            "id": "e1", "type": "ticket.created",
            "ticket": {"id": "T-1", "subject": " ".join(f"w7x{j:02d}" for j in range(20))}})
        assert r.status_code == 200 and r.json()["changes"]["tags"]["added"] == ["d"], r.text[:300]
        kids = _children(proc.pid)
        assert len(set(kids) - checks) == 1, (kids, checks)   # the compile process
        proc.send_signal(stop)
        proc.wait(30)
    _assert_gone(kids)
