"""Hostile links into the managers' page (h-attack). The router looked a hash's view name up in
a plain object, so `#/constructor`, `#/__proto__` or `#/toString` found Object.prototype's
members: every view was hidden and rendering threw (a blank page, an uncaught TypeError) where
any other unknown name says "There is no page" and shows the rules. A name carrying markup is
shown as text, never parsed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .web_helpers import sign_in


@pytest.mark.parametrize("name", ["constructor", "__proto__", "toString", "hasOwnProperty"])
def test_a_view_name_from_object_prototype_is_no_page(page, deskflow, name):
    sign_in(page, deskflow.manager_key)
    page.goto(f"{deskflow.url}/admin#/{name}")
    expect(page.locator("#alert")).to_contain_text(f"There is no page “{name}”")
    expect(page.locator("#rules-h")).to_be_visible()   # (the page fixture fails on a page error)


def test_markup_in_a_view_name_is_shown_as_text(page, deskflow):
    sign_in(page, deskflow.manager_key)
    page.goto(f"{deskflow.url}/admin#/%3Cimg%20src%3Dx%20id%3Dpwn%3E")
    expect(page.locator("#alert")).to_contain_text("There is no page “<img src=x id=pwn>”")
    expect(page.locator("#pwn")).to_have_count(0)
