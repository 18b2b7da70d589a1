"""Hostile manager vs contact groups: names and colours are checked with `^...$` patterns, and in
Python `$` also matches before a trailing newline, so "#ff8800\n" was a colour and "vip\n" a
group name (a second "vip" on the managers' page, a key of its own in the store)."""

from __future__ import annotations

import pytest
from server_helpers import Workspace


@pytest.mark.parametrize("key", ["color", "text_color"])
def test_a_colour_with_a_trailing_newline_is_refused(ws: Workspace, key: str) -> None:
    r = ws.client.post("/v1/groups", json={"name": "vip", key: "#ff8800\n"}, headers=ws.h("manager"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"] == key
    r = ws.client.post("/v1/groups", json={"name": "vip", key: "#ff8800"}, headers=ws.h("manager"))
    assert r.status_code == 201, r.text
    r = ws.client.patch("/v1/groups/vip", json={key: "#000000\n"}, headers=ws.h("manager"))
    assert r.status_code == 422, r.text
    assert ws.client.get("/v1/groups/vip", headers=ws.h("viewer")).json()[key] == "#ff8800"


def test_a_group_name_with_a_trailing_newline_is_refused(ws: Workspace) -> None:
    assert ws.client.post("/v1/groups", json={"name": "vip"}, headers=ws.h("manager")).status_code == 201
    r = ws.client.post("/v1/groups", json={"name": "vip\n"}, headers=ws.h("manager"))
    assert r.status_code == 422, r.text
    r = ws.client.get("/v1/contacts", params={"group": "vip\n"}, headers=ws.h("viewer"))
    assert r.status_code == 422, r.text
    names = [g["name"] for g in ws.client.get("/v1/groups", headers=ws.h("viewer")).json()["items"]]
    assert names == ["vip"]
