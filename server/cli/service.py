"""`deskflow serve`, `deskflow api` and `deskflow worker`: the service's processes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
from typing import Any

import click

from server.cli import loops
from server.cli.base import LOG_LEVEL, main
from server.settings import Settings

def log_setup(settings: Settings, level: str = "info") -> dict[str, Any]:
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


HOST = click.option("--host", envvar="DESKFLOW_HOST", default="127.0.0.1", show_default=True,
                     help="Address to listen on (env DESKFLOW_HOST).")
PORT = click.option("--port", envvar="DESKFLOW_PORT", default=8080, show_default=True, type=int,
                     help="Port to listen on (env DESKFLOW_PORT).")


def _listen(host: str, port: int) -> socket.socket:
    """Bind the API's socket before anything else happens: a start that cannot listen must fail
    before it prints keys, creates the demo workspace or opens (and on exit saves) the embedded
    store's file -- else a second `serve --demo` on a busy port revokes the running one's demo keys
    and overwrites its snapshot. The bound socket is handed to uvicorn, so there is no window in
    which another process could take the port between the check and the listen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and an
    # accepted connection has its listener's. With 0 every answer (uvicorn writes the headers and
    # the body apart) waited 40 ms for the client's delayed ACK under Nagle: 44 ms a /healthz.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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
@HOST
@PORT
@click.option("--demo", is_flag=True, help="Create a 'demo' workspace with sample rules; print keys.")
@LOG_LEVEL
def serve(host: str, port: int, demo: bool, log_level: str) -> None:
    """Run the API and a worker in one process (embedded store unless DESKFLOW_REDIS_URL).
    SIGTERM or Ctrl-C: stop accepting, finish in-flight work, save the embedded store, exit 0.
    A port that is taken: exit 1 before anything is printed or written."""
    sock = _listen(host, port)
    try:
        settings = Settings.from_env()
        log_config = log_setup(settings, log_level)
        loops.run(_serve(settings, host, port, demo, log_config, sock))
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
@HOST
@PORT
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn processes.")
@LOG_LEVEL
def api(host: str, port: int, workers: int, log_level: str) -> None:
    """Run only the HTTP API (scale-out on Redis: run `deskflow worker` beside it)."""
    import uvicorn

    sock = _listen(host, port)
    settings = Settings.from_env()
    log_config = log_setup(settings, log_level)
    if not settings.redis_url:
        click.echo("deskflow: warning: no DESKFLOW_REDIS_URL; the API alone on an embedded store "
                   "queues events no worker will see. Use `deskflow serve`.", err=True)
    click.echo(f"deskflow: store: {settings.store_description}")
    if workers > 1:  # uvicorn's supervisor: SIGTERM stops every process, then exits 0
        sock.close()  # the supervisor binds its own shared socket; ours only checked the port
        uvicorn.run("server.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_config=log_config, loop=loops.loop_name())
        return
    config = uvicorn.Config("server.app:create_app", factory=True, host=host, port=port,
                            log_config=log_config, loop=loops.loop_name())
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
@LOG_LEVEL
def worker(burst: bool, metrics_port: int | None, metrics_host: str, log_level: str) -> None:
    """Run a worker on DESKFLOW_REDIS_URL (as many as you like; they share the partitions).
    SIGTERM or Ctrl-C: stop reading, finish the batch in hand, release the partitions' leases
    (another worker takes them at once), exit 0."""
    settings = Settings.from_env()
    if not settings.redis_url:
        raise click.UsageError("`deskflow worker` needs DESKFLOW_REDIS_URL (the embedded store "
                               "lives inside `deskflow serve`).")
    log_setup(settings, log_level)
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
        loops.run(_worker(settings, burst))
    finally:
        if listener is not None:
            listener.shutdown()


async def _worker(settings: Settings, burst: bool) -> None:
    from server.api.health import check_sandbox_jail
    from server.runtime import Runtime
    from server.scripting import Scripting
    from server.store.connect import close_store, open_store

    await check_sandbox_jail(settings)   # logs the sandbox jail; raises if required and incomplete
    store = await open_store(settings)
    scripting = Scripting(store, settings)
    # Webhook deliveries are sent by worker processes (not in --burst: it drains events only).
    runtime = Runtime(store, settings, scripting, burst=burst, outbox=not burst)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, runtime.request_stop)
    try:
        n = await runtime.run()
        click.echo(f"deskflow: worker {runtime.worker.name} stopped after {n} events")
    finally:
        await scripting.aclose()
        await close_store(store)
