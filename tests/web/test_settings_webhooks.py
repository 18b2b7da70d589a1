"""The Webhook view in headless Chromium (issue 18 item 6): an admin sets the endpoint (a 422 shown
beside the URL), a delivery fails against a local receiver that refuses connections until it is
dead-lettered, the receiver comes back, and the admin replays the dead letter from the page (one,
then all) and sees it delivered, signed; a manager and a viewer see the API's 403, no form.

This module serves its own instance with a one-second retry window, so a dead letter takes about
a second instead of the default 24 hours."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import WEB_SETTINGS, Deskflow, running
from .web_helpers import DOCS, sign_in



def _receiver_module() -> Any:
    """The outbox tests' receiver (tests/server is not a package: load it by path, under the name
    its own tests import it by, so a full run shares one module)."""
    if "webhook_receiver" in sys.modules:
        return sys.modules["webhook_receiver"]
    spec = importlib.util.spec_from_file_location(
        "webhook_receiver", Path(__file__).resolve().parents[1] / "server" / "webhook_receiver.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["webhook_receiver"] = module
    spec.loader.exec_module(module)
    return module


webhook_receiver = _receiver_module()

SECRET = "whsec-web-1"
TAG_RULE = {"name": "tag new", "triggers": ["ticket.created"], "enabled": True,
            "actions": [{"type": "add_tags", "tags": ["seen"]}]}


@pytest.fixture(scope="module")
def deskflow() -> Iterator[Deskflow]:
    fast = dataclasses.replace(WEB_SETTINGS, webhook_retry_base_s=0.05, webhook_retry_cap_s=0.1,
                               webhook_retry_for_s=1.0, webhook_poll_s=0.02, webhook_timeout_s=2.0)
    with running(fast) as d:
        with d.client(d.admin_key) as c:
            assert c.post("/v1/rules", json=TAG_RULE).status_code == 201
        yield d


@pytest.fixture
def rx() -> Iterator[Any]:
    with webhook_receiver.Receiver() as r:
        yield r


def _event(n: str) -> dict[str, Any]:
    return {"id": f"wh-{n}", "type": "ticket.created",
            "ticket": {"id": f"T-wh-{n}", "subject": "Hook me", "status": "new"}}


def _failed(d: Deskflow, want: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    with d.client(d.admin_key) as c:
        while time.monotonic() < deadline:
            items = c.get("/v1/webhook/deliveries?state=failed").json()["items"]
            if len(items) >= want:
                return list(items)
            time.sleep(0.05)
    raise AssertionError(f"fewer than {want} dead letters after 20 s")


def _until_state(d: Deskflow, delivery: str, state: str) -> None:
    deadline = time.monotonic() + 20
    with d.client(d.admin_key) as c:
        while c.get(f"/v1/webhook/deliveries/{delivery}").json()["state"] != state:
            assert time.monotonic() < deadline, f"{delivery} is not {state} after 20 s"
            time.sleep(0.05)


def _open(page: Any, key: str) -> None:
    sign_in(page, key)
    page.get_by_role("button", name="Webhook").click()
    expect(page.locator("#webhook-setting h2")).to_be_visible()


def test_an_admin_sets_the_endpoint_and_replays_a_dead_letter(page, deskflow, rx):
    with deskflow.client(deskflow.admin_key) as c:
        assert c.put("/v1/allowlist", json={"hosts": [rx.url]}).status_code == 200
    _open(page, deskflow.admin_key)
    expect(page.locator("#webhook-current")).to_contain_text("No webhook is set")
    expect(page.locator("#dead-table")).to_be_hidden()

    # Not on the allow-list: the 422 sits beside the URL, nothing is saved.
    page.locator("#webhook-url").fill("http://127.0.0.2:9/hook")
    page.locator("#webhook-secret").fill(SECRET)
    page.get_by_role("button", name="Set endpoint").click()
    expect(page.locator('#webhook-form .field-error[data-error-for="url"]')).to_contain_text("allow-list")
    with deskflow.client(deskflow.admin_key) as c:
        assert c.get("/v1/webhook").status_code == 404

    page.locator("#webhook-url").fill(f"{rx.url}/hook")
    page.locator("#webhook-secret").fill(SECRET)
    page.get_by_role("button", name="Set endpoint").click()
    expect(page.locator("#webhook-current")).to_contain_text(f"{rx.url}/hook")
    expect(page.locator("#webhook-current")).to_contain_text("never shown")
    assert SECRET not in page.content()

    # The receiver refuses connections: the update is retried for a second, then dead-lettered.
    rx.stop()
    deskflow.send(_event("1"))
    dead = _failed(deskflow, 1)[0]
    page.get_by_role("button", name="Refresh").click()
    row = page.locator(f'#dead-table tr[data-delivery="{dead["id"]}"]')
    expect(row).to_contain_text("failed")
    assert int(row.locator("td").nth(3).inner_text()) >= 1     # tried (more under a light load)
    expect(row.locator(".last-result")).not_to_have_text("—")

    rx.start()   # back on the same port
    row.get_by_role("button", name=f"Resend {dead['id']}").click()
    expect(page.locator("#status")).to_contain_text("queued again")
    got = rx.wait_for(1)
    assert got[0].headers["x-deskflow-delivery"] == dead["id"] and got[0].verify(SECRET)
    _until_state(deskflow, dead["id"], "delivered")
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator(f'#dead-table tr[data-delivery="{dead["id"]}"]')).to_have_count(0)
    page.locator("#delivery-state").select_option("delivered")
    expect(page.locator(f'#delivery-table tr[data-delivery="{dead["id"]}"]')).to_contain_text("delivered")

    # Two more dead letters, then "Resend all" (pressed twice: it asks first).
    rx.stop()
    deskflow.send(_event("2"))
    deskflow.send(_event("3"))
    _failed(deskflow, 2)
    page.locator("#delivery-state").select_option("failed")
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#dead-table tbody tr")).to_have_count(2)
    expect(page.locator("#delivery-table tbody tr")).to_have_count(2)
    page.screenshot(path=str(DOCS / "admin-webhook.png"), full_page=True)
    rx.start()
    page.get_by_role("button", name="Resend every dead letter").click()
    page.get_by_role("button", name="Confirm: resend every dead letter").click()
    expect(page.locator("#status")).to_contain_text("2 dead letters are queued again")
    for d in rx.wait_for(3)[1:]:
        _until_state(deskflow, d.headers["x-deskflow-delivery"], "delivered")
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#dead-table")).to_be_hidden()
    expect(page.locator("#webhook-dead")).to_contain_text("No dead letters.")

    # Removing asks first, then the page says none is set.
    page.get_by_role("button", name="Remove the webhook").click()
    page.get_by_role("button", name="Confirm: remove the webhook").click()
    expect(page.locator("#webhook-current")).to_contain_text("No webhook is set")


def test_the_delivery_log_pages_by_twenty(page, deskflow, rx):
    with deskflow.client(deskflow.admin_key) as c:
        assert c.put("/v1/allowlist", json={"hosts": [rx.url]}).status_code == 200
        assert c.put("/v1/webhook", json={"url": f"{rx.url}/hook", "secret": SECRET}).status_code == 200
        for i in range(22):
            deskflow.send(_event(f"page-{i}"))
        rx.wait_for(22)
        deadline = time.monotonic() + 20
        while len(c.get("/v1/webhook/deliveries?state=delivered&limit=500").json()["items"]) < 22:
            assert time.monotonic() < deadline, "22 deliveries not recorded as delivered"
            time.sleep(0.05)
        total = len(c.get("/v1/webhook/deliveries?state=delivered&limit=500").json()["items"])
    _open(page, deskflow.admin_key)
    page.locator("#delivery-state").select_option("delivered")
    rows = page.locator("#delivery-table tbody tr")
    expect(rows).to_have_count(20)
    more = page.get_by_role("button", name="Older deliveries")
    for shown in range(40, total + 20, 20):
        more.click()
        expect(rows).to_have_count(min(shown, total))
    expect(more).to_be_hidden()
    ids = rows.evaluate_all("rs => rs.map((r) => r.dataset.delivery)")
    assert len(set(ids)) == total          # no page repeats another's rows
    expect(page.locator('#delivery-table td .state-delivered')).to_have_count(total)


@pytest.mark.parametrize("who", ["manager", "viewer"])
def test_below_admin_the_view_says_who_may_and_offers_no_form(page, deskflow, who):
    _open(page, getattr(deskflow, f"{who}_key"))
    note = page.locator("#webhook-note")
    expect(note).to_contain_text("admin")
    expect(page.locator("#view-webhooks .read-only")).to_contain_text(f"yours is {who}")
    expect(page.locator("#webhook-form")).to_have_count(0)
    expect(page.locator("#webhook-dead, #webhook-log")).to_have_count(0)
