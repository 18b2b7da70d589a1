"""An event's ticket tags take no control characters (NUL, newline, escape, DEL): 422 naming the
field, like ids and group names; ordinary tags, Unicode included, still go through. A rule's
actions (and a script's return, tests/rules/test_script_updates.py) are held to the same limits as
an event: a manager's rule added a 5,000-character tag with a newline in it to every ticket."""

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


@pytest.mark.parametrize(("action", "path", "reason"), [
    ({"type": "add_tags", "tags": ["ok", "line\nbreak"]}, "actions[0].tags[1]",
     "must not contain control characters"),
    ({"type": "add_tags", "tags": ["x" * 5000]}, "actions[0].tags[0]",
     "is 5000 characters; a tag or group name is at most 200 characters (MAX_TAG_CHARS)"),
    ({"type": "remove_tags", "tags": [f"t{i}" for i in range(101)]}, "actions[0].tags",
     "has 101 tags; the limit is 100 tags (MAX_TAGS)"),
    ({"type": "remove_from_group", "group": "vip\r"}, "actions[0].group",
     "must not contain control characters"),
])
def test_a_rule_adds_no_tag_an_event_could_not_carry(ws: Workspace, action: dict[str, object],
                                                      path: str, reason: str) -> None:
    r = ws.client.post("/v1/rules", headers=ws.h("manager"), json={
        "name": "odd", "enabled": False, "triggers": ["ticket.created"], "actions": [action]})
    assert r.status_code == 422, r.text
    assert {"path": path, "reason": reason} in r.json()["error"]["details"], r.text


def test_a_rule_with_the_most_an_event_may_carry_is_saved_and_applied(ws: Workspace) -> None:
    tags = [f"{i:03d}" + "x" * 197 for i in range(100)]   # 100 tags of 200 characters
    ws.rule(name="many", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": tags}])
    out = ws.send(event("e1"))
    assert out["status"] == "processed" and sorted(out["ticket"]["tags"]) == tags, out
