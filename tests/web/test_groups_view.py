"""The managers' page lists a group's contacts, companies and tickets (issue 19, item 4), in a
real headless Chromium against a real server: contacts in the group, companies in the group, and
the tickets of either; paged with "More"; a bad group name says why."""

from __future__ import annotations

import itertools

from playwright.sync_api import expect

from .web_helpers import DOCS, sign_in

_ids = itertools.count()


def _event(tid: str, contact: dict) -> dict:
    return {"id": f"gv-{next(_ids)}-{tid}", "type": "ticket.created",
            "ticket": {"id": tid, "subject": f"Subject of {tid}", "status": "open", "contact": contact}}


def _open_browse(page, deskflow, key: str, group: str) -> None:
    sign_in(page, key)
    page.get_by_role("button", name="Contact groups").click()
    page.get_by_label("Group", exact=True).fill(group)
    page.get_by_role("button", name="Show").click()


def test_a_group_lists_its_contacts_companies_and_tickets(page, deskflow):
    deskflow.send(_event("GV-1", {"id": "GV-C1", "name": "Gina", "email": "gina@example.com",
                                  "groups": ["gv-gold"]}))
    deskflow.send(_event("GV-2", {"id": "GV-C2", "name": "Hal", "company": {
        "id": "GV-ACME", "name": "Acme <b>Inc</b>", "domain": "acme.example", "groups": ["GV-Gold"]}}))
    deskflow.send(_event("GV-3", {"id": "GV-C3", "company": {"id": "GV-OTHER", "name": "Other"}}))
    _open_browse(page, deskflow, deskflow.viewer_key, "gv-gold")
    contacts = page.locator("#group-contacts tbody tr")
    expect(contacts).to_have_count(1)
    expect(contacts.first).to_contain_text("gina@example.com")
    companies = page.locator("#group-companies tbody tr")
    expect(companies).to_have_count(1)
    expect(companies.first).to_contain_text("Acme <b>Inc</b>")   # text, never markup
    expect(page.locator("#group-companies b")).to_have_count(0)
    tickets = page.locator("#group-tickets tbody tr")
    expect(tickets).to_have_count(2)
    expect(page.locator('#group-tickets tr[data-id="GV-2"]')).to_contain_text("Acme <b>Inc</b>")
    expect(page.locator('#group-tickets tr[data-id="GV-3"]')).to_have_count(0)
    page.screenshot(path=str(DOCS / "admin-groups.png"), full_page=True)


def test_more_follows_the_cursor_and_a_bad_name_says_why(page, deskflow):
    for n in range(52):
        deskflow.send(_event(f"GV-M{n}", {"id": f"GV-M{n:02d}", "groups": ["gv-many"]}))
    _open_browse(page, deskflow, deskflow.manager_key, "gv-many")
    rows = page.locator("#group-contacts tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="More contacts").click()
    expect(rows).to_have_count(52)
    expect(page.get_by_role("button", name="More contacts")).to_be_hidden()
    expect(page.locator("#group-companies + p")).to_have_text("No companies in gv-many.")
    page.get_by_label("Group", exact=True).fill("not a group")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#group-browse-results .error-text").first).to_contain_text(
        "Could not load contacts: ")
