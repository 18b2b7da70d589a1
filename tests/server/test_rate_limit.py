"""Per-key rate limit: 429 with Retry-After, per key, shared by every API process on one store."""

from __future__ import annotations

import dataclasses

import pytest
from server_helpers import FakeClock, Workspace
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from server.store.ratelimit import estimate


def test_over_the_limit_is_429_with_retry_after_and_other_keys_go_on(settings: Settings,
                                                                      fake_clock: FakeClock) -> None:
    limited = dataclasses.replace(settings, rate_limit_per_s=5)
    with TestClient(create_app(limited, clock=fake_clock)) as c:
        ws = Workspace(c)
        viewer, admin = ws.h("viewer"), ws.h("admin")
        codes = [c.get("/v1/rules", headers=viewer).status_code for _ in range(15)]
        assert codes == [200] * 5 + [429] * 10     # one frozen second: exactly the budget, then 429
        r = c.get("/v1/rules", headers=viewer)
        assert r.status_code == 429
        body = r.json()["error"]
        assert body["code"] == "rate_limited" and "DESKFLOW_RATE_LIMIT" in body["message"]
        assert body["details"] == {"limit_per_second": 5} and r.headers["Retry-After"] == "1"
        assert c.get("/v1/keys", headers=admin).status_code == 200     # another key: its own budget
        fake_clock.advance(0.9)                                          # same second: still over
        assert c.get("/v1/rules", headers=viewer).status_code == 429
        fake_clock.advance(1.2)                                          # both windows have passed
        assert c.get("/v1/rules", headers=viewer).status_code == 200


def test_unknown_keys_are_401_not_429(settings: Settings) -> None:
    with TestClient(create_app(dataclasses.replace(settings, rate_limit_per_s=2))) as c:
        codes = {c.get("/v1/rules", headers={"Authorization": "Bearer nope"}).status_code for _ in range(6)}
        assert codes == {401}


@pytest.mark.redis
def test_the_count_is_shared_by_api_processes(redis_url: str, fake_clock: FakeClock) -> None:
    s = Settings(redis_url=redis_url, data_file=None, root_token="test-root-token", rate_limit_per_s=6)
    with (TestClient(create_app(s, clock=fake_clock)) as a,
          TestClient(create_app(s, clock=fake_clock)) as b):
        ws = Workspace(a)
        h = ws.h("viewer")
        codes = [(a if i % 2 else b).get("/v1/rules", headers=h).status_code for i in range(12)]
        assert codes == [200] * 6 + [429] * 6   # one frozen second, not 6 per process: one budget


def test_sliding_estimate() -> None:
    assert estimate(cur=3, prev=10, elapsed=0.0) == 13
    assert estimate(cur=3, prev=10, elapsed=0.5) == 8
    assert estimate(cur=3, prev=10, elapsed=0.99) == pytest.approx(3.1)
