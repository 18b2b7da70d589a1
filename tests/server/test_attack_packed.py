"""Attacks on the packed run record (rules/packed.py pack/unpack, server/store/run_rules.py): a
run read back must show the entries the rule saw, whatever write path changed the rule since, and
crafted or corrupted stored data must never answer a 500.

Every read after a change is made twice: with the process's plan cache as it is, and with it
emptied (`_cold`), which is what another API process, or this one after a restart, reads: the
cache holds what an earlier read made, so a reused revision number shows only on a cold read."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from server_helpers import Workspace

from server.store import run_rules

VIP = {"name": "VIP desk", "triggers": ["ticket.updated"],
       "conditions": {"all": [{"field": "priority", "op": "is", "value": "urgent"},
                              {"any": [{"field": "subject", "op": "contains", "value": "refund"},
                                       {"field": "channel", "op": "is", "value": "chat"}]}]},
       "actions": [{"type": "add_tags", "tags": ["vip"]}]}
BILLING = {"name": "tag billing", "triggers": ["ticket.updated"],
           "conditions": {"all": [{"field": "subject", "op": "contains", "value": "invoice"},
                                  {"field": "tags", "op": "includes", "value": "vip"}]},
           "actions": [{"type": "add_tags", "tags": ["billing"]}]}
# what the write paths turn the VIP rule into: other steps, other names, other fields
OTHER = {"name": "VIP desk v2", "triggers": ["ticket.updated"],
         "conditions": {"any": [{"field": "channel", "op": "is", "value": "phone"},
                                {"field": "status", "op": "is", "value": "solved"},
                                {"field": "subject", "op": "contains", "value": "zzz"}]},
         "actions": [{"type": "add_tags", "tags": ["vip"]}]}


def _event(n: int, tid: str = "T-1", **ticket: Any) -> dict[str, Any]:
    return {"id": f"E{n}", "type": "ticket.updated", "occurred_at": "2026-11-23T08:00:00Z",
            "ticket": {"id": tid, **ticket}}


def _cold() -> None:
    run_rules._plans.clear()
    run_rules._kept.bytes = 0


def _ok(r: Any) -> Any:
    assert r.status_code < 300, (r.status_code, r.text)
    return r.json() if r.content else None


class Seen:
    """Everything the API shows of a set of runs' rules: one run, the ticket's runs, the rules'
    runs, the workspace's runs (with and without filters)."""

    def __init__(self, ws: Workspace, runs: list[str], rules: list[str]) -> None:
        self.ws, self.runs, self.rules = ws, runs, rules

    def read(self) -> dict[str, Any]:
        ws, v = self.ws, self.ws.h("viewer")
        out: dict[str, Any] = {}
        for run_id in self.runs:
            out[f"run {run_id}"] = _ok(ws.client.get(f"/v1/runs/{run_id}", headers=v))["rules"]
        for path in ("/v1/tickets/T-1/runs", "/v1/runs", "/v1/runs?ticket=T-1",
                     "/v1/runs?outcome=fired"):
            out[path] = {it["id"]: it["rules"] for it in _ok(ws.client.get(path, headers=v))["items"]
                         if it["id"] in self.runs}
        for rid in self.rules:
            out[f"runs?rule={rid}"] = {it["id"]: it["rules"] for it in _ok(
                ws.client.get(f"/v1/runs?rule={rid}", headers=v))["items"]}
            r = ws.client.get(f"/v1/rules/{rid}/runs", headers=v)
            if r.status_code == 200:   # (a deleted rule's run list is gone with it)
                out[f"/v1/rules/{rid}/runs"] = {it["id"]: it["rules"] for it in r.json()["items"]}
        return out

    def same_after(self, before: dict[str, Any], what: str) -> None:
        warm = self.read()
        _cold()
        cold = self.read()
        for key, entries in before.items():
            for name, after in (("warm", warm), ("cold", cold)):
                if "rule" in key and ("deleted" in what or "recreate" in what):
                    # a delete drops the rule's run list (store/revisions.py RULE.dropped): what
                    # is still listed must read the same
                    shown = after.get(key) or {}
                    assert {r: e for r, e in entries.items() if r in shown} == shown, \
                        f"{what}: {key} read {name} differs"
                else:
                    assert after.get(key) == entries, f"{what}: {key} read {name} differs"


def _setup(ws: Workspace) -> tuple[dict[str, Any], dict[str, Any], Seen, dict[str, Any]]:
    vip, billing = ws.rule(**VIP), ws.rule(**BILLING)
    sent = [ws.send(_event(1, subject="Refund please", priority="low", channel="email")),
            ws.send(_event(2, subject="invoice, refund", priority="urgent", channel="chat")),
            ws.send(_event(3, subject="nothing", priority="urgent", channel="email"))]
    seen = Seen(ws, [s["run_id"] for s in sent], [vip["id"], billing["id"]])
    _cold()
    before = seen.read()
    # the record holds what the test means to compare: fired with a branch, failed with seen
    e2 = before[f"run {sent[1]['run_id']}"]
    assert e2[0]["matched"] is True and e2[0]["any_held"] == {"conditions.all[1]": "conditions.all[1].any[0]"}
    assert e2[1]["matched"] is True
    e1 = before[f"run {sent[0]['run_id']}"]
    assert e1[0]["failed"]["seen"] == "low" and e1[1]["failed"]["seen"] == "Refund please"
    e3 = before[f"run {sent[2]['run_id']}"]
    assert e3[0]["failed"] == {"path": "conditions.all[1]", "field": None, "op": "any", "value": None,
                               "seen": None}
    return vip, billing, seen, {"before": before, "sent": sent}


def _import(ws: Workspace, rules: list[dict[str, Any]], missing: str = "keep") -> Any:
    return _ok(ws.client.post(f"/v1/import?missing={missing}", headers=ws.h("manager"),
                              json={"deskflow": 1, "rules": rules}))


def _change_put(ws: Workspace, rid: str) -> None:
    _ok(ws.client.put(f"/v1/rules/{rid}", headers=ws.h("manager"), json={**OTHER, "enabled": True}))


def _change_patch(ws: Workspace, rid: str) -> None:
    _ok(ws.client.patch(f"/v1/rules/{rid}", headers=ws.h("manager"), json={"name": "renamed"}))
    _ok(ws.client.patch(f"/v1/rules/{rid}", headers=ws.h("manager"),
                        json={"conditions": OTHER["conditions"]}))


def _change_toggle(ws: Workspace, rid: str) -> None:
    _ok(ws.client.post(f"/v1/rules/{rid}/disable", headers=ws.h("manager")))
    _ok(ws.client.post(f"/v1/rules/{rid}/enable", headers=ws.h("manager")))


def _change_order(ws: Workspace, rid: str) -> None:
    ids = [r["id"] for r in _ok(ws.client.get("/v1/rules", headers=ws.h("viewer")))["items"]]
    _ok(ws.client.put("/v1/rules/order", headers=ws.h("manager"), json={"ids": ids[::-1]}))


def _change_draft(ws: Workspace, rid: str) -> None:
    _ok(ws.client.post(f"/v1/rules/{rid}/draft", headers=ws.h("manager"), json={"rule": OTHER}))
    _ok(ws.client.post(f"/v1/rules/{rid}/draft/publish", headers=ws.h("manager")))


def _change_restore(ws: Workspace, rid: str) -> None:
    _change_put(ws, rid)
    _ok(ws.client.post(f"/v1/rules/{rid}/revisions/1/restore", headers=ws.h("manager")))
    _change_put(ws, rid)


def _change_import(ws: Workspace, rid: str) -> None:
    _import(ws, [{"id": rid, **OTHER, "enabled": True}])


def _change_import_delete_recreate(ws: Workspace, rid: str) -> None:
    rules = _ok(ws.client.get("/v1/rules", headers=ws.h("viewer")))["items"]
    keep = [{k: r[k] for k in ("id", "name", "enabled", "triggers", "conditions", "actions") if k in r}
            for r in rules if r["id"] != rid]
    _import(ws, keep, missing="delete")
    _import(ws, [{"id": rid, **OTHER, "enabled": True}])


def _change_delete_recreate(ws: Workspace, rid: str) -> None:
    assert ws.client.delete(f"/v1/rules/{rid}", headers=ws.h("manager")).status_code == 204
    _import(ws, [{"id": rid, **OTHER, "enabled": True}])
    assert ws.client.delete(f"/v1/rules/{rid}", headers=ws.h("manager")).status_code == 204
    _ok(ws.client.post(f"/v1/rules/{rid}/revisions/1/restore", headers=ws.h("manager")))
    _change_put(ws, rid)


CHANGES = {"put": _change_put, "patch": _change_patch, "disable-enable": _change_toggle,
           "order": _change_order, "draft-publish": _change_draft, "restore": _change_restore,
           "import": _change_import, "import-delete-recreate": _change_import_delete_recreate,
           "delete-recreate": _change_delete_recreate}


@pytest.mark.parametrize("how", sorted(CHANGES))
def test_an_old_run_reads_the_same_after_the_rule_changes(ws: Workspace, how: str) -> None:
    vip, billing, seen, got = _setup(ws)
    CHANGES[how](ws, vip["id"])
    CHANGES[how](ws, billing["id"])
    seen.same_after(got["before"], how)
    # ?wait=true's answer for the same event again: the first run's summary
    again = ws.send(_event(2, subject="invoice, refund", priority="urgent", channel="chat"))
    first = got["sent"][1]
    assert again["status"] == "duplicate" and again["run_id"] == first["run_id"]
    assert again["changes"] == first["changes"] and again["effects"] == first["effects"]


# --- rules written without a revision record: the demo's, and older versions' ---------------------

def _store(ws: Workspace) -> Any:
    return ws.client.app_state["store"]  # type: ignore[attr-defined]


def _call(ws: Workspace, fn: Any, *args: Any) -> Any:
    return ws.client.portal.call(fn, *args)  # type: ignore[union-attr]


@pytest.mark.parametrize("stored_revision", [False, True], ids=["no-revision-field", "revision-1"])
def test_a_rule_stored_without_revisions_keeps_its_old_runs_after_an_api_change(
        ws: Workspace, stored_revision: bool) -> None:
    """A rule written by an older version (no `revision`: the rule cache counts it as 1) or by
    catalog.put_rule with `"revision": 1` (the demo's) has no revision record; its runs read it as
    revision 1 from the stored rule. Its first change through the API must neither reuse number 1
    (the old runs would be read with the new definition) nor lose what revision 1 said."""
    from server.store import catalog

    rule = {"id": "r_old", **VIP, "enabled": True, "position": 1}
    if stored_revision:
        rule["revision"] = 1
    _call(ws, catalog.put_rule, _store(ws), ws.id, rule)
    runs = [ws.send(_event(1, subject="Refund please", priority="low", channel="email"))["run_id"],
            ws.send(_event(2, subject="refund", priority="urgent", channel="chat"))["run_id"]]
    seen = Seen(ws, runs, [])
    before = seen.read()
    assert before[f"run {runs[0]}"][0]["failed"]["seen"] == "low"
    assert before[f"run {runs[0]}"][0]["revision"] == 1
    _change_put(ws, "r_old")
    revs = _ok(ws.client.get("/v1/rules/r_old/revisions", headers=ws.h("viewer")))["items"]
    assert max(r["n"] for r in revs) >= 2, "the first API change reused revision number 1"
    seen.same_after(before, "put after put_rule")
    # and revision 1 reads as what the rule said then
    one = _ok(ws.client.get("/v1/rules/r_old/revisions/1", headers=ws.h("viewer")))
    assert one["rule"]["conditions"] == VIP["conditions"] and one["rule"]["name"] == VIP["name"]


def test_the_demo_workspace_keeps_its_first_runs_after_its_rules_change(ws: Workspace) -> None:
    from server.demo import setup_demo

    demo = _call(ws, setup_demo, _store(ws))
    h = {"Authorization": f"Bearer {demo['admin_key']}"}
    r = ws.client.post("/v1/events?wait=true", headers=h, json={
        "id": "D1", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
        "ticket": {"id": "T-1", "subject": "urgent: refund", "priority": "low",
                   "contact": {"id": "C-1", "groups": ["regular"]}}})
    run_id = _ok(r)["run_id"]
    before = _ok(ws.client.get(f"/v1/runs/{run_id}", headers=h))["rules"]
    assert before[0]["failed"]["field"] == "contact.groups" and before[0]["revision"] == 1
    for rule in _ok(ws.client.get("/v1/rules", headers=h))["items"]:
        _ok(ws.client.patch(f"/v1/rules/{rule['id']}", headers=h,
                            json={"name": "changed", "conditions": OTHER["conditions"]}))
    _cold()
    assert _ok(ws.client.get(f"/v1/runs/{run_id}", headers=h))["rules"] == before


# --- crafted or corrupted stored data: never a 500 ------------------------------------------------

def _stored(ws: Workspace, run_id: str) -> dict[str, Any]:
    from server.store import keys as K

    async def get() -> Any:
        return await _store(ws).redis.get(K.run(ws.id, run_id))
    return dict(orjson.loads(_call(ws, get)))


def _restore_run(ws: Workspace, run: dict[str, Any]) -> None:
    from server.store import keys as K

    async def put() -> None:
        await _store(ws).redis.set(K.run(ws.id, run["id"]), orjson.dumps(run))
    _call(ws, put)


def _set_revision(ws: Workspace, rid: str, n: int, raw: bytes) -> None:
    from server.store import keys as K

    async def put() -> None:
        await _store(ws).redis.hset(K.revisions(ws.id, "rule", rid), str(n), raw)
    _call(ws, put)


def _all_reads_answer(ws: Workspace, run_id: str) -> list[Any]:
    """Every read of the run answers 200 (cold, as another process would); its `rules`."""
    _cold()
    v = ws.h("viewer")
    got = []
    for path in (f"/v1/runs/{run_id}", "/v1/tickets/T-1/runs", "/v1/runs", "/v1/runs?outcome=errored",
                 "/v1/runs?outcome=fired"):
        r = ws.client.get(path, headers=v)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        body = r.json()
        got += [body["rules"]] if "rules" in body else [it["rules"] for it in body["items"] if it["id"] == run_id]
    return got


def _packed(run: dict[str, Any]) -> dict[str, Any]:
    [p] = run["rules"]
    assert p["packed"] == 1
    return dict(p)


CORRUPT: dict[str, Any] = {
    "ids longer than revs": lambda p: p.update(revs=p["revs"][:1]),
    "codes shorter than ids": lambda p: p.update(codes=p["codes"][:1]),
    "a rev that is a list": lambda p: p.update(revs=[[1], *p["revs"][1:]]),
    "a rev that is an object": lambda p: p.update(revs=[{"a": 1}, *p["revs"][1:]]),
    "an id that is an object": lambda p: p.update(ids=[{"a": 1}, *p["ids"][1:]]),
    "a code that is a string": lambda p: p.update(codes=["x", *p["codes"][1:]]),
    "a code past the steps": lambda p: p.update(codes=[15 + 16 * 3, *p["codes"][1:]]),
    "a negative code": lambda p: p.update(codes=[-7, *p["codes"][1:]]),
    "a code of a huge branch": lambda p: p.update(codes=[2 ** 62 + 2, *p["codes"][1:]]),
    "fired past the end": lambda p: p.update(fired=[99, "x"]),
    "full with a bad position": lambda p: p.update(full=[["x", {}], [1], 7]),
    "full entry not an object": lambda p: p.update(full=[[0, "entry"]]),
    "no seen": lambda p: p.pop("seen"),
    "seen without values": lambda p: p.update(seen={"fields": ["priority"]}),
    "seen with no fields": lambda p: p.update(seen={"fields": [], "values": [[0, []]]}),
    "seen values short": lambda p: p.update(seen={**p["seen"], "values": [[0, []]]}),
    "seen later malformed": lambda p: p.update(seen={**p["seen"], "values": [*p["seen"]["values"], [1, [5]]]}),
    "tags malformed": lambda p: p.update(seen={**p["seen"], "tags": [[0]], "tag_list": 5}),
    "no at": lambda p: p.update(at=[]),
    "at not a list": lambda p: p.update(at=5),
    "ids not a list": lambda p: p.update(ids=5),
    "packed is all there is": lambda p: [p.pop(k) for k in list(p) if k != "packed"],
}


@pytest.mark.parametrize("how", sorted(CORRUPT))
def test_a_corrupted_packed_record_never_answers_500(ws: Workspace, how: str) -> None:
    _setup(ws)
    run_id = ws.send(_event(9, subject="Refund please", priority="low", channel="email"))["run_id"]
    run = _stored(ws, run_id)
    p = _packed(run)
    CORRUPT[how](p)
    run["rules"] = [p]
    _restore_run(ws, run)
    _all_reads_answer(ws, run_id)


REVISION_DOCS = {
    "not JSON": b"{not json",
    "a list": b"[1, 2]",
    "rule is a string": orjson.dumps({"n": 1, "rule": "x"}),
    "rule does not compile": orjson.dumps({"n": 1, "rule": {"name": "x", "conditions": 5}}),
    "rule of no conditions": orjson.dumps({"n": 1, "rule": {"id": "x", "name": "bare", "triggers": ["ticket.updated"],
                                                           "actions": [{"type": "add_tags", "tags": ["a"]}]}}),
    # other steps than the code was made for: fewer, of another kind (`matches` words its own
    # failure, so pack never codes it), more than FIRST_INLINE (always stored whole)
    "one step": orjson.dumps({"n": 1, "rule": {**OTHER, "conditions": {"all": [
        {"field": "status", "op": "is", "value": "solved"}]}}}),
    "a matches step": orjson.dumps({"n": 1, "rule": {**OTHER, "conditions": {"all": [
        {"field": "subject", "op": "matches", "value": "a+"},
        {"field": "subject", "op": "matches", "value": "b+"}]}}}),
    "another field": orjson.dumps({"n": 1, "rule": {**OTHER, "conditions": {"all": [
        {"field": "department", "op": "is", "value": "x"},
        {"field": "custom.zz", "op": "is", "value": "y"}]}}}),
    "an any group in place of a leaf": orjson.dumps({"n": 1, "rule": {**OTHER, "conditions": {"all": [
        {"any": [{"field": "status", "op": "is", "value": "solved"}]},
        {"any": [{"field": "status", "op": "is", "value": "x"}, {"field": "status", "op": "is", "value": "y"}]}]}}}),
    "many steps": orjson.dumps({"n": 1, "rule": {**OTHER, "conditions": {"all": [
        {"field": "status", "op": "is", "value": f"s{i}"} for i in range(14)]}}}),
}


# a revision whose step at the code is of the same kind reads as that step: nothing in the
# record tells it from the rule that ran (no fingerprint is stored), so only no 500 is asked.
# Since `pack` codes `matches` failures and rules checked again after a fire (the fired VIP rule
# here) by their code at their turn, a revision of a plain or `matches` leaf there, or of no
# conditions for a fired rule, reads plausibly too (a fired entry shows no step: any revision
# whose `any` groups fit its code reads as it). A fingerprint of each rule's conditions in
# the record would tell them apart: not built yet.
PLAUSIBLE = {"an any group in place of a leaf", "one step", "a matches step"}


@pytest.mark.parametrize("how", sorted(REVISION_DOCS))
def test_a_revision_that_is_not_the_rule_the_code_was_made_for_never_answers_500(ws: Workspace, how: str) -> None:
    vip, billing, seen, got = _setup(ws)
    for s in got["sent"]:
        _set_revision(ws, vip["id"], 1, REVISION_DOCS[how])
        _set_revision(ws, billing["id"], 1, REVISION_DOCS[how])
        for entries in _all_reads_answer(ws, s["run_id"]):
            assert [e["id"] for e in entries] == [vip["id"], billing["id"]]
            for e in entries:   # an entry it cannot read back says so
                if how in PLAUSIBLE or e["matched"]:
                    continue
                assert e.get("notes") or e["name"] in (VIP["name"], BILLING["name"]), e


def test_a_rule_naming_a_calendar_reads_back_its_other_steps(ws: Workspace) -> None:
    """rule_plan resolved every calendar name to a placeholder that was itself not a valid
    calendar (an empty week), and an empty placeholder read as "no calendars given": every rule
    with a named business-time condition read back as 'revision N is not stored', cold."""
    _ok(ws.client.post("/v1/sla-policies", headers=ws.h("manager"), json={
        "name": "oslo", "targets": {"first_response": "1h"},
        "business_hours": {"timezone": "Europe/Oslo", "week": {"mon": ["09:00", "17:00"]}}}))
    rule = ws.rule(name="old in oslo hours", triggers=["ticket.updated"], conditions={"all": [
        {"field": "priority", "op": "is", "value": "urgent"},
        {"field": "created_at", "op": "older_than_business", "value": "1h", "calendar": "oslo"}]},
        actions=[{"type": "add_tags", "tags": ["late"]}])
    run_id = ws.send(_event(1, priority="low"))["run_id"]
    _cold()
    [entry] = _ok(ws.client.get(f"/v1/runs/{run_id}", headers=ws.h("viewer")))["rules"]
    assert entry == {"id": rule["id"], "name": "old in oslo hours", "matched": False, "revision": 1,
                     "failed": {"path": "conditions.all[0]", "field": "priority", "op": "is",
                                "value": "urgent", "seen": "low"}}


# --- the size of what a read answers ---------------------------------------------------------------

def test_a_page_of_runs_answers_about_page_bytes_whatever_the_rules_values(ws: Workspace) -> None:
    """A page of runs stops after about PAGE_BYTES (server/store/runs.py), a packed record counted
    at ~250 bytes an entry. An entry's `failed.value` is the rule's own (a condition's value has
    no length bound but the body's 1 MiB): 20 failing rules of a 50 KB value each expand every
    run to ~1 MB, and the page of 40 such runs answered ~40 MB."""
    from server.store.runs import PAGE_BYTES

    for i in range(20):
        ws.rule(name=f"wide {i}", triggers=["ticket.updated"],
                conditions={"field": "subject", "op": "contains", "value": f"{i:02d}" + "x" * 50_000},
                actions=[{"type": "add_tags", "tags": ["w"]}])
    runs = [ws.send(_event(n, subject="short"), wait=n == 39) for n in range(40)]
    assert runs[-1]["status"] == "processed"
    for path in ("/v1/tickets/T-1/runs?limit=500", "/v1/runs?limit=500", "/v1/runs?ticket=T-1&limit=500"):
        _cold()
        r = ws.client.get(path, headers=ws.h("viewer"))
        assert r.status_code == 200
        one = max(len(orjson.dumps(it)) for it in r.json()["items"])
        assert len(r.content) <= PAGE_BYTES + 2 * one, f"{path}: {len(r.content)} bytes in one page"
        assert r.json()["next"] is not None


def test_the_plans_kept_are_bounded_by_their_values_bytes(ws: Workspace, monkeypatch: Any) -> None:
    """Plans are kept per (workspace, rule, revision), PLANS_KEPT of them; a plan keeps its
    conditions' values, which only the rule body's 1 MiB bounds: 20,000 of them could hold
    20 GB. They are also kept to about PLAN_BYTES_KEPT, and a read past it still reads right."""
    monkeypatch.setattr(run_rules, "PLAN_BYTES_KEPT", 2_000_000)
    for i in range(10):
        ws.rule(name=f"wide {i}", triggers=["ticket.updated"],
                conditions={"field": "subject", "op": "contains", "value": f"{i:02d}" + "x" * 50_000},
                actions=[{"type": "add_tags", "tags": ["w"]}])
    run_id = ws.send(_event(1, subject="short"))["run_id"]
    _cold()
    for _ in range(2):
        entries = _ok(ws.client.get(f"/v1/runs/{run_id}", headers=ws.h("viewer")))["rules"]
        assert [e["failed"]["value"][:2] for e in entries] == [f"{i:02d}" for i in range(10)]
        assert all(e["failed"]["seen"] == "short" for e in entries)
        assert run_rules._kept.bytes <= 2_000_000 and len(run_rules._plans) < 10
