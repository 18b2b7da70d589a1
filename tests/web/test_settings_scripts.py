"""The Scripts view in headless Chromium (issue 18 item 6): a developer-level key uploads a script
and a new version (a refused source's reasons shown inline), reads an old version, test-runs it on
a sample event and sees logs, HTTP calls, timing and the error code; a manager pins a rule to a
version (one PATCH of the rule); a viewer reads it all and can change none of it. In a workspace
of its own: the shared one's Scripts page is expected empty by test_admin_page.py."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import ROOT_TOKEN, Deskflow
from .web_helpers import DOCS, sign_in

V1 = "def run(event, ticket, ctx):\n    return {\"add_tags\": [\"v1\"]}\n"
V2 = '''def run(event, ticket, ctx):
    ctx.log("saw " + event["type"])
    try:
        ctx.http.get("https://blocked.example.com/crm")
    except Exception:
        ctx.log("the CRM is not allowed")
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"add_tags": ["v2"]}
'''


@pytest.fixture(scope="module")
def ws(deskflow: Deskflow) -> dict[str, str]:
    with deskflow.client(ROOT_TOKEN) as c:
        r = c.post("/v1/workspaces", json={"name": "web-settings-scripts"})
        assert r.status_code == 201, r.text
        keys = {"admin": r.json()["admin_key"]}
    with deskflow.client(keys["admin"]) as c:
        for role in ("manager", "viewer"):
            r = c.post("/v1/keys", json={"role": role, "name": f"scripts {role}"})
            assert r.status_code == 201, r.text
            keys[role] = r.json()["key"]
    return keys


def _open(page: Any, key: str) -> None:
    sign_in(page, key)
    page.get_by_role("button", name="Scripts").click()
    expect(page.locator("#scripts-h")).to_be_visible()


def _card(page: Any, name: str) -> Any:
    return page.locator(f'li.card[data-script="{name}"]')


def test_upload_version_view_and_test_run(page, deskflow, ws):
    _open(page, ws["admin"])
    expect(page.locator("#scripts-note")).to_contain_text("No scripts yet")
    new = page.locator('form.script-upload[data-script=""]')
    new.locator("#new-script-name").fill("crm-tag")
    new.locator("textarea").fill("import os\ndef run(event, ticket, ctx):\n    return None\n")
    new.get_by_role("button", name="Upload script").click()
    expect(new.locator(".error-summary")).to_contain_text("os")     # the sandbox's reason, by line
    expect(new.locator('textarea[aria-invalid="true"]')).to_have_count(1)

    new.locator("textarea").fill(V1)
    new.get_by_role("button", name="Upload script").click()
    expect(_card(page, "crm-tag").locator("h2")).to_have_text("crm-tag v1")

    card = _card(page, "crm-tag")
    # An upload redraws the list with that script open.
    expect(card.get_by_role("button", name="Close crm-tag")).to_have_attribute("aria-expanded", "true")
    upload = card.locator("form.script-upload")
    expect(upload.locator("textarea")).to_have_value(V1)
    upload.locator("textarea").fill(V2)
    upload.get_by_role("button", name="Upload as new version").click()
    card = _card(page, "crm-tag")
    expect(card.locator("h2")).to_have_text("crm-tag v2")
    expect(card.locator("table.versions tbody tr")).to_have_count(2)
    expect(card.locator(".script-source")).to_have_text(V2)
    card.get_by_role("button", name="View version 1 of crm-tag").click()
    expect(card.locator(".script-source")).to_have_text(V1)
    expect(card.locator(".source-of")).to_have_text("Version 1:")

    # A test run of v2: the logs, the refused HTTP call, the time it took, no error.
    test = card.locator("form.script-test")
    test.get_by_label("Version").select_option("2")
    test.get_by_role("button", name="Run test").click()
    out = test.locator(".script-test-out")
    expect(out.locator(".test-summary")).to_contain_text("no error", timeout=30_000)
    expect(out.locator(".test-summary")).to_contain_text(" ms")
    expect(out).to_contain_text("saw ticket.created")
    expect(out).to_contain_text("the CRM is not allowed")
    expect(out.locator("table")).to_contain_text("blocked.example.com")
    expect(out.locator("table")).to_contain_text("refused")
    expect(out).to_contain_text('"v2"')
    page.screenshot(path=str(DOCS / "admin-scripts.png"), full_page=True)

    # The same version failing on purpose: the error code is shown, the page stays.
    test.locator("textarea").fill('{"id": "e-fail", "type": "ticket.created", "fail": true, "ticket": {"id": "T-1"}}')
    test.get_by_role("button", name="Run test").click()
    expect(out.locator(".error-code")).to_have_text("script_error", timeout=30_000)
    expect(out.locator(".test-summary")).to_contain_text("asked to fail")
    # Not JSON: said beside the event, no request made.
    test.locator("textarea").fill("{not json")
    test.get_by_role("button", name="Run test").click()
    expect(test.locator('.field-error[data-error-for="event"]')).to_contain_text("is not JSON")


def test_a_manager_pins_a_rule_and_a_viewer_only_reads(page, deskflow, ws):
    with deskflow.client(ws["admin"]) as c:
        if c.get("/v1/scripts/pinned-one").status_code == 404:
            for src in (V1, V1.replace("v1", "v1b")):
                assert c.post("/v1/scripts", json={"name": "pinned-one", "source": src}).status_code == 201
        r = c.post("/v1/rules", json={"name": "Runs pinned-one", "triggers": ["ticket.created"],
                                      "actions": [{"type": "add_tags", "tags": ["x"]},
                                                  {"type": "run_script", "script": "pinned-one"}]})
        assert r.status_code == 201, r.text
        rule = r.json()

    _open(page, ws["manager"])
    expect(page.locator("#view-scripts .read-only")).to_contain_text("yours is manager")
    card = _card(page, "pinned-one")
    expect(card).to_contain_text("run by 1 rule")
    card.get_by_role("button", name="Open pinned-one").click()
    row = card.locator(f'.pins-table tr[data-rule="{rule["id"]}"]')
    expect(row.locator(".pinned")).to_have_text("the latest")
    expect(card.locator("form.script-upload, form.script-test")).to_have_count(0)
    row.get_by_label("Version “Runs pinned-one” runs").select_option("1")
    row.get_by_role("button", name="Pin “Runs pinned-one”").click()
    row = _card(page, "pinned-one").locator(f'.pins-table tr[data-rule="{rule["id"]}"]')
    expect(row.locator(".pinned")).to_have_text("version 1 (pinned)")
    with deskflow.client(ws["admin"]) as c:
        assert c.get(f"/v1/rules/{rule['id']}").json()["actions"] == [
            {"type": "add_tags", "tags": ["x"]}, {"type": "run_script", "script": "pinned-one", "version": 1}]

    page.get_by_role("button", name="Sign out").click()
    _open(page, ws["viewer"])
    card = _card(page, "pinned-one")
    card.get_by_role("button", name="Open pinned-one").click()
    expect(card.locator(".pins-table .pinned")).to_have_text("version 1 (pinned)")
    expect(card.locator("table.versions tbody tr")).to_have_count(2)
    expect(card.locator(".pins-table select, .pins-table button")).to_have_count(0)
    expect(page.locator("#view-scripts form")).to_have_count(0)
