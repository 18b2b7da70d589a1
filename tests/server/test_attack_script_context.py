"""Hostile tenant vs ctx.customer / ctx.history: what the worker hands a script is bounded.

ctx.customer's `recent` carried each of the contact's 10 newest tickets' whole subject: an
event allows ~1 MiB of subject, so one pass's ctx.customer was 9 MB (measured: 9,000,972
bytes, the pass 2.3 s), read, encoded into the run's frame and decoded again for every
run_script of every event of that contact; past 16 MiB the frame cannot be sent at all.
"""

from __future__ import annotations

import time
from typing import Any

from server_helpers import Workspace, event

from server.store import script_context

BIG = 900_000   # a subject just under the 1 MiB event body

CUSTOMER_SIZE = '''
def run(event, ticket, ctx):
    c = ctx.customer
    n = len(json.dumps(c)) if c is not None else -1
    return {"custom": {"customer_bytes": n, "recent": len(c["recent"]) if c else -1}}
'''


def _script(ws: Workspace, name: str, source: str) -> dict[str, Any]:
    r = ws.client.post("/v1/scripts", json={"name": name, "source": "import json\n" + source},
                       headers=ws.h("admin"))
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_ctx_customer_of_a_contact_with_huge_tickets_is_bounded(ws: Workspace) -> None:
    _script(ws, "size", CUSTOMER_SIZE)
    ws.rule(name="size", triggers=["message.received"],
            actions=[{"type": "run_script", "script": "size"}])
    for i in range(12):
        ws.send(event(f"big-{i}", tid=f"T-{i}", ticket={"subject": "s" * BIG,
                                                        "contact": {"id": "C-1"}}))
    t0 = time.perf_counter()
    out = ws.send(event("m-1", "message.received", tid="T-0",
                        ticket={"contact": {"id": "C-1"}}))
    took = time.perf_counter() - t0
    assert out["status"] == "processed", out
    runs = ws.client.get("/v1/tickets/T-0/runs?limit=1", headers=ws.h("viewer")).json()["items"]
    assert runs[0]["scripts"][0]["error"] is None, runs[0]["scripts"][0]
    custom = runs[0]["scripts"][0]["updates"]["custom"]
    assert custom["recent"] == 10
    # 10 summaries of at most ~0.6 KiB, a name and an email, the custom (empty here): was 9 MB
    assert 0 < custom["customer_bytes"] < 16 * 1024, (custom, took)
    subjects = ws.send(event("m-2", "message.received", tid="T-0",
                             ticket={"contact": {"id": "C-1"}}))
    assert subjects["status"] == "processed"


SUBJECTS = '''
def run(event, ticket, ctx):
    return {"custom": {"subjects": [t["subject"] for t in ctx.customer["recent"]][:2]}}
'''


def test_ctx_customer_subjects_are_cut_not_dropped(ws: Workspace) -> None:
    _script(ws, "subjects", SUBJECTS)
    ws.rule(name="subjects", triggers=["message.received"],
            actions=[{"type": "run_script", "script": "subjects"}])
    ws.send(event("big", tid="T-1", ticket={"subject": "é" * 5000, "contact": {"id": "C-1"}}))
    out = ws.send(event("m-1", "message.received", tid="T-1", ticket={"contact": {"id": "C-1"}}))
    (subject,) = out["ticket"]["custom"]["subjects"]
    assert subject.startswith("éé") and subject.endswith(" …[truncated]")
    assert len(subject.encode()) <= script_context.TEXT_BYTES


REPORT = '''
def run(event, ticket, ctx):
    bodies = [h["message"]["body"] for h in ctx.history if h.get("message")]
    c = ctx.customer or {}
    return {"custom": {"bodies": bodies, "recent": [t["subject"] for t in c.get("recent", [])],
                       "groups": c.get("groups"), "n": len(ctx.history)}}
'''

MUTATE = '''
def run(event, ticket, ctx):
    ctx.history.append({"message": {"body": "forged", "author": "agent"}})
    ctx.history[0]["message"] = {"body": "rewritten", "author": "agent"}
    ctx.customer["groups"].append("admins")
    ctx.customer["recent"].clear()
    return None
'''


def _two_script_rules(ws: Workspace) -> None:
    _script(ws, "mutate", MUTATE)
    _script(ws, "report", REPORT)
    ws.rule(name="both", triggers=["message.received"],
            actions=[{"type": "run_script", "script": "mutate"},
                     {"type": "run_script", "script": "report"}])


def test_no_workspace_sees_another_ones_history_or_customer(client: Any) -> None:
    """Same ticket id, same contact id in two workspaces: each script sees its own only."""
    a, b = Workspace(client, "a"), Workspace(client, "b")
    for w, word in ((a, "alpha"), (b, "bravo")):
        w.send(event(f"{word}-0", tid="T-1", ticket={"subject": f"{word} subject",
                                                     "contact": {"id": "C-1", "groups": [word]}}))
        w.send(event(f"{word}-1", "message.received", tid="T-1",
                     message={"author": "customer", "body": f"{word} says"}))
    _script(a, "report", REPORT)
    a.rule(name="report", triggers=["message.received"],
           actions=[{"type": "run_script", "script": "report"}])
    out = a.send(event("alpha-2", "message.received", tid="T-1",
                       message={"author": "customer", "body": "alpha again"}))
    custom = out["ticket"]["custom"]
    assert custom["bodies"] == ["alpha says"], custom
    assert custom["recent"] == ["alpha subject"] and custom["groups"] == ["alpha"], custom


def test_a_script_changing_its_ctx_changes_nothing_else(ws: Workspace) -> None:
    """ctx.history and ctx.customer are a run's own copies: the next script of the same pass,
    and the next event, see them as they were."""
    ws.send(event("e-0", tid="T-1", ticket={"subject": "s", "contact": {"id": "C-1", "groups": ["vip"]}}))
    ws.send(event("e-1", "message.received", tid="T-1", message={"author": "customer", "body": "first"}))
    _two_script_rules(ws)
    for eid in ("e-2", "e-3"):
        out = ws.send(event(eid, "message.received", tid="T-1",
                            message={"author": "customer", "body": eid}))
        custom = out["ticket"]["custom"]
        assert custom["groups"] == ["vip"] and custom["recent"] == ["s"], custom
        assert "forged" not in custom["bodies"] and "rewritten" not in custom["bodies"], custom
    assert custom["bodies"] == ["first", "e-2"], custom
    contact = ws.client.get("/v1/contacts/C-1", headers=ws.h("viewer")).json()
    assert contact["groups"] == ["vip"]
