"""server/cli/loops.py: which loop the service's commands run on, and the setting that chooses it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import click
import pytest

from server.cli import loops


async def _loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_takes_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv("DESKFLOW_EVENT_LOOP", raising=False)
    assert loops.loop_name() == "uvloop"
    assert loops.run(_loop_type()).startswith("uvloop")


def test_asyncio_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKFLOW_EVENT_LOOP", "asyncio")
    assert loops.loop_name() == "asyncio"
    assert loops.run(_loop_type()).startswith("asyncio")


def test_a_wrong_value_is_a_usage_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKFLOW_EVENT_LOOP", "tokio")
    with pytest.raises(click.UsageError, match="DESKFLOW_EVENT_LOOP must be one of"):
        loops.loop_name()


def test_the_worker_command_refuses_a_wrong_value_before_starting() -> None:
    env = {**os.environ, "DESKFLOW_EVENT_LOOP": "tokio", "DESKFLOW_REDIS_URL": "redis://127.0.0.1:1/0"}
    done = subprocess.run([sys.executable, "-m", "server.cli", "worker", "--burst"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "DESKFLOW_EVENT_LOOP" in done.stderr


def test_run_sets_the_gils_switch_interval() -> None:
    """`serve` and `worker` run with the GIL's switch interval at SWITCH_INTERVAL_S (0.2 ms): a
    thread computing Python (a rule compile) gives way to the event loop that soon."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        async def seen() -> float:
            return sys.getswitchinterval()

        assert loops.run(seen()) == pytest.approx(loops.SWITCH_INTERVAL_S)
        assert loops.SWITCH_INTERVAL_S <= 0.0002
    finally:
        sys.setswitchinterval(before)
