"""A real deskflow server (uvicorn in a thread, embedded store, worker in the same loop), a
workspace with manager and viewer keys, and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from server.app import create_app
from server.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT_TOKEN = "web-tests-root-token"

playwright_sync = pytest.importorskip("playwright.sync_api")


@dataclass
class Deskflow:
    url: str
    manager_key: str
    viewer_key: str
    admin_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=15,
                            headers={"Authorization": f"Bearer {key or self.manager_key}"})

    def create_rule(self, rule: dict[str, Any]) -> dict[str, Any]:
        with self.client() as c:
            r = c.post("/v1/rules", json=rule)
            assert r.status_code == 201, r.text
            return r.json()  # type: ignore[no-any-return]

    def send(self, event: dict[str, Any]) -> dict[str, Any]:
        """POST one event and wait for its run summary."""
        with self.client() as c:
            r = c.post("/v1/events?wait=true", json=event)
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

    def clear_rules(self) -> None:
        with self.client() as c:
            for rule in c.get("/v1/rules?limit=500").json()["items"]:
                c.delete(f"/v1/rules/{rule['id']}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(settings: Settings) -> Iterator[Deskflow]:
    """Serve `settings` on a free port with its worker, make a workspace with admin, manager and
    viewer keys, and stop the server on exit (a test module with other settings uses it too)."""
    app = create_app(settings, worker=True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="deskflow-web-tests", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    with httpx.Client(base_url=url, timeout=15) as c:
        ws = c.post("/v1/workspaces", json={"name": "web-tests"},
                    headers={"Authorization": f"Bearer {ROOT_TOKEN}"})
        assert ws.status_code == 201, ws.text
        admin = ws.json()["admin_key"]
        keys = {}
        for role in ("manager", "viewer"):
            r = c.post("/v1/keys", json={"role": role, "name": f"web {role}"},
                       headers={"Authorization": f"Bearer {admin}"})
            assert r.status_code == 201, r.text
            keys[role] = r.json()["key"]
    try:
        yield Deskflow(url=url, manager_key=keys["manager"], viewer_key=keys["viewer"],
                       admin_key=admin)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


WEB_SETTINGS = Settings(redis_url=None, data_file=None, root_token=ROOT_TOKEN, poll_ms=5)


@pytest.fixture(scope="session")
def deskflow() -> Iterator[Deskflow]:
    with running(WEB_SETTINGS) as d:
        yield d


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped on purpose: while Playwright's sync API is open, its event loop counts as
    running in the main thread, which would break any asyncio test collected after this module."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (./dev test does it)")
    with playwright_sync.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, deskflow: Deskflow) -> Iterator[Any]:
    """A fresh browser context (so a fresh sessionStorage) at 1280x800, on /admin."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    # what a step may take before it fails: the page's answers come from a server in this very
    # process, which a loaded 2-core machine (the suite's other worker, chromium itself) can
    # keep from answering for seconds; 10 s timed the sign-in out twice in one full run here
    context.set_default_timeout(30_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.goto(f"{deskflow.url}/admin")
    try:
        yield pg
    finally:
        context.close()
    # 4xx answers the page expected (a viewer's 403, a 422) show up as console errors of the
    # failed fetch; anything else (a script error, a CSP violation) fails the test.
    unexpected = [e for e in errors if "Failed to load resource" not in e]
    assert not unexpected, unexpected
