"""Issue 7 parts 1-2: API and worker processes on one Redis, under load and under faults.

Real `deskflow api` / `deskflow worker` subprocesses on a private Redis (tests/server/
cluster_harness.py). Every check reads the tickets' final state and run records: each event
acknowledged with 200/202 is applied exactly once (ticket version), in the order it was sent
(run records), with the last one's data on the ticket.

CI runs each scenario at a size that fits its time budget; the `slow` ones are issue 7's full
size (2 API + 3 workers, 20,000 events over 500 tickets):

    DESKFLOW_FULL_TESTS=1 ./dev test tests/server/test_scale_out.py
"""
from __future__ import annotations

import asyncio
import random
import threading
import time

import httpx
import pytest
from cluster_harness import Load, RedisServer, Service, check_applied

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]

RULE = {"name": "stamp", "triggers": ["ticket.created", "ticket.updated"], "enabled": True,
        "conditions": {"all": [{"field": "custom.seq", "op": "gte", "value": 0}]},
        "actions": [{"type": "add_tags", "tags": ["automated"]}]}


def _setup(svc: Service) -> str:
    _, key = svc.workspace()
    r = httpx.post(svc.api_urls[0] + "/v1/rules", json=RULE,
                   headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 201, r.text
    return key


def _scale_out(tickets: int, per_ticket: int) -> None:
    with RedisServer() as redis, Service(redis.url, apis=2, workers=3) as svc:
        key = _setup(svc)
        load = Load(svc.api_urls, key, tickets=tickets, per_ticket=per_ticket)
        asyncio.run(load.run())
        assert sum(map(len, load.acked.values())) == tickets * per_ticket
        try:
            check_applied(svc.api_urls[1], key, load.acked)
        except AssertionError:
            print(svc.logs())
            raise
        ticket = httpx.get(svc.api_urls[0] + "/v1/tickets/T-0",
                           headers={"Authorization": f"Bearer {key}"}).json()
        assert "automated" in ticket["tags"]            # the rules ran in the worker processes


def test_two_apis_three_workers() -> None:
    _scale_out(tickets=100, per_ticket=15)


@pytest.mark.slow
def test_two_apis_three_workers_full_size() -> None:
    _scale_out(tickets=500, per_ticket=40)


def _chaos_kill_workers(svc: Service, stop: threading.Event, kills: list[int], every: float) -> None:
    """kill -9 a random live worker every `every` seconds and start a replacement."""
    rng = random.Random(7)
    while not stop.wait(every * (0.5 + rng.random())):
        live = svc.live_workers()
        if len(live) > 1:
            victim = rng.choice(live)
            svc.kill_worker(victim)
            kills.append(victim)
            svc.start_worker()


def _with_killed_workers(tickets: int, per_ticket: int) -> None:
    with RedisServer() as redis, Service(redis.url, apis=2, workers=3) as svc:
        key = _setup(svc)
        load = Load(svc.api_urls, key, tickets=tickets, per_ticket=per_ticket)
        stop, kills = threading.Event(), []
        chaos = threading.Thread(target=_chaos_kill_workers, args=(svc, stop, kills, 1.5))
        chaos.start()
        try:
            asyncio.run(load.run())
            time.sleep(1.0)                            # a kill or two after the last event too
        finally:
            stop.set()
            chaos.join()
        assert kills, "no worker was killed"
        try:
            check_applied(svc.api_urls[0], key, load.acked)
        except AssertionError:
            print(svc.logs())
            raise


def test_workers_killed_at_random_points() -> None:
    _with_killed_workers(tickets=60, per_ticket=20)


@pytest.mark.slow
def test_workers_killed_at_random_points_full_size() -> None:
    _with_killed_workers(tickets=500, per_ticket=40)


def test_redis_restarted_mid_load() -> None:
    """While Redis is down the API answers 503 with Retry-After (the load generator retries with
    the same event ids); every event acknowledged before, during and after is applied once."""
    with RedisServer() as redis, Service(redis.url, apis=2, workers=3) as svc:
        key = _setup(svc)
        load = Load(svc.api_urls, key, tickets=60, per_ticket=20)
        total = 60 * 20
        outage: dict[str, float] = {}

        def bounce() -> None:
            while load.progress < total * 0.3:
                time.sleep(0.02)
            acked_before = load.progress
            redis.kill()
            outage["down_at_progress"] = acked_before
            time.sleep(2.0)
            # direct probe while down: the API's own answer, not the load generator's view
            r = httpx.post(svc.api_urls[0] + "/v1/events", json=load.event(9999, 0),
                           headers={"Authorization": f"Bearer {key}"}, timeout=10)
            outage["probe_status"] = r.status_code
            outage["probe_retry_after"] = float(r.headers.get("Retry-After") or -1)
            outage["probe_body"] = r.json()["error"]["code"]
            redis.start()

        t = threading.Thread(target=bounce)
        t.start()
        try:
            asyncio.run(load.run())
        finally:
            t.join()
        assert outage["probe_status"] == 503 and outage["probe_retry_after"] > 0
        assert outage["probe_body"] == "store_unavailable"
        assert any(status == 503 and after for status, after in load.unavailable)
        try:
            check_applied(svc.api_urls[1], key, load.acked)
        except AssertionError:
            print(svc.logs())
            raise
