"""Which passes the worker runs on its event loop and which it hands to a pass thread
(server/apply.py `_process`, rules.regexes.on_loop): a pass whose only slow conditions are
regexes is tried on the loop and moves to a thread, from its start, once its regexes would take
longer there than the allowance; its rule set's next OFF_LOOP_SKIP passes then go straight to a
thread. The answers are the same either way."""

from __future__ import annotations

from typing import Any

import pytest
from server_helpers import Workspace, event
from starlette.testclient import TestClient

from server.apply import OFF_LOOP_SKIP
from server.passthreads import PassThreads


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The workspaces of the passes handed to a pass thread, in order."""
    calls: list[str] = []
    real = PassThreads.run

    async def run(self: PassThreads, fn: Any, workspace: str, **kw: Any) -> Any:
        calls.append(workspace)
        return await real(self, fn, workspace, **kw)

    monkeypatch.setattr(PassThreads, "run", run)
    return calls


def _message(ws: Workspace, eid: str, body: str) -> list[str]:
    ws.send(event(eid, "message.received", tid=f"T-{eid}",
                  message={"author": "customer", "body": body}))
    r = ws.client.get(f"/v1/tickets/T-{eid}", headers=ws.h("viewer"))
    assert r.status_code == 200, r.text
    return list(r.json()["tags"])


def test_regex_passes_run_on_the_loop_until_one_needs_more(client: TestClient,
                                                           threaded: list[str]) -> None:
    ws = Workspace(client)
    ws.rule(name="refund", triggers=["message.received"],
            conditions={"field": "message.body", "op": "matches", "value": "refund(s|ed)?"},
            actions=[{"type": "add_tags", "tags": ["refund"]}])
    for i in range(3):
        assert _message(ws, f"s{i}", "my refund please") == ["refund"]
        assert _message(ws, f"n{i}", "hello") == []
    assert threaded == []          # short texts: on the loop
    # past the length where re's worst case is bounded the regex package matches, compiled in a
    # thread: this pass moves, from its start, and is answered there
    assert _message(ws, "long", "hello " * 5_000 + "refunded") == ["refund"]
    assert threaded == [ws.id]
    for i in range(OFF_LOOP_SKIP):   # its rule set's next passes: straight to a thread
        assert _message(ws, f"k{i}", "refunds") == ["refund"]
    assert threaded == [ws.id] * (OFF_LOOP_SKIP + 1)
    # then the loop again, a long text included: its search is compiled now, and stopped on the
    # loop at the allowance (this one finishes well within it)
    assert _message(ws, "again", "refunds") == ["refund"]
    assert _message(ws, "long2", "hello " * 5_000 + "refunds") == ["refund"]
    assert threaded == [ws.id] * (OFF_LOOP_SKIP + 1)


def test_a_slow_regex_moves_and_is_cut_short_in_its_thread(client: TestClient,
                                                           threaded: list[str]) -> None:
    """A shape with no polynomial bound moves on any text; in the thread it is cut short as
    before (the run says so), and the other rule of the pass still holds."""
    ws = Workspace(client)
    ws.rule(name="evil", triggers=["message.received"],
            conditions={"field": "message.body", "op": "matches", "value": "(a|aa)+$"},
            actions=[{"type": "add_tags", "tags": ["evil"]}])
    ws.rule(name="hello", triggers=["message.received"],
            conditions={"field": "message.body", "op": "matches", "value": "^a"},
            actions=[{"type": "add_tags", "tags": ["a"]}])
    assert _message(ws, "e1", "a" * 5_000 + "!") == ["a"]
    assert threaded == [ws.id]


def test_business_time_passes_never_try_the_loop(client: TestClient, threaded: list[str]) -> None:
    ws = Workspace(client)
    ws.rule(name="old", triggers=["message.received"],
            conditions={"all": [{"field": "message.body", "op": "matches", "value": "x"},
                                {"field": "created_at", "op": "older_than_business",
                                 "value": "1h", "calendar": {"timezone": "UTC", "week": {
                                     "mon": [["09:00", "17:00"]]}}}]},
            actions=[{"type": "add_tags", "tags": ["old"]}])
    for i in range(3):
        _message(ws, f"b{i}", "x")
    assert threaded == [ws.id] * 3
