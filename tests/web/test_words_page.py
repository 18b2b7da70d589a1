"""Issue 18 item 8 in a real headless Chromium: the words a manager uses. Fields by their labels
with the API name on hover, the ordinal `gt` offered on priority and saved, pickers of the groups,
SLA policies and scripts that exist, a URL per view (deep link, back button, reload), the branch
of an `any` group that held in a run, and a viewer who still cannot change anything."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .web_helpers import DOCS, sign_in

SCRIPT = "def run(event, ticket, ctx):\n    return {}\n"


@pytest.fixture(autouse=True)
def _clean(deskflow):
    deskflow.clear_rules()
    yield
    deskflow.clear_rules()
    with deskflow.client(deskflow.admin_key) as c:
        c.delete("/v1/scripts/crm-words")
        c.delete("/v1/groups/gold-words")
        c.delete("/v1/sla-policies/words-policy")


def _new_leaf(page):
    page.get_by_role("button", name="New rule").click()
    page.get_by_role("button", name="Add condition to conditions").click()
    return page.locator('.leaf[data-path="conditions.all[0]"]')


def test_fields_read_as_labels_with_the_api_name_on_hover(page, deskflow):
    sign_in(page, deskflow.manager_key)
    leaf = _new_leaf(page)
    field = leaf.locator('[data-path="conditions.all[0].field"]')
    reply = field.locator('option[value="last_customer_message_at"]')
    expect(reply).to_have_text("Last customer reply")
    expect(reply).to_have_attribute("title", "last_customer_message_at")
    expect(field.locator('option[value="contact.groups"]')).to_have_text("Contact groups")
    field.select_option("contact.groups")
    expect(field).to_have_attribute("title", "API name: contact.groups")
    op = leaf.locator('[data-path="conditions.all[0].op"]')
    expect(op.locator('option[value="includes"]')).to_have_attribute("title", "includes")
    # Every option of the field picker is worded: none shows a raw dotted or snake_case API name.
    texts = field.locator("option").evaluate_all("os => os.map(o => o.textContent)")
    assert texts and not [t for t in texts if re.fullmatch(r"[a-z_.]+", t)], texts


def test_priority_offers_gt_in_words_and_it_is_saved(page, deskflow):
    sign_in(page, deskflow.manager_key)
    leaf = _new_leaf(page)
    page.get_by_label("Name").fill("Above normal")
    leaf.locator('[data-path="conditions.all[0].field"]').select_option("priority")
    op = leaf.locator('[data-path="conditions.all[0].op"]')
    expect(op.locator('option[value="gt"]')).to_have_text("is above")
    expect(op.locator('option[value="lte"]')).to_have_text("is at or below")
    op.select_option("gt")
    value = leaf.locator('[data-path="conditions.all[0].value"]')
    expect(value.locator("option")).to_have_text(["low", "normal", "high", "urgent"])
    value.select_option("normal")
    page.get_by_label("New action").select_option("add_tags")
    page.get_by_role("button", name="Add action").click()
    page.locator('[data-path="actions[0].tags"]').fill("hot")
    page.get_by_role("button", name="Save as disabled draft").click()
    expect(page.locator("#status")).to_contain_text("Saved “Above normal”")
    with deskflow.client() as c:
        rule = c.get("/v1/rules").json()["items"][0]
    assert rule["conditions"] == {"all": [{"field": "priority", "op": "gt", "value": "normal"}]}
    # The hash is the saved rule's own URL now.
    expect(page).to_have_url(re.compile(rf"#/rules/{re.escape(rule['id'])}$"))


def test_pickers_offer_what_exists(page, deskflow):
    with deskflow.client(deskflow.admin_key) as c:
        assert c.post("/v1/groups", json={"name": "gold-words"}).status_code == 201
        r = c.post("/v1/scripts", json={"name": "crm-words", "source": SCRIPT})
        assert r.status_code == 201, r.text
        r = c.post("/v1/sla-policies", json={"name": "words-policy", "targets": {"first_response": "1h"}})
        assert r.status_code == 201, r.text
    sign_in(page, deskflow.manager_key)
    page.get_by_role("button", name="New rule").click()
    page.get_by_label("Name").fill("Gold by script")
    for action in ("add_to_group", "apply_sla", "run_script"):
        page.get_by_label("New action").select_option(action)
        page.get_by_role("button", name="Add action").click()
    group = page.locator('select[data-path="actions[0].group"]')
    policy = page.locator('select[data-path="actions[1].policy"]')
    script = page.locator('select[data-path="actions[2].script"]')
    expect(group.locator('option[value="gold-words"]')).to_have_count(1)
    expect(policy.locator('option[value="words-policy"]')).to_have_count(1)
    expect(script.locator('option[value="crm-words"]')).to_have_count(1)
    group.select_option("gold-words")
    policy.select_option("words-policy")
    script.select_option("crm-words")
    page.locator("fieldset.actions").screenshot(path=str(DOCS / "admin-pickers.png"))
    page.get_by_role("button", name="Save and enable").click()
    expect(page.locator("#status")).to_contain_text("and enabled")
    with deskflow.client() as c:
        rule = c.get("/v1/rules").json()["items"][0]
        assert rule["actions"] == [{"type": "add_to_group", "group": "gold-words"},
                                   {"type": "apply_sla", "policy": "words-policy"},
                                   {"type": "run_script", "script": "crm-words"}]
        # A name that stops existing stays selected, marked, when the rule is opened again.
        c.put(f"/v1/rules/{rule['id']}", json={**{k: rule[k] for k in ("name", "triggers", "actions")},
                                                "enabled": False})
    with deskflow.client(deskflow.admin_key) as c:
        assert c.delete("/v1/groups/gold-words").status_code in (200, 204)
    expect(page).to_have_url(re.compile(rf"#/rules/{re.escape(rule['id'])}$"))
    page.reload()
    picked = page.locator('select[data-path="actions[0].group"]')
    expect(picked.locator("option:checked")).to_have_text("gold-words (no such group)")


def test_every_view_has_a_url_and_back_goes_back(page, deskflow):
    rule = deskflow.create_rule({"name": "Linked", "enabled": True, "triggers": ["ticket.created"],
                                 "conditions": {"all": []}, "actions": [{"type": "add_tags", "tags": ["l"]}]})
    sign_in(page, deskflow.manager_key)
    expect(page).to_have_url(re.compile(r"/admin(#/rules)?$"))
    page.get_by_role("button", name="SLA policies").click()
    expect(page).to_have_url(re.compile(r"#/sla$"))
    page.get_by_role("button", name="Contact groups").click()
    expect(page).to_have_url(re.compile(r"#/groups$"))
    expect(page.locator("#groups-h")).to_be_visible()
    page.go_back()
    expect(page.locator("#sla-h")).to_be_visible()
    page.go_forward()
    expect(page.locator("#groups-h")).to_be_visible()
    # A deep link to a rule opens its editor; reload keeps it (the key is in the tab's session).
    page.goto(f"{deskflow.url}/admin#/rules/{rule['id']}")
    expect(page.locator("#editor-h")).to_have_text("Edit “Linked”")
    page.reload()
    expect(page.locator("#editor-h")).to_have_text("Edit “Linked”")
    page.get_by_role("button", name="Where it fired").click()
    expect(page).to_have_url(re.compile(rf"#/runs\?rule={re.escape(rule['id'])}$"))
    expect(page.locator("#runs-rule")).to_have_value(rule["id"])
    page.go_back()
    expect(page.locator("#editor-h")).to_have_text("Edit “Linked”")
    page.get_by_role("button", name="← Back to rules").click()
    expect(page).to_have_url(re.compile(r"#/rules$"))
    expect(page.locator("#rules-h")).to_be_visible()
    page.go_back()
    expect(page.locator("#editor-h")).to_have_text("Edit “Linked”")
    # Unsaved work is not lost to the back button at the first press.
    page.locator("#rule-name").fill("Linked, changed")
    page.go_back()
    expect(page.locator("#alert")).to_contain_text("unsaved changes")
    expect(page.locator("#editor-h")).to_be_visible()
    expect(page.locator("#rule-name")).to_have_value("Linked, changed")
    page.go_back()  # the second press within 6 s leaves without saving
    expect(page.locator("#groups-h")).to_be_visible()
    # A rule that is not there, and a page that is not there, land on the rules list and say so.
    page.goto(f"{deskflow.url}/admin#/rules/no-such-rule")
    expect(page.locator("#alert")).to_contain_text("There is no rule no-such-rule")
    expect(page.locator("#rules-h")).to_be_visible()
    page.goto(f"{deskflow.url}/admin#/nowhere")
    expect(page.locator("#alert")).to_contain_text("There is no page “nowhere”")
    expect(page.locator("#rules-h")).to_be_visible()


def test_a_view_registers_with_one_call(page, deskflow):
    sign_in(page, deskflow.manager_key)
    page.evaluate("""async () => {
        const { registerView } = await import('/admin/router.js');
        registerView('extra-words', (view) => {
            const h1 = document.createElement('h1');
            h1.id = 'extra-words-h';
            h1.textContent = 'An extra view';
            view.replaceChildren(h1);
        }, { label: 'Extra' });
    }""")
    page.get_by_role("button", name="Extra").click()
    expect(page.locator("#extra-words-h")).to_have_text("An extra view")
    expect(page).to_have_url(re.compile(r"#/extra-words$"))
    page.get_by_role("button", name="Rules").click()
    page.go_back()
    expect(page.locator("#extra-words-h")).to_be_visible()


def test_a_run_shows_which_branch_of_an_any_group_held(page, deskflow):
    rule = deskflow.create_rule({
        "name": "Refund or high", "enabled": True, "triggers": ["ticket.created"],
        "conditions": {"all": [{"field": "channel", "op": "is", "value": "email"},
                               {"any": [{"field": "subject", "op": "contains", "value": "refund"},
                                        {"field": "priority", "op": "gt", "value": "normal"}]}]},
        "actions": [{"type": "add_tags", "tags": ["look"]}]})
    deskflow.send({"id": "words-any-1", "type": "ticket.created",
                   "ticket": {"id": "T-words-any", "subject": "hello", "status": "new", "priority": "urgent",
                              "channel": "email", "tags": []}})
    sign_in(page, deskflow.manager_key)
    page.goto(f"{deskflow.url}/admin#/runs?ticket=T-words-any")
    card = page.locator("#runs-list article.run").first
    held = card.locator("ul.any-held li")
    expect(held).to_have_count(1)
    expect(held).to_have_attribute("data-branch", "conditions.all[1].any[1]")
    expect(held).to_contain_text("held by branch 2 of 2")
    expect(held).to_contain_text("Priority is above normal")
    # Once the rule has moved on from the revision that ran, the branch is named by path alone.
    with deskflow.client() as c:
        r = c.put(f"/v1/rules/{rule['id']}", json={**{k: rule[k] for k in ("name", "triggers", "actions", "enabled")},
                                                   "conditions": {"all": []}})
        assert r.status_code == 200, r.text
    # The filter typed in the form is in the URL too, so the reload shows the same runs.
    page.get_by_label("Outcome").select_option("fired")
    page.get_by_role("button", name="Show runs").click()
    expect(page).to_have_url(re.compile(r"#/runs\?ticket=T-words-any&outcome=fired$"))
    page.reload()
    expect(page.get_by_label("Outcome")).to_have_value("fired")
    expect(page.get_by_label("Ticket id")).to_have_value("T-words-any")
    held = page.locator("#runs-list article.run").first.locator("ul.any-held li")
    expect(held).to_contain_text("conditions.all[1].any[1]")
    expect(held).not_to_contain_text("Priority")


def test_a_viewer_follows_links_and_still_cannot_change_anything(page, deskflow):
    with deskflow.client(deskflow.admin_key) as c:
        assert c.post("/v1/groups", json={"name": "gold-words"}).status_code == 201
    rule = deskflow.create_rule({"name": "Viewer sees", "enabled": True, "triggers": ["ticket.created"],
                                 "conditions": {"all": [{"field": "priority", "op": "gt", "value": "normal"}]},
                                 "actions": [{"type": "add_to_group", "group": "gold-words"}]})
    sign_in(page, deskflow.viewer_key)
    page.goto(f"{deskflow.url}/admin#/rules/{rule['id']}")
    expect(page.locator("#editor-h")).to_have_text("View “Viewer sees”")
    expect(page.locator('[data-path="conditions.all[0].op"] option:checked')).to_have_text("is above")
    group = page.locator('select[data-path="actions[0].group"]')
    expect(group).to_have_value("gold-words")
    expect(group).to_be_disabled()
    expect(page.locator('[data-path="conditions.all[0].field"]')).to_be_disabled()
    expect(page.locator("#rule-form .buttons")).to_have_count(0)
    # No "new rule" for a viewer, even by its URL.
    page.goto(f"{deskflow.url}/admin#/rules/new")
    expect(page.locator("#rules-h")).to_be_visible()
    expect(page.locator("#editor-h")).to_be_hidden()
    with deskflow.client() as c:
        after = c.get(f"/v1/rules/{rule['id']}").json()
    assert after["revision"] == rule["revision"]
