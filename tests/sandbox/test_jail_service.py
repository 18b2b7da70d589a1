"""The jail as the service reports and requires it: /readyz, the start-up log,
DESKFLOW_SANDBOX_REQUIRE_JAIL."""
from __future__ import annotations

import logging
import sys

import pytest
from starlette.testclient import TestClient

from sandbox import JailUnavailable, pool as pool_module
from server.app import create_app
from server.settings import Settings

FULL = {"netns": True, "no_new_privs": True, "seccomp": True, "landlock": True, "fs": "landlock"}


def _settings(**overrides: object) -> Settings:
    return Settings(data_file=None, **overrides)  # type: ignore[arg-type]


def test_settings_read_the_jail_and_share_switches() -> None:
    s = Settings.from_env({"DESKFLOW_SANDBOX_REQUIRE_JAIL": "1", "DESKFLOW_SCRIPT_WORKSPACE_SHARE": "3",
                           "DESKFLOW_SCRIPT_QUEUE_TIMEOUT_S": "2.5"})
    assert s.sandbox_require_jail is True
    assert s.script_workspace_share == 3 and s.script_queue_timeout_s == 2.5
    assert Settings.from_env({}).sandbox_require_jail is False
    assert Settings.from_env({"DESKFLOW_SANDBOX_REQUIRE_JAIL": "0"}).sandbox_require_jail is False


def test_readyz_reports_the_jail_and_the_start_up_log_says_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="deskflow.sandbox")
    with TestClient(create_app(_settings(sandbox_require_jail=True))) as client:
        body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["jail"] == FULL
    assert any("sandbox jail:" in r.getMessage() and '"seccomp":true' in r.getMessage()
               for r in caplog.records)


def test_require_jail_refuses_to_start_when_a_layer_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a container without Landlock, mount namespaces and seccomp reports (the real worker's
    # refusal of a missing layer is tested in test_jail.py with the layer actually off).
    partial = {"netns": True, "no_new_privs": True, "seccomp": False, "landlock": False, "fs": "none",
               "unavailable": {"seccomp": "prctl(PR_SET_SECCOMP): EINVAL", "landlock": "ENOSYS"}}
    monkeypatch.setitem(pool_module._PROBED, sys.executable, partial)
    with pytest.raises(JailUnavailable) as info:
        with TestClient(create_app(_settings(sandbox_require_jail=True))):
            pass
    assert "seccomp (prctl(PR_SET_SECCOMP): EINVAL)" in str(info.value)
    assert "fs (ENOSYS)" in str(info.value)
    # Without the switch the service starts and says what is missing.
    with TestClient(create_app(_settings())) as client:
        assert client.get("/readyz").json()["jail"]["seccomp"] is False
