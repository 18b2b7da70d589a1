"""The deskflow command: --help everywhere, `serve --demo` over real HTTP, the HTTP subcommands,
and store-mode operator commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from server.cli import main
from testkit import START_S, free_port, wait_answering


def _commands(group: click.Group, prefix: list[str]) -> Iterator[list[str]]:
    yield prefix
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, [*prefix, name])
        else:
            yield [*prefix, name]


def test_help_on_every_command() -> None:
    runner = CliRunner()
    seen = []
    for path in _commands(main, []):
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        seen.append(" ".join(path))
    for want in ("serve", "api", "worker", "workspace create", "keys create", "events send",
                 "rules list", "rules enable", "rules disable", "export", "plan", "apply"):
        assert want in seen


def test_workspace_and_key_create_in_store_mode(store_kind: str, request: pytest.FixtureRequest,
                                                tmp_path: Path) -> None:
    env = {"DESKFLOW_DATA_FILE": str(tmp_path / "d.json")}
    if store_kind == "redis":
        env["DESKFLOW_REDIS_URL"] = request.getfixturevalue("redis_url")
    runner = CliRunner(env=env)
    result = runner.invoke(main, ["workspace", "create", "acme"])
    assert result.exit_code == 0, result.output
    ws = json.loads(result.output)
    assert ws["name"] == "acme" and ws["admin_key"].startswith("df_")
    result = runner.invoke(main, ["keys", "create", "--role", "ingest", "--workspace", ws["id"]])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["role"] == "ingest"
    bad = runner.invoke(main, ["keys", "create", "--role", "ingest", "--workspace", "nope"])
    assert bad.exit_code != 0 and "no workspace" in bad.output


def test_serve_demo_and_http_commands(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "deskflow-data.json"
    env = {**os.environ, "DESKFLOW_DATA_FILE": str(data), "PYTHONUNBUFFERED": "1"}
    env.pop("DESKFLOW_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--demo", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        while not any("API and worker on" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"serve exited: {lines}"
            lines.append(line)
        out = "".join(lines)
        assert "embedded store (managed redis-server" in out or "embedded in-process store" in out
        admin = next(ln.split()[-1] for ln in lines if "admin key:" in ln)
        ingest = next(ln.split()[-1] for ln in lines if "ingest key:" in ln)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_S
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.05)
        runner = CliRunner()
        listed = runner.invoke(main, ["rules", "list", "--url", url, "--key", admin])
        assert listed.exit_code == 0, listed.output
        assert "VIP refunds go to the VIP desk" in listed.output
        off = [ln.split()[1] for ln in listed.output.splitlines() if " off " in ln]
        assert off, listed.output
        r = runner.invoke(main, ["rules", "enable", off[0], "--url", url, "--key", admin])
        assert r.exit_code == 0 and "enabled" in r.output
        r = runner.invoke(main, ["rules", "disable", off[0], "--url", url, "--key", admin])
        assert r.exit_code == 0 and "disabled" in r.output
        denied = runner.invoke(main, ["rules", "enable", off[0], "--url", url, "--key", ingest])
        assert denied.exit_code != 0 and "403" in denied.output
        evfile = tmp_path / "ev.json"
        evfile.write_text(json.dumps({
            "id": "cli-1", "type": "ticket.created",
            "ticket": {"id": "T-1", "subject": "Refund please",
                       "contact": {"id": "C-1", "name": "Ann", "groups": ["vip"]}}}))
        sent = runner.invoke(main, ["events", "send", str(evfile), "--wait", "--url", url,
                                    "--key", ingest])
        assert sent.exit_code == 0, sent.output
        summary = json.loads(sent.output)
        assert summary["status"] == "processed"
        assert summary["ticket"]["department"] == "vip-desk"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
    assert data.exists() or (tmp_path / "deskflow-data" / "appendonlydir").is_dir()  # fallback | managed


@pytest.mark.redis
def test_api_and_worker_as_separate_processes(redis_url: str) -> None:
    """The scale-out set-up: `deskflow api` and two `deskflow worker` processes on one Redis."""
    port = free_port()
    env = {**os.environ, "DESKFLOW_REDIS_URL": redis_url, "DESKFLOW_ROOT_TOKEN": "root-t",
           "DESKFLOW_PARTITIONS": "4"}
    procs = [subprocess.Popen([sys.executable, "-m", "server.cli", "api", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([sys.executable, "-m", "server.cli", "worker"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for _ in range(2)]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "deskflow api did not start"
            time.sleep(0.05)
        ws = httpx.post(f"{url}/v1/workspaces", json={"name": "acme"},
                        headers={"Authorization": "Bearer root-t"}).json()
        h = {"Authorization": f"Bearer {ws['admin_key']}"}
        for i in range(20):
            r = httpx.post(f"{url}/v1/events", headers=h, json={
                "id": f"e{i}", "type": "ticket.updated" if i else "ticket.created",
                "ticket": {"id": f"T-{i % 4}", "custom": {"n": i}}})
            assert r.status_code == 202, r.text
        r = httpx.post(f"{url}/v1/events?wait=true", headers=h, timeout=15, json={
            "id": "last", "type": "ticket.updated", "ticket": {"id": "T-0"}})
        assert r.status_code == 200 and r.json()["status"] == "processed", r.text
        assert r.json()["ticket"]["custom"] == {"n": 16} and r.json()["ticket"]["version"] == 6
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(15)
    assert [p.returncode for p in procs[1:]] == [0, 0]  # workers stop cleanly on SIGTERM


def test_export_plan_apply_round_trip(tmp_path: Path) -> None:
    """Rules as code over real HTTP: export the demo rules as YAML, plan and apply an edited file,
    then the same file again changes nothing."""
    port = free_port()
    env = {**os.environ, "DESKFLOW_DATA_FILE": str(tmp_path / "d.json"), "PYTHONUNBUFFERED": "1"}
    env.pop("DESKFLOW_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--demo", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("API and worker on" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"serve exited: {lines}"
            lines.append(line)
        admin = next(ln.split()[-1] for ln in lines if "admin key:" in ln)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_S
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.05)
        runner = CliRunner(env={"DESKFLOW_URL": url, "DESKFLOW_KEY": admin})
        exported = runner.invoke(main, ["export"])
        assert exported.exit_code == 0, exported.output
        import yaml

        doc = yaml.safe_load(exported.output)
        assert doc["deskflow"] == 1 and len(doc["rules"]) == 4
        assert "VIP refunds go to the VIP desk" in [r["name"] for r in doc["rules"]]
        as_json = runner.invoke(main, ["export", "--format", "json"])
        assert json.loads(as_json.output)["rules"] == doc["rules"]
        rules_file = tmp_path / "rules.yaml"
        rules_file.write_text(exported.output)
        unchanged = runner.invoke(main, ["plan", str(rules_file)])
        assert unchanged.exit_code == 0, unchanged.output
        assert "0 create, 0 update, 0 disable, 0 delete" in unchanged.output
        doc["rules"][0]["name"] = "Renamed in git"
        doc["rules"].append({"name": "From the file", "enabled": True, "triggers": ["ticket.created"],
                             "actions": [{"type": "add_tags", "tags": ["from-file"]}]})
        rules_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        plan = runner.invoke(main, ["plan", str(rules_file)])
        assert plan.exit_code == 0, plan.output
        assert "1 create, 1 update, 0 disable, 0 delete" in plan.output
        assert '-> "Renamed in git"' in plan.output
        applied = runner.invoke(main, ["apply", str(rules_file)])
        assert applied.exit_code == 0 and "applied" in applied.output, applied.output
        again = runner.invoke(main, ["apply", str(rules_file)])
        assert again.exit_code == 0 and "nothing to change" in again.output, again.output
        names = [r["name"] for r in yaml.safe_load(runner.invoke(main, ["export"]).output)["rules"]]
        assert names[0] == "Renamed in git" and names[-1] == "From the file"
        bad_file = tmp_path / "bad.yaml"
        bad_file.write_text("rules:\n  - name: x\n    triggers: [nope]\n    actions: []\n")
        bad = runner.invoke(main, ["apply", str(bad_file)])
        assert bad.exit_code != 0 and "422" in bad.output and "rules[0].triggers[0]" in bad.output
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("command, how", [("serve", "--port"), ("serve", "DESKFLOW_PORT"),
                                          ("api", "--port")])
def test_a_busy_port_fails_before_printing_keys_or_writing(tmp_path: Path, command: str,
                                                           how: str) -> None:
    """A second `serve --demo` on a taken port used to print fresh demo keys (revoking the running
    server's), say "API and worker on ...", fail with errno 98 and write the snapshot file."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name in ("DESKFLOW_REDIS_URL", "DESKFLOW_DATA_FILE", "DESKFLOW_SECRETS_KEY_FILE",
                     "DESKFLOW_PORT", "DESKFLOW_HOST"):
            env.pop(name, None)
        args = [sys.executable, "-m", "server.cli", command]
        args += ["--demo"] if command == "serve" else []
        if how == "--port":
            args += ["--port", str(port)]
        else:
            env["DESKFLOW_PORT"] = str(port)
        proc = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert f"port {port} is in use; use --port N or DESKFLOW_PORT" in proc.stderr
    assert "key" not in proc.stdout and "API and worker on" not in proc.stdout, proc.stdout
    assert list(tmp_path.iterdir()) == []  # no deskflow-data.json, no secrets key file


def test_host_and_port_come_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DESKFLOW_DATA_FILE": str(tmp_path / "d.json"), "PYTHONUNBUFFERED": "1",
           "DESKFLOW_PORT": str(port), "DESKFLOW_HOST": "127.0.0.1"}
    env.pop("DESKFLOW_REDIS_URL", None)
    with subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "API and worker on" in line:
                    assert f"http://127.0.0.1:{port}" in line
                    break
            wait_answering(f"http://127.0.0.1:{port}", proc=proc, what="serve")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_the_listening_socket_gives_connections_tcp_nodelay() -> None:
    """serve and api hand uvicorn the socket `_listen` bound; asyncio sets TCP_NODELAY only on a
    connection whose socket says IPPROTO_TCP (an accepted one has its listener's proto). With
    proto 0 each answer's body (written apart from its headers) waited for the client's delayed
    ACK under Nagle: 44 ms a /healthz over keep-alive, where it is 0.5 ms."""
    import asyncio

    from server.cli.service import _listen

    async def accepted_nodelay() -> int:
        sock = _listen("127.0.0.1", free_port())
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            got.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(connected, sock=sock)
        try:
            _, writer = await asyncio.open_connection(*sock.getsockname())
            value = await asyncio.wait_for(got, 10)
            writer.close()
            await writer.wait_closed()
            return value
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(accepted_nodelay()) != 0
