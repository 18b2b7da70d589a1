"""What the managers' page asks for: nothing from another host, and signing in reads the key's
role from GET /v1/workspace instead of probing with an empty POST /v1/rules."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect


@pytest.mark.parametrize("role", ["viewer", "manager"])
def test_sign_in_reads_the_role_and_loads_nothing_from_another_host(browser, deskflow, role):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    seen: list[tuple[str, str]] = []
    host = urlsplit(deskflow.url).netloc

    def record(route):
        seen.append((route.request.method, route.request.url))
        if urlsplit(route.request.url).netloc == host:
            route.continue_()
        else:
            route.abort()

    context.route("**/*", record)
    try:
        pg = context.new_page()
        pg.goto(f"{deskflow.url}/admin")
        pg.get_by_label("API key").fill(getattr(deskflow, f"{role}_key"))
        pg.get_by_role("button", name="Sign in").click()
        expect(pg.locator("#who-text")).to_contain_text(role)
        pg.wait_for_load_state("networkidle")
    finally:
        context.close()
    assert seen, "no request was recorded"
    foreign = [u for _, u in seen if urlsplit(u).netloc != host]
    assert not foreign, foreign
    assert ("GET", f"{deskflow.url}/v1/workspace") in seen
    assert not [u for m, u in seen if m == "POST"], seen
