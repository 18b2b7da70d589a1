"""Rules the engine accepts open in the editor as they are, and saving them unchanged writes no
revision (issue 12, item 8): ordinal comparisons on priority and status, business-time ops with
a named or inline calendar, `stop` left out, a bare leaf as the conditions."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import ROOT_TOKEN
from .web_helpers import sign_in

OFFICE = {"timezone": "Europe/Oslo", "week": {d: ["09:00", "17:00"] for d in
                                              ("mon", "tue", "wed", "thu", "fri")}}
TAG = [{"type": "add_tags", "tags": ["seen"]}]


def _rule(name: str, conditions: object, **extra: object) -> dict:
    return {"name": name, "enabled": True, "triggers": ["ticket.created", "ticket.updated"],
            "conditions": conditions, "actions": TAG, **extra}


RULES = [
    (_rule("High or urgent", {"all": [{"field": "priority", "op": "gt", "value": "normal"}]}),
     "priority", "gt", "is above", "normal", None),  # ordinal words (issue 18 item 8), not ">"
    (_rule("Not yet waiting", {"all": [{"field": "status", "op": "lte", "value": "pending"}]},
           stop=False), "status", "lte", "is at or below", "pending", None),
    (_rule("Old in office hours", {"all": [{"field": "created_at", "op": "older_than_business",
                                            "value": "4h", "calendar": "office"}]}),
     "created_at", "older_than_business", "is older than, in business time", "4h", "office"),
    (_rule("New in office hours", {"field": "updated_at", "op": "newer_than_business",
                                   "value": "30m", "calendar": OFFICE}),
     "updated_at", "newer_than_business", "is newer than, in business time", "30m", OFFICE),
]


@pytest.fixture(autouse=True)
def _office_policy(deskflow):
    deskflow.clear_rules()
    with deskflow.client() as c:
        c.delete("/v1/sla-policies/office")
        r = c.post("/v1/sla-policies", json={"name": "office", "targets": {"first_response": "1h"},
                                             "business_hours": OFFICE})
        assert r.status_code == 201, r.text
    yield
    with deskflow.client() as c:
        deskflow.clear_rules()
        c.delete("/v1/sla-policies/office")


@pytest.mark.parametrize("rule, field, op, label, value, calendar", RULES,
                         ids=[r[0]["name"] for r in RULES])
def test_an_engine_rule_opens_as_it_is_and_saves_without_a_revision(
        page, deskflow, rule, field, op, label, value, calendar):
    import json

    saved = deskflow.create_rule(rule)
    sign_in(page, deskflow.manager_key)
    page.locator("#rules-table tbody tr", has=page.get_by_text(rule["name"], exact=True)) \
        .get_by_role("button", name="Edit").click()
    expect(page.locator("#editor-h")).to_contain_text(rule["name"])
    leaf = page.locator('.leaf[data-path="conditions.all[0]"]')
    expect(leaf.locator('[data-path="conditions.all[0].field"]')).to_have_value(field)
    op_sel = leaf.locator('[data-path="conditions.all[0].op"]')
    expect(op_sel).to_have_value(op)
    assert op_sel.evaluate("s => s.selectedOptions[0].textContent") == label
    assert "not valid" not in leaf.inner_text()
    expect(leaf.locator('[data-path="conditions.all[0].value"]')).to_have_value(value)
    if calendar is not None:
        box = leaf.locator('[data-path="conditions.all[0].calendar"]')
        shown = box.input_value()
        assert (json.loads(shown) if isinstance(calendar, dict) else shown) == calendar
    page.get_by_role("button", name="Save and enable").click()
    expect(page.locator("#status")).to_contain_text(f"Saved “{rule['name']}” and enabled")
    with deskflow.client() as c:
        now = c.get(f"/v1/rules/{saved['id']}").json()
        revisions = c.get(f"/v1/rules/{saved['id']}/revisions").json()["items"]
    assert now["revision"] == saved["revision"] and len(revisions) == 1, revisions
    assert now["conditions"] == saved["conditions"]


def test_choosing_an_ordinal_op_offers_the_fields_order(page, deskflow):
    saved = deskflow.create_rule(_rule("Pick", {"all": [{"field": "priority", "op": "is",
                                                         "value": "high"}]}))
    sign_in(page, deskflow.manager_key)
    page.locator("#rules-table tbody tr", has=page.get_by_text("Pick", exact=True)) \
        .get_by_role("button", name="Edit").click()
    leaf = page.locator('.leaf[data-path="conditions.all[0]"]')
    leaf.locator('[data-path="conditions.all[0].op"]').select_option("gte")
    value = leaf.locator('[data-path="conditions.all[0].value"]')
    assert value.locator("option").evaluate_all("os => os.map(o => o.value)") == [
        "low", "normal", "high", "urgent"]
    value.select_option("urgent")
    leaf.locator('[data-path="conditions.all[0].field"]').select_option("created_at")
    leaf.locator('[data-path="conditions.all[0].op"]').select_option("older_than_business")
    leaf.locator('[data-path="conditions.all[0].value"]').fill("2h")
    leaf.locator('[data-path="conditions.all[0].calendar"]').fill("office")
    page.get_by_role("button", name="Save and enable").click()
    expect(page.locator("#status")).to_contain_text("Saved “Pick” and enabled")
    with deskflow.client() as c:
        now = c.get(f"/v1/rules/{saved['id']}").json()
    assert now["conditions"] == {"all": [{"field": "created_at", "op": "older_than_business",
                                          "value": "2h", "calendar": "office"}]}


def test_the_scripts_page_shows_each_scripts_version(page, deskflow):
    """It read `version`/`latest_version`, the listing answers `latest`: "v?" for every script.
    In a workspace of its own (the shared one's Scripts page is expected empty elsewhere)."""
    with deskflow.client(ROOT_TOKEN) as c:
        r = c.post("/v1/workspaces", json={"name": "web-scripts"})
        assert r.status_code == 201, r.text
        admin = r.json()["admin_key"]
    with deskflow.client(admin) as c:
        for _ in range(2):
            r = c.post("/v1/scripts", json={"name": "two-versions", "source":
                                            "def run(event, ticket, ctx):\n    return None\n"})
            assert r.status_code == 201, r.text
    sign_in(page, admin)
    page.get_by_role("button", name="Scripts").click()
    expect(page.locator("li.card h2", has_text="two-versions")).to_have_text("two-versions v2")
