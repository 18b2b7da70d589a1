"""The SLA policies view in headless Chromium (issue 18 item 6): a manager creates a policy with
targets, conditions and a business-hours week (bad values' 422s beside their controls), edits it,
moves it in the order with one PUT, sees its tickets with each target's state, and deletes it; a
viewer reads the same and can change none of it."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from .web_helpers import DOCS, sign_in

COND = {"all": [{"field": "tags", "op": "includes", "value": "slaweb"}]}


@pytest.fixture
def clean(deskflow: Any) -> Any:
    def wipe() -> None:
        with deskflow.client() as c:
            for name in [p["name"] for p in c.get("/v1/sla-policies").json()["items"]]:
                c.delete(f"/v1/sla-policies/{name}?force=true")
    wipe()
    yield deskflow
    wipe()


def _open(page: Any, key: str) -> None:
    sign_in(page, key)
    page.get_by_role("button", name="SLA policies").click()
    expect(page.locator("#sla-h")).to_be_visible()


def _names(d: Any) -> list[str]:
    with d.client() as c:
        return [p["name"] for p in c.get("/v1/sla-policies").json()["items"]]


def test_a_manager_creates_orders_and_watches_a_policy(page, clean):
    """Names of their own: a deleted policy's history stays, and test_admin_manage.py counts
    the revisions of its "gold"."""
    d = clean
    with d.client() as c:
        assert c.post("/v1/sla-policies", json={"name": "bronze", "targets": {"resolution": "3d"}}).status_code == 201
    _open(page, d.manager_key)
    page.get_by_role("button", name="New policy").click()
    form = page.locator("#policy-form")
    form.locator("#policy-name").fill("platinum")
    form.locator("#policy-conditions").fill('{"all": [{"field": "tags", "op": "includes", "value": "slaweb"}]}')
    form.locator("#policy-first_response").fill("soon")
    form.locator("#policy-resolution").fill("2d")
    form.get_by_label("Count business hours only").check()
    form.get_by_label("Time zone").fill("Europe/Oslo")
    form.get_by_label("Monday").fill("09:00-12:00, 13:00-17:00")
    form.get_by_label("Tuesday").fill("9 to 5")
    form.get_by_label("Holidays (closed all day)").fill("2026-12-25")
    form.get_by_role("button", name="Create policy").click()
    # Every problem at once, each beside its control.
    expect(form.locator('.field-error[data-error-for="targets.first_response"]')).to_be_visible()
    expect(form.locator("#policy-day-tue")).to_have_attribute("aria-invalid", "true")
    expect(form.locator(".error-summary")).to_contain_text("problem")
    assert _names(d) == ["bronze"]

    form.locator("#policy-first_response").fill("1h")
    form.get_by_label("Tuesday").fill("09:00-17:00")
    form.get_by_role("button", name="Create policy").click()
    expect(page.locator('#sla-table tr[data-policy="platinum"]')).to_contain_text("first response 1h, resolution 2d")
    with d.client() as c:
        platinum = c.get("/v1/sla-policies/platinum").json()
    assert platinum["conditions"] == COND and platinum["targets"] == {"first_response": "1h", "resolution": "2d"}
    # (a new policy's week starts Monday to Friday, 9 to 5: Wednesday to Friday were left so)
    assert platinum["business_hours"] == {"timezone": "Europe/Oslo", "holidays": ["2026-12-25"],
                                      "week": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]],
                                               "tue": ["09:00", "17:00"], "wed": ["09:00", "17:00"],
                                               "thu": ["09:00", "17:00"], "fri": ["09:00", "17:00"]}}
    assert _names(d) == ["bronze", "platinum"]

    # The editor shows what is stored; a change is one PUT (a new revision), the place kept.
    page.get_by_role("button", name="Edit “platinum”").click()
    expect(page.locator("#policy-day-mon")).to_have_value("09:00-12:00, 13:00-17:00")
    page.locator("#policy-form").screenshot(path=str(DOCS / "admin-sla-editor.png"))
    page.locator("#policy-warn").fill("10m")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator('#sla-table tr[data-policy="platinum"]')).to_contain_text("warn 10m before")
    expect(page.locator('#sla-table tr[data-policy="platinum"] td').nth(5)).to_have_text("2")

    page.get_by_role("button", name="Move “platinum” up").click()
    expect(page.locator("#sla-table tbody tr").first).to_have_attribute("data-policy", "platinum")
    assert _names(d) == ["platinum", "bronze"]

    # Its tickets, each target's state: one met by an agent's reply, one still running.
    for tid in ("T-sla-1", "T-sla-2"):
        d.send({"id": f"e-{tid}", "type": "ticket.created",
                "ticket": {"id": tid, "subject": f"Order {tid}", "tags": ["slaweb"]}})
    d.send({"id": "e-T-sla-2-reply", "type": "message.sent", "ticket": {"id": "T-sla-2"},
            "message": {"author": "agent", "body": "On it"}})
    with d.client() as c:
        assert c.get("/v1/tickets/T-sla-2").json()["sla"]["targets"]["first_response"]["state"] == "met"
    page.get_by_role("button", name="Tickets of “platinum”").click()
    rows = page.locator("#sla-tickets tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator('#sla-tickets tr[data-ticket="T-sla-2"] td').nth(3)).to_contain_text("✓ met")
    first = page.locator('#sla-tickets tr[data-ticket="T-sla-1"] td').nth(3)
    expect(first).not_to_contain_text("met")
    expect(first).to_contain_text("due")
    page.get_by_role("button", name="Tickets of “bronze”").click()
    expect(page.locator("#sla-tickets-panel")).to_contain_text("No ticket is under bronze.")
    page.get_by_role("button", name="Tickets of “platinum”").click()
    expect(rows).to_have_count(2)
    page.screenshot(path=str(DOCS / "admin-sla.png"), full_page=True)

    page.get_by_role("button", name="Delete policy bronze").click()
    page.get_by_role("button", name="Confirm: delete policy bronze").click()
    expect(page.locator('#sla-table tr[data-policy="bronze"]')).to_have_count(0)
    assert _names(d) == ["platinum"]


def test_a_viewer_reads_policies_and_changes_nothing(page, clean):
    with clean.client() as c:
        assert c.post("/v1/sla-policies", json={"name": "vw-one", "targets": {"first_response": "1h"},
                                                "business_hours": {"timezone": "UTC", "week": {"mon": ["09:00", "17:00"]}}}).status_code == 201
        assert c.post("/v1/sla-policies", json={"name": "vw-two", "targets": {"resolution": "3d"}}).status_code == 201
    _open(page, clean.viewer_key)
    expect(page.locator("#view-sla .read-only")).to_contain_text("yours is viewer")
    expect(page.locator("#new-policy")).to_have_count(0)
    expect(page.locator("#sla-table button[data-move]")).to_have_count(0)
    expect(page.locator('#sla-table button:has-text("Delete")')).to_have_count(0)
    page.get_by_role("button", name="View “vw-one”").click()
    expect(page.locator("#policy-day-mon")).to_have_value("09:00-17:00")
    expect(page.locator("#policy-day-mon")).to_be_disabled()
    expect(page.locator("#policy-form button")).to_have_count(0)
    page.get_by_role("button", name="Tickets of “vw-one”").click()
    expect(page.locator("#sla-tickets-panel")).to_be_visible()
    assert _names(clean) == ["vw-one", "vw-two"]
