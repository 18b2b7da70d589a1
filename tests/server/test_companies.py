"""Companies (issue 19 items 3 and 4), end to end through POST /v1/events on both stores: a
contact's `company` merges into the stored company like a contact into the stored contact, rules
condition on it, GET /v1/companies lists by id or group, and GET /v1/tickets?group= matches the
company's groups too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from server_helpers import Workspace, event

from server import automation
from server.settings import Settings
from server.store import companies as company_store
from server.store import keys as K
from server.store import tickets
from server.store.connect import close_store, open_store

ACME = {"id": "ACME", "name": "Acme Inc", "domain": "acme.example", "groups": ["Enterprise"],
        "custom": {"plan": "gold"}}
VIP_RULE = {"name": "enterprise is vip", "triggers": ["ticket.created", "ticket.updated"],
            "conditions": {"all": [{"field": "contact.company.groups", "op": "includes",
                                    "value": "enterprise"}]},
            "actions": [{"type": "add_tags", "tags": ["vip"]}]}


def _with(contact: str, company: Any, **ticket: Any) -> dict[str, Any]:
    return {"contact": {"id": contact, "company": company}, **ticket}


def _get(ws: Workspace, path: str, role: str = "viewer") -> Any:
    r = ws.client.get(path, headers=ws.h(role))
    assert r.status_code == 200, r.text
    return r.json()


def _put_groups(ws: Workspace, company: str, groups: Any) -> Any:
    return ws.client.put(f"/v1/companies/{company}/groups", json={"groups": groups},
                         headers=ws.h("manager"))


def test_a_company_group_rule_fires(ws: Workspace) -> None:
    ws.rule(**VIP_RULE)
    out = ws.send(event("e1", tid="T-1", ticket=_with("C-1", ACME)))
    assert "vip" in out["ticket"]["tags"]
    # another contact of the company names it by id alone: the stored company's groups count
    out = ws.send(event("e2", tid="T-2", ticket=_with("C-2", {"id": "ACME"})))
    assert "vip" in out["ticket"]["tags"]
    assert out["ticket"]["contact"]["company"] == ACME
    # an event naming no contact at all: the stored contact names its company
    assert _put_groups(ws, "ACME", ["trial"]).status_code == 200
    out = ws.send(event("e3", "ticket.updated", tid="T-2", ticket={"tags": []}))
    assert "vip" not in out["ticket"]["tags"]
    assert out["ticket"]["contact"]["company"]["groups"] == ["trial"]
    out = ws.send(event("e4", tid="T-3", ticket=_with("C-3", {"id": "other"})))
    assert "vip" not in out["ticket"]["tags"]


def test_rules_on_company_name_and_custom(ws: Workspace) -> None:
    ws.rule(name="gold", triggers=["ticket.created"],
            conditions={"all": [{"field": "contact.company.custom.plan", "op": "is",
                                 "value": "gold"},
                                {"field": "contact.company.name", "op": "contains",
                                 "value": "acme"}]},
            actions=[{"type": "set", "field": "priority", "value": "high"}])
    assert ws.send(event("e1", tid="T-1", ticket=_with("C-1", ACME)))["ticket"]["priority"] == "high"
    out = ws.send(event("e2", tid="T-2", ticket=_with("C-2", {"id": "ACME",
                                                              "custom": {"plan": None}})))
    assert out["ticket"]["priority"] == "normal"
    assert ws.send(event("e3", tid="T-3"))["ticket"]["priority"] == "normal"  # no contact


def test_company_keys_merge_like_a_contact(ws: Workspace) -> None:
    ws.send(event("e1", tid="T-1", ticket=_with("C-1", ACME)))
    ws.send(event("e2", tid="T-2", ticket=_with("C-2", {"id": "ACME", "name": "Acme",
                                                        "custom": {"seats": 9}})))
    ws.send(event("e3", tid="T-3", ticket=_with("C-3", {"id": "ACME", "domain": None,
                                                        "custom": {"plan": None}})))
    want = {"id": "ACME", "name": "Acme", "domain": None, "groups": ["Enterprise"],
            "custom": {"seats": 9}}
    assert _get(ws, "/v1/companies/ACME") == want
    assert _get(ws, "/v1/contacts/C-1")["company_id"] == "ACME"
    # the first ticket's next event sees the company as it is now
    out = ws.send(event("e4", "ticket.updated", tid="T-1"))
    assert out["ticket"]["contact"]["company"] == want
    # groups replace; null takes the contact out of its company (the company stays)
    ws.send(event("e5", "ticket.updated", tid="T-1",
                  ticket={"contact": {"id": "C-1", "company": {"id": "ACME", "groups": ["b", "B"]}}}))
    assert _get(ws, "/v1/companies/ACME")["groups"] == ["b"]
    out = ws.send(event("e6", "ticket.updated", tid="T-1", ticket=_with("C-1", None)))
    assert "company" not in out["ticket"]["contact"]
    assert "company_id" not in _get(ws, "/v1/contacts/C-1")
    assert _get(ws, "/v1/companies/ACME")["name"] == "Acme"


def test_groups_set_before_the_first_event_are_kept(ws: Workspace) -> None:
    r = _put_groups(ws, "ACME", ["vip", "VIP", "gold"])
    assert r.status_code == 200 and r.json() == {"id": "ACME", "groups": ["vip", "gold"]}
    out = ws.send(event("e1", tid="T-1", ticket=_with("C-1", {"id": "ACME", "name": "Acme"})))
    assert out["ticket"]["contact"]["company"]["groups"] == ["vip", "gold"]
    assert _get(ws, "/v1/companies/ACME")["name"] == "Acme"


def test_companies_are_listed_by_id_and_by_group_paged(ws: Workspace) -> None:
    for n in range(5):
        ws.send(event(f"e{n}", tid=f"T-{n}", ticket=_with(
            f"C-{n}", {"id": f"CO-{n}", "name": f"Co {n}", "groups": ["Gold"] if n % 2 else []})))
    assert _put_groups(ws, "CO-0", ["gold"]).status_code == 200
    page = _get(ws, "/v1/companies?group=GOLD&limit=2")
    assert [c["id"] for c in page["items"]] == ["CO-0", "CO-1"] and page["next"]
    page2 = _get(ws, f"/v1/companies?group=gold&limit=2&cursor={page['next']}")
    assert [c["id"] for c in page2["items"]] == ["CO-3"] and page2["next"] is None
    every = _get(ws, "/v1/companies?limit=3")
    assert [c["id"] for c in every["items"]] == ["CO-0", "CO-1", "CO-2"]
    rest = _get(ws, f"/v1/companies?limit=3&cursor={every['next']}")
    assert [c["id"] for c in rest["items"]] == ["CO-3", "CO-4"] and rest["next"] is None
    # leaving a group (by event and by PUT) leaves its index
    ws.send(event("x1", "ticket.updated", tid="T-1",
                  ticket=_with("C-1", {"id": "CO-1", "groups": []})))
    assert _put_groups(ws, "CO-3", []).status_code == 200
    assert [c["id"] for c in _get(ws, "/v1/companies?group=gold")["items"]] == ["CO-0"]


def test_tickets_by_group_match_the_company_groups(ws: Workspace) -> None:
    ws.send(event("e1", tid="T-1", ticket=_with("C-1", {"id": "ACME", "groups": ["gold"]})))
    ws.send(event("e2", tid="T-2", ticket={"contact": {"id": "C-2", "groups": ["gold"]}}))
    ws.send(event("e3", tid="T-3", ticket=_with("C-3", {"id": "OTHER"})))
    ids = [t["id"] for t in _get(ws, "/v1/tickets?group=GOLD")["items"]]
    assert ids == ["T-1", "T-2"]
    assert _put_groups(ws, "OTHER", ["gold"]).status_code == 200
    assert _put_groups(ws, "ACME", []).status_code == 200
    ids = [t["id"] for t in _get(ws, "/v1/tickets?group=gold")["items"]]
    assert ids == ["T-2", "T-3"]   # at once, with no event on those tickets
    assert _get(ws, "/v1/tickets/T-3")["contact"]["company"]["groups"] == ["gold"]


def test_ctx_customer_includes_the_company(ws: Workspace) -> None:
    r = ws.client.post("/v1/scripts", headers=ws.h("admin"), json={"name": "co", "source": '''
def run(event, ticket, ctx):
    co = ctx.customer["company"]
    return {"custom": {"co": co["name"] if co else "none", "gold": "gold" in (co or {}).get("groups", [])}}
'''})
    assert r.status_code == 201, r.text
    ws.rule(name="co", triggers=["ticket.created"], actions=[{"type": "run_script", "script": "co"}])
    out = ws.send(event("e1", tid="T-1", ticket=_with("C-1", {"id": "ACME", "name": "Acme",
                                                              "groups": ["gold"]})))
    assert out["ticket"]["custom"] == {"co": "Acme", "gold": True}
    out = ws.send(event("e2", tid="T-2", ticket={"contact": {"id": "C-2"}}))
    assert out["ticket"]["custom"] == {"co": "none", "gold": False}


@pytest.mark.parametrize(("company", "path", "reason"), [
    ("ACME", "ticket.contact.company", "must be an object or null"),
    ({"name": "x"}, "ticket.contact.company.id", "must be a non-empty string"),
    ({"id": "x" * 201}, "ticket.contact.company.id", "the id length limit is 200"),
    ({"id": "A", "name": "n" * 201}, "ticket.contact.company.name",
     "the company name length limit is 200"),
    ({"id": "A", "domain": "d" * 254}, "ticket.contact.company.domain",
     "the domain length limit is 253"),
    ({"id": "A", "name": 5}, "ticket.contact.company.name", "must be a string or null"),
    ({"id": "A", "groups": ["g"] * 101}, "ticket.contact.company.groups", "the limit is 100"),
    ({"id": "A", "groups": "gold"}, "ticket.contact.company.groups", "list of non-empty"),
    ({"id": "A", "custom": {"k": "v" * 17_000}}, "ticket.contact.company.custom",
     "the custom field size limit is 16384"),
])
def test_a_bad_company_is_a_named_422(ws: Workspace, company: Any, path: str, reason: str) -> None:
    r = ws.client.post("/v1/events", json=event("e1", ticket=_with("C-1", company)),
                       headers=ws.h("ingest"))
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert [d["path"] for d in details] == [path] and reason in details[0]["reason"], details


def test_unknown_company_keys_are_listed_and_strict_refuses_them(ws: Workspace) -> None:
    r = ws.client.post("/v1/events?wait=true", headers=ws.h("ingest"),
                       json=event("e1", ticket=_with("C-1", {"id": "A", "nmae": "x"})))
    assert r.status_code == 200 and r.json()["ignored"] == ["ticket.contact.company.nmae"]
    assert "nmae" not in _get(ws, "/v1/companies/A")
    r = ws.client.post("/v1/events?strict=true", headers=ws.h("ingest"),
                       json=event("e2", ticket=_with("C-1", {"id": "A", "nmae": "x"})))
    assert r.status_code == 422
    assert "did you mean `name`" in r.json()["error"]["details"][0]["reason"]


def test_company_routes_validate_their_input(ws: Workspace) -> None:
    assert _get(ws, "/v1/companies") == {"items": [], "next": None}
    for query, status in (("?group=-x", 422), ("?group=a%20b", 422), ("?limit=0", 400),
                          ("?limit=501", 400), ("?cursor=zz", 400), ("?colour=x", 422)):
        r = ws.client.get(f"/v1/companies{query}", headers=ws.h("viewer"))
        assert r.status_code == status, (query, r.text)
    r = ws.client.get("/v1/companies/nope", headers=ws.h("viewer"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = ws.client.get(f"/v1/companies/{'x' * 300}", headers=ws.h("viewer"))
    assert r.status_code == 404
    for groups, reason in (("vip", "list of non-empty"), ([""], "list of non-empty"),
                           (["g"] * 101, "the limit is 100"), (["g" * 201], "200 characters")):
        r = _put_groups(ws, "ACME", groups)
        assert r.status_code == 422 and reason in r.json()["error"]["details"][0]["reason"], r.text
    r = ws.client.put("/v1/companies/ACME/groups", json={"groups": ["a"]}, headers=ws.h("viewer"))
    assert r.status_code == 403
    assert ws.client.get("/v1/companies").status_code == 401


def test_other_workspaces_do_not_see_a_company(ws: Workspace) -> None:
    ws.send(event("e1", tid="T-1", ticket=_with("C-1", {"id": "ACME", "groups": ["gold"]})))
    other = Workspace(ws.client, "other")
    assert other.client.get("/v1/companies/ACME", headers=other.h("viewer")).status_code == 404
    assert _get(other, "/v1/companies?group=gold")["items"] == []
    assert _get(other, "/v1/companies")["items"] == []


# -- the commit checks the company it writes ----------------------------------------------------

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


async def _pass(store: Any, ws: str, ev: dict[str, Any]) -> tuple[Any, Any]:
    snap = await tickets.load(store, ws, ev)
    outcome = automation.process(snap, ev, None, [], None, NOW, run_id=f"run-{ev['id']}")
    return snap, outcome


async def _commit(store: Any, ws: str, ev: dict[str, Any], snap: Any, outcome: Any) -> Any:
    seq = await tickets.next_seq(store, ws) if snap.previous is None else None
    return await tickets.commit(store, ws, 0, "1-0", {}, ev, f"run-{ev['id']}", snap, outcome, seq)


@pytest.mark.anyio
async def test_a_company_changed_since_the_load_makes_the_commit_retry(settings: Settings) -> None:
    """Two tickets of one company: the pass that changes the company must not overwrite a
    change made meanwhile (PUT groups here); a pass that leaves it alone does not conflict."""
    store = await open_store(settings)
    try:
        ws = "ws_co_commit"
        first = {"id": "e1", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
                 "ticket": {"id": "T-1", "contact": {"id": "C-1", "company": {"id": "ACME",
                                                                               "name": "Acme"}}}}
        assert await _commit(store, ws, first, *await _pass(store, ws, first)) is not None
        rename = {**first, "id": "e2", "ticket": {"id": "T-2", "contact": {
            "id": "C-2", "company": {"id": "ACME", "custom": {"seats": 3}}}}}
        reads = {**first, "id": "e3", "ticket": {"id": "T-3", "contact": {
            "id": "C-3", "company": {"id": "ACME"}}}}
        snap2, out2 = await _pass(store, ws, rename)
        snap3, out3 = await _pass(store, ws, reads)
        await company_store.set_company_groups(store, ws, "ACME", ["gold"])
        assert await _commit(store, ws, reads, snap3, out3) is not None   # wrote no company
        assert await _commit(store, ws, rename, snap2, out2) is None      # conflict: load again
        snap2, out2 = await _pass(store, ws, rename)
        assert await _commit(store, ws, rename, snap2, out2) is not None
        company = await company_store.get_company(store, ws, "ACME")
        assert company == {"id": "ACME", "name": "Acme", "domain": None, "groups": ["gold"],
                           "custom": {"seats": 3}}
        assert await store.redis.zrange(K.group_members(ws, "company", "GOLD"), 0, -1) in (
            [b"ACME"], ["ACME"])
    finally:
        await close_store(store)
