"""Red team, session 14: a rule saved with what its run will refuse or cap.

An `http_request` (or `webhook`) action with 150 headers, a header the broker refuses (`Host`, a
name with a space, a value with a line break), a URL past the broker's 8,192 characters or with a
backslash, a `map` JSONPath the run cannot read, or a `snooze` past the last time a snooze can
last (9999-12-31T23:59:59Z, server/timekeeping.py LAST_TIME) all saved (201) and only failed, or
were cut down, at every run. Each is now a 422 naming the field's path and the limit, on every
route that writes a rule (they share rule_checks.rule_problems), with the same constants the run
uses; a value at the limit still saves.
"""
from __future__ import annotations

from typing import Any

import pytest
from server_helpers import Workspace

from sandbox.allowlist import MAX_URL_CHARS
from sandbox.convert import MAX_HEADER_CHARS, MAX_HEADERS
from sandbox.limits import MAXIMA
from server.api.rule_checks import rule_problems
from server.automation import MAX_TICKET_TAGS

URL = "https://crm.example.com/api"


def _rule(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"name": "r", "triggers": ["ticket.created"], "actions": list(actions)}


def _request(kind: str = "http_request", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "url": URL, **fields}


# (action, the path the 422 names, words its reason must carry)
OVER: list[tuple[dict[str, Any], str, tuple[str, ...]]] = [
    (_request(headers={f"X-H{i}": "v" for i in range(MAX_HEADERS + 50)}),
     "actions[0].headers", (f"limit of {MAX_HEADERS}",)),
    (_request("webhook", headers={f"X-H{i}": "v" for i in range(MAX_HEADERS + 1)}),
     "actions[0].headers", (f"limit of {MAX_HEADERS}",)),
    (_request(headers={"X-Big": "v" * MAX_HEADER_CHARS}),
     "actions[0].headers", (f"{MAX_HEADER_CHARS} characters",)),
    (_request(headers={"Host": "internal.example.com"}), "actions[0].headers.Host", ("may not be set",)),
    (_request("webhook", headers={"Transfer-Encoding": "chunked"}),
     "actions[0].headers.Transfer-Encoding", ("may not be set",)),
    (_request(headers={"Bad Name": "v"}), "actions[0].headers.Bad Name", ("may not be set",)),
    (_request(headers={"X-Split": "a\r\nX-Injected: 1"}), "actions[0].headers.X-Split", ("line break",)),
    ({"type": "http_request", "url": URL + "?q=" + "a" * MAX_URL_CHARS},
     "actions[0].url", (f"{MAX_URL_CHARS}",)),
    ({"type": "webhook", "url": "https://crm.example.com\\@evil.example.com/"},
     "actions[0].url", ("backslash",)),
    ({"type": "http_request", "url": URL + "/\x01"}, "actions[0].url", ("control",)),
    (_request(map={"owner": "$.data..owner"}), "actions[0].map.owner", ("JSONPath",)),
    (_request(map={"owner": "$.data[0"}), "actions[0].map.owner", ("JSONPath",)),
    (_request(map={"owner": "$.items[" + "9" * 5000 + "]"}), "actions[0].map.owner",
     (f"{MAXIMA.response_bytes}",)),
    ({"type": "snooze", "until": "9999-12-31T23:59:59-14:00"}, "actions[0].until", ("9999-12-31T23:59:59Z",)),
    ({"type": "snooze", "for": "3000000d"}, "actions[0].for", ("9999-12-31T23:59:59Z",)),
]


@pytest.mark.parametrize(("action", "path", "words"), OVER, ids=[f"{i}-{o[1]}" for i, o in enumerate(OVER)])
def test_a_rule_its_run_would_refuse_is_refused_when_saved(ws: Workspace, action: dict[str, Any], path: str,
                                                           words: tuple[str, ...]) -> None:
    """Before: 201, and the action failed (or was capped) at every run. Now a 422 in the rule
    errors' shape, its detail naming the path and the limit, on create and on edit."""
    r = ws.client.post("/v1/rules", json=_rule(action), headers=ws.h("admin"))
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert [d["path"] for d in details] == [path], details
    assert all(w in details[0]["reason"] for w in words), details
    ok = ws.client.post("/v1/rules", json=_rule({"type": "close"}), headers=ws.h("admin"))
    assert ok.status_code == 201, ok.text
    r = ws.client.put(f"/v1/rules/{ok.json()['id']}", json=_rule(action), headers=ws.h("admin"))
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == [path]


def test_the_import_and_drafts_refuse_them_too(ws: Workspace) -> None:
    """Every route that writes a rule checks it through rule_problems: the import names the
    rule's path in the document, a draft the action's."""
    action = _request(headers={f"X-H{i}": "v" for i in range(MAX_HEADERS + 1)})
    r = ws.client.post("/v1/import", json={"rules": [{"id": "big", **_rule(action)}]}, headers=ws.h("admin"))
    assert r.status_code == 422, r.text
    assert any(d["path"].endswith("actions[0].headers") for d in r.json()["error"]["details"]), r.text
    ok = ws.client.post("/v1/rules", json=_rule({"type": "close"}), headers=ws.h("admin"))
    r = ws.client.put(f"/v1/rules/{ok.json()['id']}/draft", json=_rule(action), headers=ws.h("admin"))
    assert r.status_code == 422, r.text


def test_values_at_the_limits_still_save(ws: Workspace) -> None:
    """The bounds are the run's: what the run sends still saves."""
    headers = {f"X-H{i}": "v" for i in range(MAX_HEADERS)}
    url = URL + "?q=" + "a" * (MAX_URL_CHARS - len(URL) - 3)
    assert len(url) == MAX_URL_CHARS
    for action in (_request(headers=headers), _request(url=url), _request(headers={"X-Ok": "v" * 1000}),
                   _request(map={"a": "$.data[0].owner", "b": "$['odd key'][12]", "c": "$"}),
                   {"type": "snooze", "until": "9999-12-31T23:59:59Z"}, {"type": "snooze", "for": "1000000d"}):
        r = ws.client.post("/v1/rules", json=_rule(action), headers=ws.h("admin"))
        assert r.status_code == 201, (action, r.text)


def test_many_problems_are_all_named_once() -> None:
    """Every bound of every action is reported, each at its own path, and a header-name check
    never reads past the count's bound (a dict of 100,000 names is one problem, not 100,000)."""
    problems = rule_problems(_rule(
        _request(headers={f"bad name {i}": "v" for i in range(100_000)}),
        {"type": "snooze", "for": "3000000d"},
        _request("webhook", url=URL + "\\x")))
    assert [p["path"] for p in problems] == ["actions[0].headers", "actions[1].for", "actions[2].url"], problems


# -- a hostile tenant's input whose worst case is unbounded on a shared path ------------------------

# 3,000 new tags an event: 100 a list (what an event's own list may hold, rules/fields.py), in 30
# returned add_tags actions
GROWER = '''
def run(event, ticket, ctx):
    return {"actions": [{"type": "add_tags",
                         "tags": [event["id"] + "-" + str(j * 100 + i) for i in range(100)]}
                        for j in range(30)]}
'''


def test_a_tickets_tags_stay_bounded_however_many_a_script_adds(ws: Workspace) -> None:
    """An event's own tags are at most 100 (server/api/validate.py MAX_TAGS) and a ticket's
    `custom` at most 64 KiB (server/automation.py cap_custom), but a script may return up to its
    output limit (64 KiB) of new tags on every event, and the ticket mirror kept them all: after
    30 events one ticket held 90,000 tags (~1 MB) that each of its later events read, copied,
    diffed and wrote back on the worker every workspace shares. Now at most MAX_TICKET_TAGS are
    kept, the first ones, and the run's notes say how many were not."""
    r = ws.client.post("/v1/scripts", json={"name": "grow", "source": GROWER}, headers=ws.h("developer"))
    assert r.status_code == 201, r.text
    ws.rule(name="grow", triggers=["ticket.created", "ticket.updated"],
            actions=[{"type": "run_script", "script": "grow"}])
    for i in range(30):
        out = ws.send({"id": f"e{i}", "type": "ticket.updated" if i else "ticket.created", "ticket": {"id": "T-1"}})
        assert out["status"] == "processed", out
    ticket = ws.client.get("/v1/tickets/T-1", headers=ws.h("viewer")).json()
    assert len(ticket["tags"]) == MAX_TICKET_TAGS, len(ticket["tags"])
    assert ticket["tags"][:2] == ["e0-0", "e0-1"], ticket["tags"][:2]
    run = ws.client.get(f"/v1/runs/{out['run_id']}", headers=ws.h("viewer")).json()
    assert any(f"not kept: a ticket keeps at most {MAX_TICKET_TAGS} tags" in n for n in run["notes"]), run["notes"]


GROUP_GROWER = '''
def run(event, ticket, ctx):
    return {"add_groups": [event["id"] + "-" + str(i) for i in range(100)]}
'''


def test_a_contacts_groups_stay_bounded_however_many_a_script_adds(ws: Workspace) -> None:
    """Like the tags: 5 events of a script's 3,000 new group names left one contact with 15,000
    groups, loaded with every event of each of its tickets. A return's list now holds at most 100
    (what an event's may), but they add up over events: at most MAX_CONTACT_GROUPS are kept."""
    from server.automation import MAX_CONTACT_GROUPS

    r = ws.client.post("/v1/scripts", json={"name": "groups", "source": GROUP_GROWER}, headers=ws.h("developer"))
    assert r.status_code == 201, r.text
    ws.rule(name="groups", triggers=["ticket.created", "ticket.updated"],
            actions=[{"type": "run_script", "script": "groups"}])
    for i in range(12):   # 1,200 names
        out = ws.send({"id": f"e{i}", "type": "ticket.updated" if i else "ticket.created",
                       "ticket": {"id": "T-1", "contact": {"id": "C-1"}}})
        assert out["status"] == "processed", out
    contact = ws.client.get("/v1/contacts/C-1", headers=ws.h("viewer")).json()
    assert len(contact["groups"]) == MAX_CONTACT_GROUPS, len(contact["groups"])
    run = ws.client.get(f"/v1/runs/{out['run_id']}", headers=ws.h("viewer")).json()
    assert any("contact groups not kept" in n for n in run["notes"]), run["notes"]
