"""The managers' page in a real headless Chromium against a real server: what a support manager
does with it, and that a viewer cannot change anything."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from .web_helpers import DOCS, sign_in

URGENT = {"name": "Urgent subject raises priority", "triggers": ["ticket.created"],
          "conditions": {"all": [{"field": "subject", "op": "contains", "value": "urgent"}]},
          "actions": [{"type": "set", "field": "priority", "value": "high"}]}


def _ticket(tid: str, subject: str = "Urgent: printer on fire") -> dict:
    return {"id": tid, "subject": subject, "status": "new", "priority": "normal", "channel": "email",
            "tags": [], "contact": {"id": "C-1", "email": "ann@example.com", "groups": ["vip"]}}


def _event(eid: str, tid: str, subject: str = "Urgent: printer on fire") -> dict:
    return {"id": eid, "type": "ticket.created", "ticket": _ticket(tid, subject)}


@pytest.fixture(autouse=True)
def _fresh_rules(deskflow):
    deskflow.clear_rules()


def _row(page, name):
    return page.locator("#rules-table tbody tr", has=page.get_by_text(name, exact=True))


def test_sign_in_shows_rules_and_the_key_stays_in_the_session(page, deskflow):
    deskflow.create_rule({**URGENT, "enabled": True})
    deskflow.create_rule({"name": "VIP refunds go to the VIP desk", "enabled": True,
                          "triggers": ["ticket.created", "message.received"],
                          "conditions": {"all": [
                              {"field": "contact.groups", "op": "includes", "value": "vip"},
                              {"any": [{"field": "subject", "op": "contains", "value": "refund"},
                                       {"field": "message.body", "op": "matches", "value": "money back"}]}]},
                          "actions": [{"type": "set", "field": "department", "value": "vip-desk"},
                                      {"type": "add_tags", "tags": ["vip", "refund"]}]})
    deskflow.create_rule({"name": "Acknowledge new tickets", "triggers": ["ticket.created"],
                          "actions": [{"type": "send_message", "template": "Hi {{contact.name}}"}]})
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()  # nothing but the sign-in yet
    expect(page.locator("#tabs")).to_be_hidden()
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("unknown or has been revoked")
    sign_in(page, deskflow.manager_key)
    expect(page.locator("#who-text")).to_have_text("web-tests · manager")
    expect(page.locator("#rules-table tbody tr")).to_have_count(3)
    vip = _row(page, "VIP refunds go to the VIP desk")
    expect(vip).to_contain_text("Contact groups includes “vip” and (Subject contains “refund” or")
    expect(vip).to_contain_text("set Department → “vip-desk”; add tags vip, refund")
    expect(_row(page, "Acknowledge new tickets").get_by_role("switch")).not_to_be_checked()
    assert page.evaluate("sessionStorage.getItem('deskflow.apiKey')") == deskflow.manager_key
    assert page.evaluate("localStorage.length") == 0
    page.get_by_label("Search rules").fill("refund")
    expect(page.locator("#rules-table tbody tr")).to_have_count(1)
    expect(page.locator("#reorder-hint")).to_be_visible()  # no reordering a filtered view
    expect(page.locator("#rules-table button[data-move]")).to_have_count(0)
    page.get_by_label("Search rules").fill("")
    page.get_by_label("Show").select_option("disabled")
    expect(page.locator("#rules-table tbody tr .rule-name-text")).to_have_text(["Acknowledge new tickets"])
    page.get_by_label("Show").select_option("all")
    # Keyboard focus is visible.
    page.get_by_label("Search rules").focus()
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    page.locator("#status").evaluate("el => el.textContent = ''")
    page.evaluate("document.activeElement.blur()")
    page.screenshot(path=str(DOCS / "admin-rules.png"))
    # A reload keeps the session; signing out forgets the key.
    page.reload()
    expect(page.locator("#rules-table tbody tr")).to_have_count(3)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('deskflow.apiKey')") is None


def test_toggle_takes_effect_for_the_next_event(page, deskflow):
    rule = deskflow.create_rule(URGENT)  # disabled
    assert deskflow.send(_event("tog-1", "T-tog-1"))["changes"] == {}
    sign_in(page, deskflow.manager_key)
    toggle = _row(page, URGENT["name"]).get_by_role("switch", name=f"Enabled: {URGENT['name']}")
    expect(toggle).not_to_be_checked()
    toggle.focus()
    page.keyboard.press("Space")  # keyboard operable
    expect(page.locator("#status")).to_contain_text("enabled; it applies from the next event")
    expect(toggle).to_be_checked()
    with deskflow.client() as c:
        assert c.get(f"/v1/rules/{rule['id']}").json()["enabled"] is True
    assert deskflow.send(_event("tog-2", "T-tog-2"))["changes"] == {"priority": ["normal", "high"]}
    toggle.click()
    expect(page.locator("#status")).to_contain_text("disabled")
    expect(toggle).not_to_be_checked()
    assert deskflow.send(_event("tog-3", "T-tog-3"))["changes"] == {}


def test_reorder_changes_the_outcome(page, deskflow):
    for dept in ("alpha", "beta"):
        deskflow.create_rule({"name": f"Route to {dept}", "enabled": True, "triggers": ["ticket.created"],
                              "actions": [{"type": "set", "field": "department", "value": dept}]})
    # Both fire; the later one wins.
    assert deskflow.send(_event("ord-1", "T-ord-1"))["ticket"]["department"] == "beta"
    sign_in(page, deskflow.manager_key)
    rows = page.locator("#rules-table tbody tr .rule-name-text")
    expect(rows).to_have_text(["Route to alpha", "Route to beta"])
    page.get_by_role("button", name="Move “Route to beta” up").click()
    expect(page.locator("#status")).to_contain_text("Moved “Route to beta” to position 1")
    expect(rows).to_have_text(["Route to beta", "Route to alpha"])
    # Focus stays with the moved rule, so the keyboard can keep moving it.
    expect(page.get_by_role("button", name="Move “Route to beta” down")).to_be_focused()
    with deskflow.client() as c:
        assert [r["name"] for r in c.get("/v1/rules").json()["items"]] == ["Route to beta", "Route to alpha"]
    assert deskflow.send(_event("ord-2", "T-ord-2"))["ticket"]["department"] == "alpha"


def test_rename_inline(page, deskflow):
    deskflow.create_rule(URGENT)
    sign_in(page, deskflow.manager_key)
    page.get_by_role("button", name=f"Rename “{URGENT['name']}”").click()
    box = page.get_by_label(f"New name for “{URGENT['name']}”")
    box.fill("")
    box.press("Enter")
    expect(page.locator("#rules-table .field-error")).to_contain_text("non-empty")
    box.fill("Urgent → high")
    box.press("Enter")
    expect(page.locator("#status")).to_contain_text("Renamed to “Urgent → high”")
    expect(_row(page, "Urgent → high")).to_have_count(1)


def test_create_a_rule_in_the_editor(page, deskflow):
    sign_in(page, deskflow.manager_key)
    page.get_by_role("button", name="New rule").click()
    expect(page.locator("#editor-h")).to_have_text("New rule")
    page.get_by_label("Name").fill("Refunds are tagged")
    page.get_by_label("Customer message").check()
    page.get_by_role("button", name="Add condition to conditions").click()
    leaf = page.locator('.leaf[data-path="conditions.all[0]"]')
    leaf.locator('[data-path="conditions.all[0].field"]').select_option("subject")
    op = leaf.locator('[data-path="conditions.all[0].op"]')
    # Only valid ops for a text field: no list or number ops.
    offered = op.locator("option").evaluate_all("os => os.map(o => o.value)")
    assert "contains" in offered and "includes" not in offered and "gt" not in offered
    op.select_option("contains")
    leaf.locator('[data-path="conditions.all[0].value"]').fill("refund")
    # A nested any-group: contact.groups (a list) offers list ops only.
    page.get_by_role("button", name="Add group to conditions").click()
    inner = page.locator('.leaf[data-path="conditions.all[1].any[0]"]')
    inner.locator('[data-path="conditions.all[1].any[0].field"]').select_option("contact.groups")
    inner_ops = inner.locator('[data-path="conditions.all[1].any[0].op"]')
    offered = inner_ops.locator("option").evaluate_all("os => os.map(o => o.value)")
    assert "includes" in offered and "contains" not in offered and "matches" not in offered
    inner_ops.select_option("includes")
    inner.locator('[data-path="conditions.all[1].any[0].value"]').fill("vip")
    page.get_by_label("New action").select_option("add_tags")
    page.get_by_role("button", name="Add action").click()
    page.locator('[data-path="actions[0].tags"]').fill("refund, money")
    page.get_by_label("New action").select_option("set")
    page.get_by_role("button", name="Add action").click()
    page.locator('[data-path="actions[1].field"]').select_option("priority")
    page.locator('[data-path="actions[1].value"]').select_option("urgent")
    page.locator("#json-view summary").click()
    expect(page.locator("#rule-json")).to_have_value(re.compile('"contact.groups"'))
    shown = json.loads(page.locator("#rule-json").input_value())
    assert shown["conditions"]["all"][1] == {"any": [{"field": "contact.groups", "op": "includes", "value": "vip"}]}
    page.locator("#status").evaluate("el => el.textContent = ''")
    page.locator("#json-view summary").click()
    page.screenshot(path=str(DOCS / "admin-editor.png"), full_page=True)
    page.get_by_role("button", name="Save and enable").click()
    expect(page.locator("#status")).to_contain_text("Saved “Refunds are tagged” and enabled")
    with deskflow.client() as c:
        (rule,) = c.get("/v1/rules").json()["items"]
    assert rule["enabled"] is True and rule["triggers"] == ["ticket.created", "message.received"]
    assert rule["conditions"] == {"all": [{"field": "subject", "op": "contains", "value": "refund"},
                                          {"any": [{"field": "contact.groups", "op": "includes", "value": "vip"}]}]}
    assert rule["actions"] == [{"type": "add_tags", "tags": ["refund", "money"]},
                               {"type": "set", "field": "priority", "value": "urgent"}]
    out = deskflow.send(_event("ed-1", "T-ed-1", subject="Refund please"))
    assert out["changes"]["tags"] == {"added": ["refund", "money"], "removed": []}
    page.get_by_role("button", name="← Back to rules").click()
    expect(_row(page, "Refunds are tagged").get_by_role("switch")).to_be_checked()


def test_validation_errors_show_next_to_their_field(page, deskflow):
    sign_in(page, deskflow.manager_key)
    page.get_by_role("button", name="New rule").click()
    page.get_by_label("Name").fill("Broken")
    page.get_by_role("button", name="Add group to conditions").click()
    path = "conditions.all[0].any[0]"
    page.locator(f'[data-path="{path}.field"]').select_option("message.body")
    page.locator(f'[data-path="{path}.op"]').select_option("matches")
    page.locator(f'[data-path="{path}.value"]').fill("(unclosed")
    page.get_by_role("button", name="Save as disabled draft").click()
    value = page.locator(f'[data-path="{path}.value"]')
    expect(value).to_have_attribute("aria-invalid", "true")
    err = page.locator(f'.field-error[data-error-for="{path}.value"]')
    expect(err).to_contain_text("invalid regex")
    # Next to the field: inside the same condition row, and named by aria-describedby.
    assert page.locator(f'.leaf[data-path="{path}"] .field-error').count() == 1
    assert err.get_attribute("id") in value.get_attribute("aria-describedby")
    # The rule needs an action too: that error sits in the actions fieldset.
    expect(page.locator('fieldset[data-path="actions"] .field-error')).to_be_visible()
    expect(page.locator("#editor-errors")).to_contain_text(f"{path}.value")
    expect(page.locator("#alert")).to_contain_text("Not saved")
    # Power users: hand-edited JSON loads into the form; a key with no control of its own is
    # reported in the summary at the top.
    page.locator("#json-view summary").click()
    page.locator("#rule-json").fill(json.dumps({
        "name": "From JSON", "triggers": ["ticket.updated"], "condition": {},
        "conditions": {"any": [{"field": "priority", "op": "is", "value": "urgent"}]},
        "actions": [{"type": "close"}]}))
    page.get_by_role("button", name="Apply JSON").click()
    expect(page.get_by_label("Name")).to_have_value("From JSON")
    expect(page.locator('[data-path="conditions.any[0].value"]')).to_have_value("urgent")
    page.get_by_role("button", name="Save as disabled draft").click()
    expect(page.locator("#editor-errors")).to_contain_text("condition")
    expect(page.locator("#view-editor .field-error[data-error-for]")).to_have_count(0)
    with deskflow.client() as c:
        assert c.get("/v1/rules").json()["items"] == []


def test_the_test_panel_explains_each_condition(page, deskflow):
    deskflow.create_rule({"name": "VIP urgent", "triggers": ["ticket.created"],
                          "conditions": {"all": [{"field": "contact.groups", "op": "includes", "value": "vip"},
                                                 {"field": "subject", "op": "contains", "value": "urgent"}]},
                          "actions": [{"type": "set", "field": "priority", "value": "urgent"},
                                      {"type": "notify", "target": "leads", "message": "{{ticket.subject}}"}]})
    sign_in(page, deskflow.manager_key)
    page.get_by_role("button", name="Test “VIP urgent”").click()
    expect(page.locator("#test-event")).to_be_focused()
    page.locator("#test-event").fill(json.dumps(_event("x", "T-test", subject="Urgent: help")))
    page.get_by_role("button", name="Run test").click()
    expect(page.locator("#test-verdict")).to_have_text("The rule matched")
    rows = page.locator("#test-conditions tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("✓ held")
    expect(rows.nth(1)).to_contain_text('"Urgent: help"')
    expect(page.locator("#test-result .changes")).to_contain_text("priority")
    expect(page.locator("#test-result .changes")).to_contain_text('"urgent"')
    expect(page.locator("#test-result .effects")).to_contain_text("notify")
    page.locator("#test-event").fill(json.dumps(_event("y", "T-test2", subject="Hello")))
    page.get_by_role("button", name="Run test").click()
    expect(page.locator("#test-verdict")).to_have_text("The rule did not match")
    expect(rows.nth(1)).to_contain_text("✗ did not hold")
    expect(rows.nth(1)).to_contain_text('"Hello"')
    with deskflow.client() as c:  # a dry run applies nothing
        assert c.get("/v1/tickets/T-test").status_code == 404
    # Start from a stored ticket instead of pasting.
    deskflow.send(_event("tp-1", "T-stored", subject="Urgent: stored"))
    page.get_by_text("Start from a real ticket").click()
    page.locator("#test-pick").fill("T-stored")
    page.get_by_role("button", name="Use this ticket").click()
    expect(page.locator("#test-event")).to_have_value(re.compile("Urgent: stored"))
    page.get_by_role("button", name="Run test").click()
    expect(page.locator("#test-verdict")).to_have_text("The rule matched")


def test_a_viewer_sees_but_cannot_change(page, deskflow):
    deskflow.create_rule({**URGENT, "enabled": True})
    sign_in(page, deskflow.viewer_key)
    expect(page.locator("#who-text")).to_have_text("web-tests · viewer (read only)")
    toggle = _row(page, URGENT["name"]).get_by_role("switch")
    expect(toggle).to_be_checked()
    expect(toggle).to_be_disabled()
    expect(page.get_by_role("button", name="New rule")).to_have_count(0)
    expect(page.get_by_role("button", name=f"Move “{URGENT['name']}” up")).to_have_count(0)
    expect(page.get_by_role("button", name=f"Rename “{URGENT['name']}”")).to_have_count(0)
    # Even with the switch forced on in devtools, the service refuses and the page says so.
    toggle.evaluate("el => { el.disabled = false; }")
    toggle.click()
    expect(page.locator("#alert")).to_contain_text("needs a manager key")
    expect(toggle).to_be_checked()
    page.get_by_role("button", name=f"View “{URGENT['name']}”").click()
    expect(page.locator("#editor-h")).to_have_text(f"View “{URGENT['name']}”")
    expect(page.get_by_label("Name")).to_be_disabled()
    expect(page.get_by_role("button", name="Save and enable")).to_have_count(0)
    expect(page.locator("#test-panel")).to_have_count(0)
    with deskflow.client() as c:
        assert c.get("/v1/rules").json()["items"][0]["enabled"] is True


def test_an_ingest_key_is_turned_away(page, deskflow):
    with deskflow.client(deskflow.admin_key) as c:
        key = c.post("/v1/keys", json={"role": "ingest", "name": "bridge"}).json()["key"]
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("may only submit events")
    expect(page.get_by_label("API key")).to_be_focused()
    assert page.evaluate("sessionStorage.length") == 0


def test_runs_groups_and_scripts(page, deskflow):
    deskflow.create_rule({**URGENT, "enabled": True})
    deskflow.create_rule({"name": "Never", "enabled": True, "triggers": ["ticket.created"],
                          "conditions": {"all": [{"field": "channel", "op": "is", "value": "phone"}]},
                          "actions": [{"type": "close"}]})
    deskflow.send(_event("run-1", "T-run-1"))
    sign_in(page, deskflow.manager_key)
    page.get_by_role("button", name="Runs").click()
    page.get_by_label("Ticket id").fill("T-run-1")
    page.get_by_label("Ticket id").press("Enter")
    run = page.locator("article.run").first
    expect(run).to_contain_text("run-1")
    expect(run.locator("tr", has_text=URGENT["name"])).to_contain_text("✓ matched")
    expect(run.locator("tr", has_text="Never")).to_contain_text('Channel is "phone"')
    expect(run.locator("tr", has_text="Never")).to_contain_text('"email"')
    expect(run.locator(".changes")).to_contain_text("priority")
    page.get_by_label("Ticket id").fill("T-nope")
    page.get_by_label("Ticket id").press("Enter")
    expect(page.locator("#view-runs .field-error")).to_contain_text("No ticket T-nope")

    page.get_by_role("button", name="Contact groups").click()
    page.locator("#group-name").fill("resellers")
    page.locator("#group-color").fill("#ff8800")
    page.get_by_role("button", name="Create group").click()
    row = page.locator('#groups-table tr[data-group="resellers"]')
    expect(row).to_contain_text("#ff8800")
    assert row.locator(".swatch").evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(255, 136, 0)"
    page.locator("#group-name").fill("bad name!")
    page.get_by_role("button", name="Create group").click()
    expect(page.locator('#group-form .field-error[data-error-for="name"]')).to_be_visible()
    page.get_by_role("button", name="Delete group resellers").click()
    page.get_by_role("button", name="Confirm: delete group resellers").click()
    expect(row).to_have_count(0)

    page.get_by_role("button", name="Scripts").click()
    expect(page.locator("#scripts-note")).to_be_visible()
