"""Side effects exactly once (issue 14): scripts and HTTP requests run outside the store's
optimistic transaction, and a pass re-run after a conflict replays them instead of repeating."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from counting_server import CountingServer
from server_helpers import Workspace

from rules import compile_rules
from server.automation import Snapshot, process
from server.replay import Recorder

SCRIPT = """
def run(event, ticket, ctx):
    ctx.http.post(BASE + "/script", json={"event": event.get("id")})
    return {"add_tags": ["posted"]}
"""


def _setup(ws: Workspace, srv: CountingServer) -> str:
    c = ws.client
    assert c.put("/v1/allowlist", json={"hosts": [srv.url]}, headers=ws.h("admin")).status_code == 200
    source = SCRIPT.replace("BASE", repr(srv.url))
    assert c.post("/v1/scripts", json={"name": "poster", "source": source},
                  headers=ws.h("developer")).status_code == 201
    ws.rule(name="call out", triggers=["ticket.created", "ticket.updated"],
            actions=[{"type": "run_script", "script": "poster"},
                     {"type": "http_request", "method": "POST", "url": srv.url + "/http",
                      "body": {"from": "rule"}}])
    return str(ws.rule(name="unrelated", triggers=["message.sent"],
                       actions=[{"type": "add_tags", "tags": ["x"]}])["id"])


def _churn(ws: Workspace, rule_id: str, stop: threading.Event, counts: Counter[str]) -> None:
    """Change contact groups and an unrelated rule's name as fast as the API answers."""
    i = 0
    while not stop.is_set():
        i += 1
        r = ws.client.put(f"/v1/contacts/C-{i % 3}/groups", json={"groups": [f"g{i % 5}"]},
                          headers=ws.h("manager"))
        counts[f"groups {r.status_code}"] += 1
        r = ws.client.patch(f"/v1/rules/{rule_id}", json={"name": f"unrelated {i}"},
                            headers=ws.h("manager"))
        counts[f"rule {r.status_code}"] += 1


def test_scripts_and_requests_run_once_per_event_while_contacts_and_rules_change(
        ws: Workspace) -> None:
    tickets, per_ticket = 12, 4
    with CountingServer() as srv:
        rule_id = _setup(ws, srv)
        stop, counts = threading.Event(), Counter[str]()
        churn = threading.Thread(target=_churn, args=(ws, rule_id, stop, counts), daemon=True)
        churn.start()
        try:
            ids = []
            started = time.monotonic()
            for i in range(per_ticket):
                batch = [{"id": f"e-{t}-{i}", "type": "ticket.updated" if i else "ticket.created",
                          "occurred_at": "2026-11-23T08:00:00Z",
                          "ticket": {"id": f"T-{t}", "custom": {"seq": i},
                                     "contact": {"id": f"C-{t % 3}", "email": f"c{t % 3}@example.com"}}}
                         for t in range(tickets)]
                ids += [e["id"] for e in batch]
                r = ws.client.post("/v1/events", json={"events": batch}, headers=ws.h("ingest"))
                assert r.status_code == 202, r.text
            deadline = started + 120
            while len(srv.hits("/script")) < len(ids) or len(srv.hits("/http")) < len(ids):
                assert time.monotonic() < deadline, (len(srv.hits("/script")), len(srv.hits("/http")))
                time.sleep(0.05)
            for t in range(tickets):   # every event applied exactly once, in order
                while True:
                    ticket = ws.client.get(f"/v1/tickets/T-{t}", headers=ws.h("viewer")).json()
                    if ticket.get("version") == per_ticket or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                assert ticket["version"] == per_ticket and ticket["custom"]["seq"] == per_ticket - 1
                assert "posted" in ticket["tags"]
                runs = ws.client.get(f"/v1/tickets/T-{t}/runs?limit=50", headers=ws.h("viewer")).json()
                assert [r["event_id"] for r in reversed(runs["items"])] == [
                    f"e-{t}-{i}" for i in range(per_ticket)]
            time.sleep(0.5)  # a late duplicate would show up here
        finally:
            stop.set()
            churn.join(10)
        assert counts["groups 200"] > 10 and counts["rule 200"] > 10, counts
        script_events = Counter(orjson.loads(b)["event"] for b in srv.hits("/script"))
        assert script_events == Counter(ids), "a script's POST arrived more (or less) than once"
        assert len(srv.hits("/http")) == len(ids), "an http_request was sent more than once"


# -- the pure pass, no store ------------------------------------------------------------------

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
EVENT = {"id": "e1", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
         "ticket": {"id": "T-1", "subject": "Refund", "custom": {"a": 1},
                    "contact": {"id": "C-1", "email": "ann@example.com"}}}
RULES = compile_rules([
    {"id": "ask", "name": "ask", "triggers": ["ticket.created"],
     "actions": [{"type": "http_request", "url": "http://crm.test/x", "map": {"tier": "$.tier"}},
                 {"type": "run_script", "script": "s"}]},
    {"id": "vip", "name": "vip", "triggers": ["ticket.created"],
     "conditions": {"field": "vars.tier", "op": "is", "value": "gold"},
     "actions": [{"type": "add_tags", "tags": ["gold"]}]},
])


def _snapshot(groups: list[str]) -> Snapshot:
    return Snapshot(marker=None, previous=None, contact={"id": "C-1", "groups": groups, "custom": {}},
                    contact_id="C-1", rules_rev=3)


def test_process_is_the_whole_pass_and_a_rerun_replays_the_calls() -> None:
    calls: list[str] = []

    def http_request(action: dict[str, Any], ticket: Any, event: Any, vars: Any) -> dict[str, Any]:
        calls.append("http")
        return {"tier": "gold"}

    def run_script(action: dict[str, Any], event: Any, ticket: dict[str, Any]) -> dict[str, Any]:
        calls.append("script")
        return {"custom": {"groups_seen": ticket["contact"]["groups"]}}

    rec = Recorder({"http_request": http_request, "run_script": run_script})
    first = process(_snapshot(["a"]), EVENT, RULES, [], None, NOW, rec.start_pass(), run_id="run_1",
                    revisions={"ask": 2, "vip": 1})
    assert calls == ["http", "script"]
    assert first.ticket["version"] == 1 and "gold" in first.ticket["tags"]
    assert first.ticket["contact"]["groups"] == ["a"]
    assert first.record["id"] == "run_1" and first.record["rules_rev"] == 3
    assert first.record["matched"] == ["ask", "vip"]
    assert first.record["rule_revisions"] == {"ask": 2, "vip": 1}
    assert first.record["ticket"] == first.ticket and first.to_feed
    assert first.changes["tags"] == {"added": ["gold"], "removed": []}
    assert first.timers_old == {} and first.timers_new == {}
    # the contact changed meanwhile: the pass runs again on the new snapshot, calls replayed
    again = process(_snapshot(["b"]), EVENT, RULES, [], None, NOW, rec.start_pass(), run_id="run_1")
    assert calls == ["http", "script"], "a re-run must not call out again"
    assert again.ticket["contact"]["groups"] == ["b"]
    assert again.ticket["custom"]["groups_seen"] == ["a"]  # what the script returned, replayed
    assert "gold" in again.ticket["tags"]


def test_a_rerun_that_takes_another_branch_makes_only_the_new_call() -> None:
    seen: list[str] = []

    def http_request(action: dict[str, Any], *args: Any) -> dict[str, Any]:
        seen.append(action["url"])
        return {}

    rec = Recorder({"http_request": http_request})
    rules = compile_rules([
        {"id": "a", "name": "a", "triggers": ["ticket.created"],
         "actions": [{"type": "http_request", "url": "http://crm.test/always"}]},
        {"id": "b", "name": "b", "triggers": ["ticket.created"],
         "conditions": {"field": "contact.groups", "op": "includes", "value": "vip"},
         "actions": [{"type": "http_request", "url": "http://crm.test/vip"}]}])
    process(_snapshot([]), EVENT, rules, [], None, NOW, rec.start_pass())
    process(_snapshot(["vip"]), EVENT, rules, [], None, NOW, rec.start_pass())
    process(_snapshot(["vip"]), EVENT, rules, [], None, NOW, rec.start_pass())
    assert seen == ["http://crm.test/always", "http://crm.test/vip"]


def test_a_recorded_failure_is_replayed_as_a_failure() -> None:
    n = []

    def http_request(action: dict[str, Any], *args: Any) -> dict[str, Any]:
        n.append(1)
        raise RuntimeError("refused: not on the allow-list")

    rec = Recorder({"http_request": http_request})
    rules = compile_rules([{"id": "a", "name": "a", "triggers": ["ticket.created"],
                            "actions": [{"type": "http_request", "url": "http://crm.test/x"}]}])
    one = process(_snapshot([]), EVENT, rules, [], None, NOW, rec.start_pass())
    two = process(_snapshot(["x"]), EVENT, rules, [], None, NOW, rec.start_pass())
    assert len(n) == 1
    assert one.record["rules"][0]["errors"] == two.record["rules"][0]["errors"]
    assert "refused" in two.record["rules"][0]["errors"][0]


@pytest.mark.parametrize("n", [1])
def test_process_touches_nothing_it_is_given(n: int) -> None:
    snap = _snapshot(["a"])
    before = orjson.dumps([snap.contact, EVENT])
    process(snap, EVENT, RULES, [], None, NOW, {"http_request": lambda *a: {}, "run_script": lambda *a: None})
    assert orjson.dumps([snap.contact, EVENT]) == before


# -- the entry id kept through a conflict -----------------------------------------------------


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_conflict_keeps_the_stream_entry_in_the_marker(redis_url: str) -> None:
    """A timer's event carries no ingest token, so only the marker's entry id tells its own
    redelivery from a copy. A conflict during its pass (here the contact changes while the
    rule's http_request runs) must not leave anything else there -- it used to leave the last
    rule's explain entry, and a redelivered timer event then did not restore its timers."""
    import redis as sync_redis

    from server.settings import Settings
    from server.store import catalog, events
    from server.store import keys as K
    from server.store.connect import close_store, open_store
    from server.worker import Worker

    settings = Settings(redis_url=redis_url, data_file=None, partitions=1, block_ms=50)
    store = await open_store(settings)
    sync = sync_redis.Redis.from_url(redis_url)
    try:
        ws, _ = await catalog.create_workspace(store, "w")
        w = ws["id"]
        await catalog.put_rule(store, w, {"id": "r1", "name": "call", "enabled": True, "position": 1,
                                          "triggers": ["ticket.created"],
                                          "actions": [{"type": "http_request", "url": "http://x.test/"}]})
        calls: list[int] = []

        def http_request(*args: Any) -> dict[str, Any]:
            calls.append(1)
            if len(calls) == 1:  # someone sets the contact's groups mid-pass
                sync.set(K.contact(w, "C-1"), orjson.dumps({"id": "C-1", "groups": ["vip"]}))
            return {}

        await events.ensure_groups(store)
        event = {"id": "e1", "type": "ticket.created", "occurred_at": "2026-11-23T08:00:00Z",
                 "ticket": {"id": "T-1", "contact": {"id": "C-1"}}}
        fields = {"w": w, "e": orjson.dumps(event).decode()}   # no "k": as timers write it
        entry_id = await store.redis.xadd(K.stream(0), fields)
        worker = Worker(store=store, burst=True, handlers={"http_request": http_request})
        worker.owned.add(0)   # as the partition loop would, holding its lease
        assert await events.acquire_lease(store, 0, worker.name)
        applied = await worker.handle(0, entry_id, fields)
        assert applied is not None and not applied.skipped
        marker = orjson.loads(await store.redis.get(K.event_marker(w, "e1")))
        assert marker["entry"] == entry_id and events.owns(marker, entry_id, fields)
        assert calls == [1], "the http_request ran again after the conflict"
        ticket = orjson.loads(await store.redis.get(K.ticket(w, "T-1")))
        assert ticket["contact"]["groups"] == ["vip"]   # applied on the fresh snapshot
        again = await worker.handle(0, entry_id, fields)   # its redelivery: known as its own copy
        assert again is not None and again.skipped and again.marker == marker
    finally:
        sync.close()
        await close_store(store)


def test_the_pass_copies_the_loaded_ticket_from_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The merge changes a copy of the ticket before the event: parsed again from the bytes it was
    loaded from, not deep-copied (17 us an event). The outcome is the deep copy's, and the
    snapshot's own `previous` is left as loaded."""
    import copy

    from server import automation

    first = process(_snapshot(["a"]), EVENT, RULES, [], None, NOW, {
        "http_request": lambda *a: {"tier": "gold"}, "run_script": lambda *a: {}})
    raw = orjson.dumps(first.ticket)
    later = {**EVENT, "id": "e2", "type": "ticket.updated",
             "ticket": {"id": "T-1", "tags": ["x"], "custom": {"b": 2}}}

    def snap(with_raw: bool) -> Snapshot:
        return Snapshot(marker=None, previous=orjson.loads(raw), contact=None, contact_id="C-1",
                        rules_rev=3, raw_ticket=raw if with_raw else None)

    copied = process(snap(False), later, RULES, [], None, NOW)
    deep = copy.deepcopy
    copies: list[Any] = []
    monkeypatch.setattr(automation.copy, "deepcopy", lambda x, *a: copies.append(x) or deep(x, *a))
    loaded = snap(True)
    parsed = process(loaded, later, RULES, [], None, NOW)
    assert parsed.ticket == copied.ticket and parsed.record == copied.record
    assert parsed.ticket["tags"] == ["x"] and parsed.ticket["custom"] == {"a": 1, "b": 2}
    assert loaded.previous == orjson.loads(raw)
    assert not [c for c in copies if c == loaded.previous]
