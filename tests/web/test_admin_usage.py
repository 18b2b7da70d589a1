"""Rule usage on the managers' page (issue 8 part 3): the 30-day count, the "Unused 30 d" badge and
the "unused for 30 days" filter, in a real Chromium against a real server on the real Redis (the
test ages one rule by rewriting its creation time there: the API never lets a client set it)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from playwright.sync_api import expect

from server.app import create_app
from server.settings import Settings
from server.store import keys as K

from .conftest import ROOT_TOKEN, _free_port
from .web_helpers import sign_in

RULE = {"triggers": ["ticket.created"], "actions": [{"type": "add_tags", "tags": ["seen"]}], "enabled": True}


@pytest.fixture
def aged(redis_url: str) -> Iterator[dict[str, Any]]:
    """A server on `redis_url` with three rules: one 40 days old that never fired, one 40 days old
    that fired today, and a new one that never fired."""
    settings = Settings(redis_url=redis_url, data_file=None, root_token=ROOT_TOKEN, poll_ms=5)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, worker=True), host="127.0.0.1",
                                           port=_free_port(), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.config.port}"
    try:
        with httpx.Client(base_url=url, timeout=15) as c:
            ws = c.post("/v1/workspaces", json={"name": "usage"},
                        headers={"Authorization": f"Bearer {ROOT_TOKEN}"}).json()
            h = {"Authorization": f"Bearer {ws['admin_key']}"}
            ids = {name: c.post("/v1/rules", json={**RULE, "name": name}, headers=h).json()["id"]
                   for name in ("Old and idle", "Old and busy", "New and idle")}
            r = redis.Redis.from_url(redis_url, decode_responses=True)
            old = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            for name in ("Old and idle", "Old and busy"):
                rule = json.loads(r.hget(K.rules(ws["id"]), ids[name]))
                r.hset(K.rules(ws["id"]), ids[name], json.dumps({**rule, "created_at": old}))
            r.incr(K.rules_rev(ws["id"]))   # as every rule write does: the API keeps rules per revision
            r.close()
            c.patch(f"/v1/rules/{ids['Old and idle']}", json={"enabled": False}, headers=h)
            c.patch(f"/v1/rules/{ids['New and idle']}", json={"enabled": False}, headers=h)
            out = c.post("/v1/events?wait=true", headers=h,
                         json={"id": "e1", "type": "ticket.created", "ticket": {"id": "T-1"}})
            assert out.status_code == 200 and out.json()["status"] == "processed", out.text
        yield {"url": url, "key": ws["admin_key"]}
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.redis
def test_unused_badge_filter_and_counts(browser: Any, aged: dict[str, Any]) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto(f"{aged['url']}/admin")
        sign_in(page, aged["key"])
        rows = page.locator("#rules-table tbody tr")
        expect(rows).to_have_count(3)

        def row(name: str) -> Any:
            return page.locator("#rules-table tbody tr", has=page.get_by_text(name, exact=True))

        expect(row("Old and idle").locator(".badge.unused")).to_have_text("Unused 30 d")
        expect(row("Old and busy").locator(".badge.unused")).to_have_count(0)
        expect(row("New and idle").locator(".badge.unused")).to_have_count(0)  # too young to judge
        cells = row("Old and busy").locator("td.c-n")
        expect(cells).to_have_text(["1", "1"])
        assert "1 in the last hour" in (cells.first.get_attribute("title") or "")
        page.get_by_label("Show").select_option("unused")
        expect(rows).to_have_count(1)
        expect(page.locator("#rules-table tbody tr .rule-name-text")).to_have_text(["Old and idle"])
        expect(page.locator("#rule-count")).to_have_text("1 of 3 rules")
    finally:
        context.close()
