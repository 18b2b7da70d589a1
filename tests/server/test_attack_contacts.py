"""Hostile tenant vs GET /v1/contacts: the first listing of a workspace backfills the per-group
indexes from every contact it holds (server/store/directory.py `_backfill`), inside the request,
on the shared event loop. A workspace with many contacts stored before the index makes that
first call walk all of them: measured on this 2-core machine, 5,000 contacts in 23 groups took
14 s and held another workspace's GET /v1/rules for up to 3.2 s; 20,000 listed by two
concurrent first calls (each runs the whole backfill) took 145 s, the victim's worst 7 s;
200,000 did not answer within 300 s. Now (server/store/directory.py's index build) a request
does at most 8 bounded steps and a background task does the rest, paced, under a lease.
"""
from __future__ import annotations

import threading
import time

import httpx
import orjson
import pytest
import redis
from attack_helpers import h, p90, serve, slowdown, stalled, workspace

from server.store import keys as K

CONTACTS = 5_000       # in 23 groups each: enough to stall the victim for seconds


def _old_contacts(redis_url: str, ws: str, n: int) -> None:
    """n contacts as stored before the group index existed: the record and keys.contacts only."""
    r = redis.Redis.from_url(redis_url)
    groups = ["vip", "trial", "reseller"] + [f"g{i}" for i in range(20)]
    with r.pipeline(transaction=False) as p:
        for i in range(n):
            cid = f"C-{i}"
            p.set(K.contact(ws, cid), orjson.dumps({"id": cid, "email": f"c{i}@example.com",
                                                    "groups": groups, "custom": {"n": i}}))
            p.sadd(K.contacts(ws), cid)
            if i % 5000 == 4999:
                p.execute()
        p.delete(K.index_build(ws))   # a workspace an older version left: its indexes unbuilt
        p.execute()
    r.close()


@pytest.mark.redis
@pytest.mark.timeout(600)
def test_first_group_listing_of_a_big_workspace_does_not_stall_another(redis_url: str) -> None:
    with serve(redis_url) as url, httpx.Client(base_url=url, timeout=300) as c:
        a, b = workspace(c, "attacker"), workspace(c, "victim")
        _old_contacts(redis_url, a["id"], CONTACTS)
        answers: list[httpx.Response] = []

        def first_listing(stop: threading.Event) -> None:
            with httpx.Client(base_url=url, timeout=300) as ac:
                answers.append(ac.get("/v1/contacts?group=vip&limit=10", headers=h(a["viewer"])))

        quiet, loud = slowdown(url, b["viewer"], first_listing)   # two concurrent first calls
        # each first call does a bounded part of the build itself, then answers 503 index_building
        # (Retry-After) while a background task finishes it; never the whole walk in a request
        for r in answers:
            assert r.status_code == 200 or (
                r.status_code == 503 and r.json()["error"]["code"] == "index_building"
                and r.headers.get("retry-after")), r.text[:200]
        assert not quiet.errors and not loud.errors, (quiet.errors + loud.errors)[:3]
        assert not stalled(quiet, loud), (
            f"victim's GET /v1/rules p90 {p90(quiet.latencies):.3f} s alone, "
            f"{p90(loud.latencies):.3f} s (worst {loud.worst:.3f} s) while the attacker's first "
            f"group listings ran")

        deadline = time.monotonic() + 120   # the build finishes in the background
        while True:
            done = c.get("/v1/contacts?group=vip&limit=10", headers=h(a["viewer"]))
            if done.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(float(done.headers.get("retry-after", "1")))
        assert done.status_code == 200, done.text[:200]
        assert len(done.json()["items"]) == 10 and done.json()["next"]
