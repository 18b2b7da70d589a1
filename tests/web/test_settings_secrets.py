"""The Allow-list & secrets view in headless Chromium (issue 18 item 6): an admin edits the
allow-list (a bad entry's 422 beside it), sets a secret whose value never comes back to the page
or the API, binds one to a host, deletes one; a manager and a viewer are told the API's 403 and
get no form."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from .web_helpers import DOCS, sign_in

VALUE = "s3cr3t-value-never-shown-9f2c"


def _open(page: Any, key: str) -> None:
    sign_in(page, key)
    page.get_by_role("button", name="Allow-list & secrets").click()
    expect(page.locator("#allowlist h2")).to_be_visible()


@pytest.fixture
def clean(deskflow: Any) -> Any:
    with deskflow.client(deskflow.admin_key) as c:
        c.put("/v1/allowlist", json={"hosts": []})
        for s in c.get("/v1/secrets?limit=500").json()["items"]:
            c.delete(f"/v1/secrets/{s['name']}")
    return deskflow


def test_an_admin_edits_the_allowlist_and_secrets(page, clean):
    d = clean
    _open(page, d.admin_key)
    expect(page.locator("#allowlist-hosts")).to_contain_text("The allow-list is empty")

    page.locator("#allowlist-text").fill("crm.example.com\nbad host!\n")
    page.get_by_role("button", name="Save allow-list").click()
    expect(page.locator('#allowlist-form .field-error')).to_be_visible()
    expect(page.locator("#allowlist-text")).to_have_attribute("aria-invalid", "true")
    with d.client(d.admin_key) as c:
        assert c.get("/v1/allowlist").json()["hosts"] == []

    page.locator("#allowlist-text").fill("crm.example.com\nbilling.example.com:8443")
    page.get_by_role("button", name="Save allow-list").click()
    expect(page.locator("#allowlist-hosts li")).to_have_text(["crm.example.com", "billing.example.com:8443"])
    with d.client(d.admin_key) as c:
        assert c.get("/v1/allowlist").json()["hosts"] == ["crm.example.com", "billing.example.com:8443"]

    # A bad name: the 422 beside the name; nothing stored.
    page.locator("#secret-name").fill("not ok")
    page.locator("#secret-value").fill(VALUE)
    page.get_by_role("button", name="Save secret").click()
    expect(page.locator('#secret-form .field-error[data-error-for="name"]')).to_be_visible()

    page.locator("#secret-name").fill("CRM_TOKEN")
    page.locator("#secret-value").fill(VALUE)
    page.locator("#secret-hosts").fill("crm.example.com")
    page.get_by_role("button", name="Save secret").click()
    row = page.locator('#secrets-table tr[data-secret="CRM_TOKEN"]')
    expect(row).to_contain_text("crm.example.com")
    expect(row).to_contain_text("write-only")
    page.locator("#secret-name").fill("BILLING_KEY")
    page.locator("#secret-value").fill(VALUE + "-2")
    page.get_by_role("button", name="Save secret").click()
    expect(page.locator('#secrets-table tr[data-secret="BILLING_KEY"]')).to_contain_text("any allow-listed host")
    # The value is gone from the page (the input is emptied) and was never in any answer.
    expect(page.locator("#secret-value")).to_have_value("")
    assert VALUE not in page.content()
    assert page.evaluate("() => [...document.querySelectorAll('input')].some((i) => i.value.includes('s3cr3t'))") is False
    with d.client(d.admin_key) as c:
        listed = c.get("/v1/secrets").text
        assert "CRM_TOKEN" in listed and VALUE not in listed
    page.screenshot(path=str(DOCS / "admin-settings.png"), full_page=True)

    page.get_by_role("button", name="Delete secret BILLING_KEY").click()
    page.get_by_role("button", name="Confirm: delete secret BILLING_KEY").click()
    expect(page.locator('#secrets-table tr[data-secret="BILLING_KEY"]')).to_have_count(0)
    expect(page.locator('#secrets-table tr[data-secret="CRM_TOKEN"]')).to_have_count(1)
    with d.client(d.admin_key) as c:
        assert [s["name"] for s in c.get("/v1/secrets").json()["items"]] == ["CRM_TOKEN"]


@pytest.mark.parametrize("who", ["manager", "viewer"])
def test_below_admin_the_view_names_the_role_needed(page, clean, who):
    with clean.client(clean.admin_key) as c:
        assert c.put("/v1/allowlist", json={"hosts": ["crm.example.com"]}).status_code == 200
        assert c.put("/v1/secrets/HIDDEN", json={"value": VALUE}).status_code == 201
    _open(page, getattr(clean, f"{who}_key"))
    # Reading the allow-list takes a developer, the secrets an admin: the API's 403 says so.
    expect(page.locator("#allowlist-note")).to_contain_text("developer")
    expect(page.locator("#secrets-note")).to_contain_text("admin")
    expect(page.locator("#allowlist-form, #secret-form, #secrets-table")).to_have_count(0)
    assert "HIDDEN" not in page.content() and VALUE not in page.content()


def test_a_developer_reads_the_allowlist_but_cannot_change_it(page, clean):
    with clean.client(clean.admin_key) as c:
        assert c.put("/v1/allowlist", json={"hosts": ["crm.example.com"]}).status_code == 200
        r = c.post("/v1/keys", json={"role": "developer", "name": "web developer"})
        assert r.status_code == 201, r.text
        key = r.json()["key"]
    _open(page, key)
    expect(page.locator("#allowlist-hosts li")).to_have_text(["crm.example.com"])
    expect(page.locator("#allowlist .read-only")).to_contain_text("admin key; yours is developer")
    expect(page.locator("#allowlist-form")).to_have_count(0)
    expect(page.locator("#secrets-note")).to_contain_text("admin")
