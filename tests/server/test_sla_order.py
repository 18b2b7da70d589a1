"""Issue 12 item 6: SLA policies have an order you can set (PUT /v1/sla-policies/order, `position`
on create and PUT), and an export imported back is a no-op whatever came before."""

from __future__ import annotations

import random
from typing import Any

import pytest


def _policy(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "targets": {"resolution": "8h"}, **extra}


def _names(ws: Any) -> list[str]:
    items = ws.client.get("/v1/sla-policies", headers=ws.h("viewer")).json()["items"]
    assert [p["position"] for p in items] == list(range(1, len(items) + 1))  # dense: position = place
    return [p["name"] for p in items]


def _post(ws: Any, body: dict[str, Any]) -> Any:
    return ws.client.post("/v1/sla-policies", json=body, headers=ws.h("manager"))


def _plan_is_empty(ws: Any) -> None:
    doc = ws.client.get("/v1/export", headers=ws.h("manager")).json()
    r = ws.client.post("/v1/import?dry_run=true", json=doc, headers=ws.h("manager"))
    assert r.status_code == 200, r.text
    changed = [i for i in r.json()["items"] if i["action"] != "unchanged"]
    assert changed == [], changed


def test_order_route_sets_the_order_the_worker_tries(ws: Any) -> None:
    for name in ("a", "b", "c"):
        assert _post(ws, _policy(name)).status_code == 201
    r = ws.client.put("/v1/sla-policies/order", json={"names": ["c", "a", "b"]}, headers=ws.h("manager"))
    assert r.status_code == 200, r.text
    assert [p["name"] for p in r.json()["items"]] == ["c", "a", "b"]
    assert _names(ws) == ["c", "a", "b"]
    revs = ws.client.get("/v1/sla-policies/c/revisions", headers=ws.h()).json()["items"]
    assert revs[0]["action"] == "reorder" and revs[0]["policy"]["position"] == 1
    # the first matching policy in that order is the one a new ticket gets
    ws.client.put("/v1/sla-policies/order", json={"names": ["b", "c", "a"]}, headers=ws.h("manager"))
    out = ws.send({"id": "e1", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
                   "ticket": {"id": "T-1"}})
    assert out["ticket"]["sla"]["policy"] == "b"


@pytest.mark.parametrize("names, paths", [
    (["a", "b"], ["names"]),                          # leaves c out
    (["a", "b", "c", "a"], ["names[3]"]),             # twice
    (["a", "b", "c", "zz"], ["names[3]"]),            # unknown
    (["a", "a", "zz"], ["names[1]", "names[2]", "names", "names"]),  # all of it at once
    ("a,b,c", ["names"]),
])
def test_order_names_every_policy_exactly_once(ws: Any, names: Any, paths: list[str]) -> None:
    for name in ("a", "b", "c"):
        _post(ws, _policy(name))
    r = ws.client.put("/v1/sla-policies/order", json={"names": names}, headers=ws.h("manager"))
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == paths
    assert _names(ws) == ["a", "b", "c"]


def test_position_is_honoured_on_create_and_put(ws: Any) -> None:
    for name in ("a", "b"):
        _post(ws, _policy(name))
    r = _post(ws, _policy("first", position=1))
    assert r.status_code == 201 and r.json()["position"] == 1
    assert _names(ws) == ["first", "a", "b"]
    r = ws.client.put("/v1/sla-policies/first", json=_policy("first", position=3), headers=ws.h("manager"))
    assert r.status_code == 200 and r.json()["position"] == 3
    assert _names(ws) == ["a", "b", "first"]
    for bad in (0, 5, "1", True, 1.5):
        r = ws.client.put("/v1/sla-policies/a", json=_policy("a", position=bad), headers=ws.h("manager"))
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["details"][-1]["path"] == "position"
    assert _post(ws, _policy("late", position=9)).status_code == 422
    assert _post(ws, _policy("order")).status_code == 422  # the name of the order route
    assert _names(ws) == ["a", "b", "first"]


def test_export_then_plan_is_empty_right_after_a_delete(ws: Any) -> None:
    for name in ("a", "b", "c"):
        _post(ws, _policy(name))
    ws.client.delete("/v1/sla-policies/a", headers=ws.h("manager"))
    assert _names(ws) == ["b", "c"]
    _plan_is_empty(ws)


@pytest.mark.parametrize("seed", [12, 7, 2026])
def test_random_creates_deletes_and_reorders_then_export_plan_is_empty(ws: Any, seed: int) -> None:
    """Property-style: any sequence of creates (at the end or at a position), PUTs with a
    position, deletes, reorders and rule deletes leaves export -> plan empty and the positions
    1..n in the order GET lists."""
    rng = random.Random(seed)
    h = ws.h("manager")
    rules: list[str] = []
    model: list[str] = []
    for step in range(40):
        op = rng.choice(["create", "create_at", "delete", "order", "move", "rule", "unrule", "rule_order"])
        if op in ("create", "create_at") or not model:
            name = f"p{step}"
            pos = rng.randint(1, len(model) + 1) if op == "create_at" else None
            body = _policy(name, **({"position": pos} if pos else {}))
            assert _post(ws, body).status_code == 201
            model.insert((pos or len(model) + 1) - 1, name)
        elif op == "delete":
            name = rng.choice(model)
            assert ws.client.delete(f"/v1/sla-policies/{name}", headers=h).status_code == 204
            model.remove(name)
        elif op == "order":
            rng.shuffle(model)
            assert ws.client.put("/v1/sla-policies/order", json={"names": model}, headers=h).status_code == 200
        elif op == "move":
            name, pos = rng.choice(model), rng.randint(1, len(model))
            r = ws.client.put(f"/v1/sla-policies/{name}", json=_policy(name, position=pos), headers=h)
            assert r.status_code == 200, r.text
            model.remove(name)
            model.insert(pos - 1, name)
        elif op == "rule":
            rules.append(ws.rule(name=f"r{step}", triggers=["ticket.created"],
                                 actions=[{"type": "add_tags", "tags": ["x"]}])["id"])
        elif op == "rule_order":
            rng.shuffle(rules)
            assert ws.client.put("/v1/rules/order", json={"ids": rules[:2]}, headers=h).status_code == 200
        elif rules:
            ws.client.delete(f"/v1/rules/{rules.pop(rng.randrange(len(rules)))}", headers=h)
        assert _names(ws) == model, (step, op)
        if step % 5 == 4:
            _plan_is_empty(ws)
    _plan_is_empty(ws)
