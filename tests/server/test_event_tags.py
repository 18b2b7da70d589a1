"""An event's ticket tags take no control characters (NUL, newline, escape, DEL): 422 naming the
field, like ids and group names; ordinary tags, Unicode included, still go through."""

from __future__ import annotations

import pytest
from server_helpers import Workspace, event


@pytest.mark.parametrize("tag", ["vip\x00", "line\nbreak", "\x1b[31mred", "del\x7f", "tab\there"])
def test_a_tag_with_a_control_character_is_refused_by_name(ws: Workspace, tag: str) -> None:
    r = ws.client.post("/v1/events", json=event("e1", ticket={"tags": ["ok", tag]}), headers=ws.h("ingest"))
    assert r.status_code == 422, r.text
    [detail] = r.json()["error"]["details"]
    assert detail == {"path": "ticket.tags", "reason": "must not contain control characters"}


def test_a_batch_names_the_event_whose_tags_are_refused(ws: Workspace) -> None:
    batch = {"events": [event("e1"), event("e2", ticket={"tags": ["bad\r"]})]}
    r = ws.client.post("/v1/events", json=batch, headers=ws.h("ingest"))
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == ["events[1].ticket.tags"]


def test_ordinary_tags_are_kept(ws: Workspace) -> None:
    out = ws.send(event("e1", ticket={"tags": ["vip", "café ☕", "a b"]}))
    assert out["status"] == "processed", out
    assert sorted(out["ticket"]["tags"]) == sorted(["vip", "café ☕", "a b"])
