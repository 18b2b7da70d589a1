"""The pure merge of an event's ticket data into the mirror."""

from __future__ import annotations

import orjson

from server.automation import merge_event, new_ticket


def _ev(ticket, etype="ticket.updated", at="2026-11-23T10:00:00Z", message=None):
    e = {"id": "e", "type": etype, "occurred_at": at, "ticket": {"id": "T", **ticket}}
    if message:
        e["message"] = message
    return e


def test_first_event_fills_defaults():
    t = merge_event(None, _ev({"subject": "s"}, "ticket.created"))
    assert t == {**new_ticket("T"), "subject": "s", "created_at": "2026-11-23T10:00:00Z",
                 "updated_at": "2026-11-23T10:00:00Z"}


def test_partial_merge_does_not_mutate_previous():
    prev = merge_event(None, _ev({"tags": ["a", "A", "b"], "custom": {"x": 1, "y": 2},
                                  "contact": {"id": "C", "custom": {"k": 1}, "groups": ["vip"]}}))
    assert prev["tags"] == ["a", "b"]
    snapshot = repr(prev)
    t = merge_event(prev, _ev({"custom": {"x": None, "z": 3}, "contact": {"id": "C", "name": "N"},
                               "version": 99, "created_at": "1999-01-01T00:00:00Z"}))
    assert repr(prev) == snapshot
    assert t["custom"] == {"y": 2, "z": 3}
    assert t["contact"] == {"id": "C", "custom": {"k": 1}, "groups": ["vip"], "name": "N"}
    assert t["version"] == 0 and t["created_at"] == prev["created_at"]


def test_stored_contact_groups_win_unless_the_event_sets_them():
    prev = merge_event(None, _ev({"contact": {"id": "C", "groups": ["a"]}}))
    t = merge_event(prev, _ev({}), contact={"id": "C", "groups": ["vip"]})
    assert t["contact"]["groups"] == ["vip"]
    t = merge_event(prev, _ev({"contact": {"id": "C", "groups": ["b"]}}),
                    contact={"id": "C", "groups": ["vip"]})
    assert t["contact"]["groups"] == ["b"]
    t = merge_event(None, _ev({"contact": {"id": "C"}}), contact={"id": "C", "groups": ["vip"]})
    assert t["contact"]["groups"] == ["vip"]


def test_message_timestamps_by_author():
    t = merge_event(None, _ev({}, "message.received", message={"author": "customer", "body": "x"}))
    assert t["last_customer_message_at"] == "2026-11-23T10:00:00Z"
    assert t["last_agent_message_at"] is None
    t = merge_event(t, _ev({}, "message.sent", at="2026-11-23T11:00:00Z", message={"body": "y"}))
    assert t["last_agent_message_at"] == "2026-11-23T11:00:00Z"
    t = merge_event(t, _ev({}, at="2026-11-23T09:00:00Z"))
    assert t["updated_at"] == "2026-11-23T11:00:00Z"


def test_a_ticket_cannot_grow_without_end_through_its_events() -> None:
    from server.automation import MAX_MERGED_CUSTOM_BYTES, merge_event

    ticket = None
    for i in range(40):   # each event within the 16 KiB per-event custom limit
        e = {"id": f"e{i}", "type": "ticket.updated", "occurred_at": "2026-11-23T08:00:00Z",
             "ticket": {"id": "T", "custom": {f"k{i}": "x" * 8000}, f"extra{i}": "y" * 8000}}
        ticket = merge_event(ticket, e)
    assert len(orjson.dumps(ticket["custom"])) <= MAX_MERGED_CUSTOM_BYTES
    assert "k39" in ticket["custom"] and "k0" not in ticket["custom"]   # oldest keys go first
    assert not any(k.startswith("extra") for k in ticket)               # unknown keys not mirrored
