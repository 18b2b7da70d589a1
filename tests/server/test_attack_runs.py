"""Hostile tenant vs GET /v1/runs (and a ticket's runs): run records are up to 256 KiB each
(the explain of 1,000 rules is never trimmed) and the workspace list holds 2,000 of them. A
filter nothing matches (`?outcome=suppressed`) used to read and parse the whole list on the
shared event loop in one request: measured here, 2,000 records of 110 KB took 21 s and held
another workspace's GET /v1/rules for 1.7 s (its median went from ~5 ms to 190 ms); a page of
500 unfiltered runs was up to 128 MiB. A page now reads about runs.PAGE_BYTES of records (and
one MGET of at most SCAN_CHUNK) and hands back `next` to go on.
"""
from __future__ import annotations

import base64
import threading
import time
from typing import Any

import httpx
import orjson
import pytest
import redis
from attack_helpers import h, p90, serve, slowdown, stalled, workspace
from server_helpers import ROOT_TOKEN, Workspace, event
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from server.store import keys as K
from server.store import runs

FAT_RUNS = 1_000
RULES_PER_RUN = 500          # ~110 KB of explain per record
ATTEMPTS = 3                 # the comparison, on a shared 2-core machine; one clean one is enough
PAGES = ("/v1/runs?outcome=suppressed&limit=500", "/v1/runs?limit=500",
         "/v1/tickets/T-1/runs?limit=500")


def _fat_record(i: int) -> bytes:
    rules = [{"id": f"rule_{j}", "name": f"r{j}", "matched": False,
              "failed": {"path": "conditions", "field": "ticket.subject", "op": "contains",
                         "value": "x" * 40, "seen": "y" * 40}} for j in range(RULES_PER_RUN)]
    return orjson.dumps({"id": f"run_{i}", "event_id": f"e{i}", "ticket_id": "T-1",
                         "rules": rules, "matched": []})


def _store_fat_runs(redis_url: str, ws: str, n: int) -> None:
    """n run records as the commit writes them (record + the workspace's and ticket's lists)."""
    r = redis.Redis.from_url(redis_url)
    with r.pipeline(transaction=False) as p:
        for i in range(n):
            p.set(K.run(ws, f"run_{i}"), _fat_record(i))
            p.rpush(K.workspace_runs(ws), f"run_{i}")
            if i < 200:
                p.rpush(K.ticket_runs(ws, "T-1"), f"run_{i}")
            if i % 100 == 99:
                p.execute()
        p.execute()
    r.close()


@pytest.mark.redis
@pytest.mark.timeout(600)
def test_a_rare_filter_over_fat_runs_does_not_stall_another_workspace(redis_url: str) -> None:
    with serve(redis_url) as url, httpx.Client(base_url=url, timeout=300) as c:
        a, b = workspace(c, "attacker"), workspace(c, "victim")
        r = c.post("/v1/events?wait=true", headers=h(a["ingest"]),
                   json={"id": "e-1", "type": "ticket.created", "ticket": {"id": "T-1"}})
        assert r.status_code == 200, r.text
        _store_fat_runs(redis_url, a["id"], FAT_RUNS)
        pages: list[tuple[int, int, float]] = []

        def attack(stop: threading.Event) -> None:
            with httpx.Client(base_url=url, timeout=300) as ac:
                while not stop.is_set():
                    for path in PAGES:
                        t0 = time.perf_counter()
                        r = ac.get(path, headers=h(a["viewer"]))
                        pages.append((r.status_code, len(r.content), time.perf_counter() - t0))
                        stop.wait(0.1)

        for _ in range(ATTEMPTS):
            quiet, loud = slowdown(url, b["viewer"], attack)
            if not stalled(quiet, loud):
                break
        assert pages and all(code == 200 for code, _, _ in pages), pages[:5]
        assert not quiet.errors and not loud.errors, (quiet.errors + loud.errors)[:3]
        assert not stalled(quiet, loud), (
            f"victim's GET /v1/rules p90 {p90(quiet.latencies):.3f} s alone, "
            f"{p90(loud.latencies):.3f} s while the attacker listed fat runs (worst "
            f"{loud.worst:.3f} s; attacker's slowest page {max(t for _, _, t in pages):.1f} s)")


class _CountingJson:
    """Stands in for runs.orjson: counts the bytes of run records parsed."""

    def __init__(self) -> None:
        self.parsed = 0

    def loads(self, raw: bytes) -> Any:
        self.parsed += len(raw)
        return orjson.loads(raw)


@pytest.mark.redis
def test_one_page_parses_a_bounded_share_of_the_runs(redis_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(redis_url=redis_url, data_file=None, root_token=ROOT_TOKEN, partitions=2,
                        block_ms=100)
    with TestClient(create_app(settings, worker=True)) as client:
        ws = Workspace(client)
        ws.send(event("e-1", tid="T-1"))
        _store_fat_runs(redis_url, ws.id, 300)   # 33 MB of records
        counting = _CountingJson()
        monkeypatch.setattr(runs, "orjson", counting)
        for path in PAGES:
            counting.parsed = 0
            r = client.get(path, headers=ws.h("viewer"))
            assert r.status_code == 200, r.text
            assert r.json()["next"] is not None, path
            assert counting.parsed <= runs.PAGE_BYTES + runs.SCAN_CHUNK * len(_fat_record(0)), (
                path, counting.parsed)


def _walk(client: TestClient, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(200):
        sep = "&" if "?" in path else "?"
        r = client.get(path + (f"{sep}cursor={cursor}" if cursor else ""), headers=headers)
        assert r.status_code == 200, r.text
        out.extend(r.json()["items"])
        cursor = r.json()["next"]
        if cursor is None:
            return out
    raise AssertionError("the pages never ended")


def test_pages_cut_by_bytes_still_list_every_run_once(client: TestClient, ws: Workspace,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With a page's byte budget smaller than one record, every page still makes progress and
    walking `next` lists every run once, newest first, filtered or not."""
    ws.rule(name="tag", triggers=["ticket.created"], conditions={
        "field": "subject", "op": "contains", "value": "even"},
        actions=[{"type": "add_tags", "tags": ["e"]}])
    for i in range(12):
        ws.send(event(f"e-{i}", tid="T-1" if i < 6 else f"T-{i}",
                      etype="ticket.created" if i in (0,) or i >= 6 else "ticket.updated",
                      ticket={"subject": "even" if i % 2 == 0 else "odd"}))
    whole = _walk(client, "/v1/runs?limit=500", ws.h("viewer"))
    assert len(whole) == 12
    monkeypatch.setattr(runs, "PAGE_BYTES", 1)
    cut = _walk(client, "/v1/runs?limit=500", ws.h("viewer"))
    assert [r["id"] for r in cut] == [r["id"] for r in whole]
    fired = _walk(client, "/v1/runs?outcome=fired&limit=500", ws.h("viewer"))
    assert [r["id"] for r in fired] == [r["id"] for r in whole if r.get("matched")]
    assert fired and len(fired) < len(whole)
    ticket = _walk(client, "/v1/tickets/T-1/runs?limit=500", ws.h("viewer"))
    assert [r["id"] for r in ticket] == [r["id"] for r in whole if r["ticket_id"] == "T-1"]
    assert len(ticket) == 6
    # a cursor is only ever a position of the caller's own lists: a forged one reads nothing else
    far = base64.urlsafe_b64encode(b"999999").decode().rstrip("=")
    r = client.get(f"/v1/runs?cursor={far}", headers=ws.h("viewer"))
    assert r.status_code == 200 and r.json() == {"items": [], "next": None}
