"""The `deskflow` command.

Service:   serve (API + worker, one process), api, worker.
Operator:  workspace create, keys create -- straight to the store (DESKFLOW_REDIS_URL, or the
           embedded store's snapshot file while no server runs on it), or over HTTP with --url.
Users:     events send, rules list|enable|disable, export, plan, apply -- over HTTP to a running server (--url, --key;
           or DESKFLOW_URL, DESKFLOW_KEY).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import signal
import socket
import sys
from typing import Any

import click
import httpx

from server.settings import Settings

__all__ = ["main"]

_URL = click.option("--url", envvar="DESKFLOW_URL", default="http://127.0.0.1:8080",
                    show_default=True, help="Base URL of a running deskflow (env DESKFLOW_URL).")
_KEY = click.option("--key", envvar="DESKFLOW_KEY", required=True,
                    help="API key to send as Bearer token (env DESKFLOW_KEY).")


_LOG_LEVEL = click.option("--log-level", envvar="DESKFLOW_LOG_LEVEL", default="info",
                          show_default=True,
                          type=click.Choice(["debug", "info", "warning", "error"]),
                          help="Log level (env DESKFLOW_LOG_LEVEL). Logs are JSON lines on stderr.")


def _log_setup(settings: Settings, level: str = "info") -> dict[str, Any]:
    """JSON logs on stderr, secrets scrubbed (server/logs.py); returns uvicorn's log_config."""
    from server.logs import configure_logging

    return configure_logging(settings, level)


def _graceful_server(config: Any) -> Any:
    """A uvicorn.Server that shuts down on SIGTERM/SIGINT like uvicorn's (stop accepting, finish
    requests, run the lifespan's shutdown: the in-process worker finishes its batch and releases
    its leases, the embedded store is saved) and then returns instead of re-raising the signal:
    uvicorn >= 0.29 re-raises it after shutdown, which kills the process with 143 before the
    caller's own clean-up (closing and saving the store) has run."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            with super().capture_signals():
                try:
                    yield
                finally:
                    if self._captured_signals:
                        logging.getLogger("deskflow.cli").info(
                            "stopped on signal %s", ", ".join(
                                signal.Signals(s).name for s in self._captured_signals))
                    self._captured_signals.clear()

    return GracefulServer(config)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """deskflow: scriptable automation for help desks."""


# -- service -----------------------------------------------------------------------------------


_HOST = click.option("--host", envvar="DESKFLOW_HOST", default="127.0.0.1", show_default=True,
                     help="Address to listen on (env DESKFLOW_HOST).")
_PORT = click.option("--port", envvar="DESKFLOW_PORT", default=8080, show_default=True, type=int,
                     help="Port to listen on (env DESKFLOW_PORT).")


def _listen(host: str, port: int) -> socket.socket:
    """Bind the API's socket before anything else happens: a start that cannot listen must fail
    before it prints keys, creates the demo workspace or opens (and on exit saves) the embedded
    store's file -- else a second `serve --demo` on a busy port revokes the running one's demo keys
    and overwrites its snapshot. The bound socket is handed to uvicorn, so there is no window in
    which another process could take the port between the check and the listen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: restart over TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(f"port {port} is in use; use --port N or DESKFLOW_PORT") from exc
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                                   "use --host/--port (or DESKFLOW_HOST, DESKFLOW_PORT)") from exc
    sock.set_inheritable(True)
    return sock


@main.command()
@_HOST
@_PORT
@click.option("--demo", is_flag=True, help="Create a 'demo' workspace with sample rules; print keys.")
@_LOG_LEVEL
def serve(host: str, port: int, demo: bool, log_level: str) -> None:
    """Run the API and a worker in one process (embedded store unless DESKFLOW_REDIS_URL).
    SIGTERM or Ctrl-C: stop accepting, finish in-flight work, save the embedded store, exit 0.
    A port that is taken: exit 1 before anything is printed or written."""
    sock = _listen(host, port)
    try:
        settings = Settings.from_env()
        log_config = _log_setup(settings, log_level)
        asyncio.run(_serve(settings, host, port, demo, log_config, sock))
    finally:
        sock.close()


async def _serve(settings: Settings, host: str, port: int, demo: bool,
                 log_config: dict[str, Any] | None = None,
                 sock: socket.socket | None = None) -> None:
    import uvicorn

    from server.app import create_app
    from server.demo import setup_demo
    from server.store.connect import close_store, open_store

    sock = sock if sock is not None else _listen(host, port)
    store = await open_store(settings)
    try:
        click.echo(f"deskflow: store: {store.description}")  # what opened (a fallback says so)
        if demo:
            keys = await setup_demo(store)
            click.echo(f"deskflow: demo workspace {keys['workspace']}\n"
                       f"  admin key:  {keys['admin_key']}\n"
                       f"  ingest key: {keys['ingest_key']}\n"
                       f"  try: curl -H 'Authorization: Bearer {keys['admin_key']}' "
                       f"http://{host}:{port}/v1/rules")
        click.echo(f"deskflow: API and worker on http://{host}:{port} (docs at /docs)")
        app = create_app(settings, worker=True, store=store)
        server = _graceful_server(uvicorn.Config(app, host=host, port=port, lifespan="on",
                                                 log_config=log_config))
        await server.serve(sockets=[sock])
    finally:
        await close_store(store)
        if store.embedded and settings.data_file:
            click.echo(f"deskflow: saved the embedded store to {settings.data_file}")
        elif store.server is not None:
            click.echo(f"deskflow: stopped the embedded store; its data is in {settings.embedded_dir}")


@main.command()
@_HOST
@_PORT
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn processes.")
@_LOG_LEVEL
def api(host: str, port: int, workers: int, log_level: str) -> None:
    """Run only the HTTP API (scale-out on Redis: run `deskflow worker` beside it)."""
    import uvicorn

    sock = _listen(host, port)
    settings = Settings.from_env()
    log_config = _log_setup(settings, log_level)
    if not settings.redis_url:
        click.echo("deskflow: warning: no DESKFLOW_REDIS_URL; the API alone on an embedded store "
                   "queues events no worker will see. Use `deskflow serve`.", err=True)
    click.echo(f"deskflow: store: {settings.store_description}")
    if workers > 1:  # uvicorn's supervisor: SIGTERM stops every process, then exits 0
        sock.close()  # the supervisor binds its own shared socket; ours only checked the port
        uvicorn.run("server.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_config=log_config)
        return
    config = uvicorn.Config("server.app:create_app", factory=True, host=host, port=port,
                            log_config=log_config)
    server = _graceful_server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE (port taken, app failed to start)


@main.command()
@click.option("--burst", is_flag=True, help="Drain what is queued, then exit.")
@click.option("--metrics-port", envvar="DESKFLOW_METRICS_PORT", type=int, default=None,
              help="Serve this process's /metrics (events applied, rules, scripts...) on this "
                   "port (env DESKFLOW_METRICS_PORT); off by default.")
@click.option("--metrics-host", envvar="DESKFLOW_METRICS_HOST", default="127.0.0.1",
              show_default=True, help="Address of the --metrics-port listener.")
@_LOG_LEVEL
def worker(burst: bool, metrics_port: int | None, metrics_host: str, log_level: str) -> None:
    """Run a worker on DESKFLOW_REDIS_URL (as many as you like; they share the partitions).
    SIGTERM or Ctrl-C: stop reading, finish the batch in hand, release the partitions' leases
    (another worker takes them at once), exit 0."""
    settings = Settings.from_env()
    if not settings.redis_url:
        raise click.UsageError("`deskflow worker` needs DESKFLOW_REDIS_URL (the embedded store "
                               "lives inside `deskflow serve`).")
    _log_setup(settings, log_level)
    click.echo(f"deskflow: worker on {settings.store_description}")
    listener = None
    if metrics_port is not None:
        from prometheus_client import start_http_server

        from server.metrics import METRICS

        # no token on this listener: the public view (no rule ids or hosts, server/metrics.py)
        listener, _ = start_http_server(metrics_port, metrics_host,
                                        registry=METRICS.public)
        click.echo(f"deskflow: worker metrics on http://{metrics_host}:{metrics_port}/metrics")
    try:
        asyncio.run(_worker(settings, burst))
    finally:
        if listener is not None:
            listener.shutdown()


async def _worker(settings: Settings, burst: bool) -> None:
    from server.store.connect import close_store, open_store
    from server.worker import Worker

    from server.api.health import check_sandbox_jail
    from server.outbox import Outbox
    from server.scripting import Scripting

    await check_sandbox_jail(settings)   # logs the sandbox jail; raises if required and incomplete
    store = await open_store(settings)
    scripting = Scripting(store, settings)
    w = Worker(store=store, burst=burst, scripting=scripting)
    # Webhook deliveries are sent by worker processes (not in --burst: it drains events only).
    outbox = None if burst else Outbox(store=store, settings=settings)
    sending = asyncio.create_task(outbox.run(), name="deskflow-outbox") if outbox else None
    loop = asyncio.get_running_loop()

    def stop() -> None:
        w.stop()
        if outbox is not None:
            outbox.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)
    try:
        n = await w.run()
        click.echo(f"deskflow: worker {w.name} stopped after {n} events")
    finally:
        if outbox is not None and sending is not None:
            outbox.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sending, 30)
        await scripting.aclose()
        await close_store(store)


# -- operator commands -------------------------------------------------------------------------


async def _with_store(fn: Any) -> Any:
    from server.store.connect import close_store, open_store

    store = await open_store(Settings.from_env())
    try:
        return await fn(store)
    finally:
        await close_store(store)


def _http(method: str, url: str, token: str, body: Any = None) -> Any:
    try:
        resp = httpx.request(method, url, headers={"Authorization": f"Bearer {token}"},
                             json=body, timeout=30)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from exc
    data = resp.json() if resp.content and "json" in resp.headers.get("content-type", "") else None
    if resp.status_code >= 400:
        err = (data or {}).get("error", {}) if isinstance(data, dict) else {}
        detail = f" {json.dumps(err.get('details'))}" if err.get("details") else ""
        raise click.ClickException(f"{resp.status_code} {err.get('code', '')}: "
                                   f"{err.get('message', resp.text)}{detail}")
    return data


@main.group()
def workspace() -> None:
    """Workspaces (operator)."""


@workspace.command("create")
@click.argument("name")
@click.option("--url", default=None, help="Create over HTTP on this server (needs --root-token).")
@click.option("--root-token", envvar="DESKFLOW_ROOT_TOKEN", default=None)
def workspace_create(name: str, url: str | None, root_token: str | None) -> None:
    """Create a workspace and print its id and first admin key."""
    if url:
        if not root_token:
            raise click.UsageError("--url needs --root-token (or DESKFLOW_ROOT_TOKEN).")
        data = _http("POST", f"{url.rstrip('/')}/v1/workspaces", root_token, {"name": name})
    else:
        from server.store import catalog

        async def create(store: Any) -> dict[str, str]:
            ws, secret = await catalog.create_workspace(store, name)
            return {"id": ws["id"], "name": ws["name"], "admin_key": secret}

        data = asyncio.run(_with_store(create))
    click.echo(json.dumps(data, indent=2))


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--role", required=True,
              type=click.Choice(["ingest", "viewer", "manager", "developer", "admin"]))
@click.option("--name", default="", help="A label for the key.")
@click.option("--workspace", "workspace_id", default=None, help="Workspace id (store mode).")
@click.option("--url", default=None, help="Create over HTTP on this server (needs --key).")
@click.option("--key", envvar="DESKFLOW_KEY", default=None, help="An admin key (HTTP mode).")
def keys_create(role: str, name: str, workspace_id: str | None, url: str | None,
                key: str | None) -> None:
    """Create an API key and print it (shown once)."""
    if url:
        if not key:
            raise click.UsageError("--url needs --key (an admin key).")
        data = _http("POST", f"{url.rstrip('/')}/v1/keys", key, {"role": role, "name": name})
    else:
        if not workspace_id:
            raise click.UsageError("store mode needs --workspace (or use --url and --key).")
        from server.store import catalog

        async def create(store: Any) -> dict[str, Any]:
            if await catalog.get_workspace(store, workspace_id) is None:
                raise click.ClickException(f"no workspace {workspace_id}")
            record, secret = await catalog.create_key(store, workspace_id, role, name)
            return {**record, "key": secret}

        data = asyncio.run(_with_store(create))
    click.echo(json.dumps(data, indent=2))


# -- user commands over HTTP -------------------------------------------------------------------


@main.group()
def events() -> None:
    """Events."""


@events.command("send")
@click.argument("file", type=click.File("rb"))
@_URL
@_KEY
@click.option("--wait", is_flag=True, help="Wait for the worker and print the run summary.")
def events_send(file: Any, url: str, key: str, wait: bool) -> None:
    """Send the event(s) in FILE (JSON: one event, a list, or {"events": [...]}; - for stdin)."""
    try:
        body = json.loads(file.read())
    except ValueError as exc:
        raise click.ClickException(f"{file.name} is not JSON: {exc}") from exc
    if isinstance(body, list):
        body = {"events": body}
    data = _http("POST", f"{url.rstrip('/')}/v1/events{'?wait=true' if wait else ''}", key, body)
    click.echo(json.dumps(data, indent=2))


@main.group()
def rules() -> None:
    """Rules."""


@rules.command("list")
@_URL
@_KEY
def rules_list(url: str, key: str) -> None:
    """List rules in order: position, id, enabled, name."""
    cursor = None
    while True:
        q = f"?limit=500&cursor={cursor}" if cursor else "?limit=500"
        data = _http("GET", f"{url.rstrip('/')}/v1/rules{q}", key)
        for r in data["items"]:
            click.echo(f"{r.get('position', ''):>3}  {r['id']}  "
                       f"{'on ' if r.get('enabled') else 'off'}  {r.get('name', '')}")
        cursor = data.get("next")
        if not cursor:
            break


@rules.command("enable")
@click.argument("rule_id")
@_URL
@_KEY
def rules_enable(rule_id: str, url: str, key: str) -> None:
    """Enable a rule."""
    r = _http("POST", f"{url.rstrip('/')}/v1/rules/{rule_id}/enable", key)
    click.echo(f"{r['id']} enabled")


@rules.command("disable")
@click.argument("rule_id")
@_URL
@_KEY
def rules_disable(rule_id: str, url: str, key: str) -> None:
    """Disable a rule."""
    r = _http("POST", f"{url.rstrip('/')}/v1/rules/{rule_id}/disable", key)
    click.echo(f"{r['id']} disabled")


# -- rules as code: export, plan, apply (over HTTP) ----------------------------------------------


def _send_document(method: str, url: str, token: str, content: bytes | None = None,
                   ctype: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if ctype:
        headers["Content-Type"] = ctype
    try:
        resp = httpx.request(method, url, headers=headers, content=content, timeout=60)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from exc
    if resp.status_code >= 400:
        try:
            err = resp.json().get("error", {})
        except ValueError:
            err = {}
        lines = [f"{resp.status_code} {err.get('code', '')}: {err.get('message', resp.text)}"]
        lines += [f"  {d.get('path') or '(document)'}: {d.get('reason')}"
                  for d in err.get("details") or [] if isinstance(d, dict)]
        raise click.ClickException("\n".join(lines))
    return resp


def _document_type(name: str, content: bytes) -> str:
    if name.endswith(".json") or content.lstrip()[:1] in (b"{", b"["):
        return "application/json"
    return "application/yaml"


def _show_plan(data: dict[str, Any]) -> None:
    for item in data["items"]:
        if item["action"] == "unchanged":
            continue
        label = item.get("id") or item.get("name") or ""
        if item.get("id") and item.get("name"):
            label = f"{item['id']} ({item['name']})"
        click.echo(f"{item['action']:>8}  {item['kind']:<10}  {label}")
        for field, (old, new) in item.get("diff", {}).items():
            if item["action"] != "create":
                click.echo(f"{'':>10}  {field}: {json.dumps(old)} -> {json.dumps(new)}")
    for note in data.get("notes") or []:
        click.echo(f"    note  {note}")
    s = data["summary"]
    click.echo(", ".join(f"{n} {k}" for k, n in s.items()))


_MISSING = click.option("--missing", type=click.Choice(["keep", "disable", "delete"]), default="keep",
                        show_default=True, help="What happens to rules (and, with delete, groups and "
                                                "SLA policies) that the file does not list.")


@main.command("secrets-key")
def secrets_key() -> None:
    """Print a new key for DESKFLOW_SECRETS_KEY (secrets at rest are sealed with it). Give every
    process the same value; to rotate, put the new key first: DESKFLOW_SECRETS_KEY=new,old."""
    from server.store.sealing import new_key

    click.echo(new_key())


@main.command("export")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@_URL
@_KEY
def export_cmd(fmt: str, url: str, key: str) -> None:
    """Print the workspace's rules, groups, SLA policies, script metadata and allow-list
    (`deskflow export > rules.yaml`); no secret values."""
    resp = _send_document("GET", f"{url.rstrip('/')}/v1/export?format={fmt}", key)
    click.echo(resp.text, nl=not resp.text.endswith("\n"))


@main.command("plan")
@click.argument("file", type=click.File("rb"))
@_MISSING
@_URL
@_KEY
def plan_cmd(file: Any, missing: str, url: str, key: str) -> None:
    """Show what `apply FILE` would change (create / update / disable / delete, with the fields)."""
    content = file.read()
    resp = _send_document("POST", f"{url.rstrip('/')}/v1/import?dry_run=true&missing={missing}", key,
                          content, _document_type(file.name, content))
    _show_plan(resp.json())


@main.command("apply")
@click.argument("file", type=click.File("rb"))
@_MISSING
@_URL
@_KEY
def apply_cmd(file: Any, missing: str, url: str, key: str) -> None:
    """Apply FILE all or nothing (JSON or YAML, as `deskflow export` writes it)."""
    content = file.read()
    resp = _send_document("POST", f"{url.rstrip('/')}/v1/import?missing={missing}", key, content,
                          _document_type(file.name, content))
    data = resp.json()
    _show_plan(data)
    click.echo("applied" if data["applied"] else "nothing to change")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
