"""An applied entry is acked in its own commit (server/apply.py, store/tickets.commit `ack`) when
nothing is left to do after it: the XACK + XDEL go in the commit's script (or MULTI), not in a
round trip of their own after it, and a worker killed right after such a commit leaves nothing
pending. An entry whose pass sets a timer is acked after the timer writes, as before: a crash in
between leaves it pending and its redelivery sets the timers (tests/server/test_timer_faults.py).
On both stores, through the API, with the worker driven by hand (burst)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from server_helpers import Workspace
from starlette.testclient import TestClient
# the harness of the timer fault tests: an app without its own worker, a workspace, the store
from test_timer_faults import T0, Killed, api, desk  # noqa: F401 -- api, desk: fixtures
from test_timer_faults import store_of as _store

from server.store import events, tickets
from server.store import keys as K
from server.worker import Worker


def _send(desk: Workspace, eid: str, tid: str) -> None:
    body = {"id": eid, "type": "ticket.created", "occurred_at": "2026-11-23T09:00:00Z",
            "ticket": {"id": tid, "status": "open"}}
    assert desk.send(body, wait=False)["status"] == "queued"


def _drain(api: TestClient, name: str = "w1") -> int:
    async def go() -> int:
        return await Worker(store=_store(api), burst=True, clock=lambda: T0, name=name).run()
    return int(api.portal.call(go))


def _left(api: TestClient) -> tuple[int, int]:
    """(entries in every partition stream, entries pending in their consumer groups)."""
    async def go() -> tuple[int, int]:
        store = _store(api)
        length = pending = 0
        for n in range(store.settings.partitions):
            length += await store.redis.xlen(K.stream(n))
            try:
                pending += (await store.redis.xpending(K.stream(n), K.GROUP))["pending"]
            except Exception:  # noqa: BLE001 -- no group on a stream never written
                pass
        return length, pending
    return api.portal.call(go)  # type: ignore[no-any-return]


@pytest.fixture
def acks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every entry id the worker acks in a round trip of its own (events.queue_ack)."""
    sent: list[str] = []
    real = events.queue_ack

    def spy(p: Any, n: int, entry_ids: list[str]) -> None:
        sent.extend(entry_ids)
        real(p, n, entry_ids)

    monkeypatch.setattr(events, "queue_ack", spy)
    return sent


def test_an_entry_that_sets_no_timer_is_acked_by_its_commit(api: TestClient, desk: Workspace,
                                                            acks: list[str]) -> None:
    desk.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["seen"]}])
    for i in range(5):
        _send(desk, f"e{i}", f"T-{i}")
    assert _left(api)[0] == 5
    assert _drain(api) == 5
    assert _left(api) == (0, 0)          # acked and deleted ...
    assert acks == []                     # ... by the commits: no ack round trip for them
    for i in range(5):
        got = desk.client.get(f"/v1/tickets/T-{i}", headers=desk.h("viewer")).json()
        assert got["tags"] == ["seen"], got


def test_an_entry_that_sets_a_timer_is_acked_after_its_timer_writes(
        api: TestClient, desk: Workspace, acks: list[str]) -> None:
    until = (T0 + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    desk.rule(name="snooze", triggers=["ticket.created"], actions=[{"type": "snooze", "until": until}])
    _send(desk, "e1", "T-1")
    assert _drain(api) == 1
    assert len(acks) == 1                 # its own ack, once its timer was written
    assert _left(api) == (0, 0)


def test_a_worker_killed_after_a_commit_that_acked_leaves_nothing_pending(
        api: TestClient, desk: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    desk.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["seen"]}])
    _send(desk, "e1", "T-1")
    real = tickets.commit

    async def then_die(*args: Any, **kw: Any) -> Any:
        await real(*args, **kw)
        raise Killed()

    monkeypatch.setattr(tickets, "commit", then_die)

    async def doomed() -> bool:
        try:
            await Worker(store=_store(api), burst=True, clock=lambda: T0, name="doomed").run()
        except Killed:
            return True
        return False

    assert api.portal.call(doomed) is True
    monkeypatch.setattr(tickets, "commit", real)
    assert _left(api) == (0, 0)          # applied and acked at once: nothing for a successor
    assert _drain(api, "successor") == 0
    runs = desk.client.get("/v1/tickets/T-1/runs", headers=desk.h("viewer")).json()["items"]
    assert len(runs) == 1
