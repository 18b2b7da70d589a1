"""Per-key rate limit: 429 with Retry-After, per key, shared by every API process on one store."""

from __future__ import annotations

import dataclasses
import time

import pytest
from server_helpers import Workspace
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from server.store.ratelimit import estimate


def test_over_the_limit_is_429_with_retry_after_and_other_keys_go_on(settings: Settings) -> None:
    limited = dataclasses.replace(settings, rate_limit_per_s=5)
    with TestClient(create_app(limited)) as c:
        ws = Workspace(c)
        viewer, admin = ws.h("viewer"), ws.h("admin")
        codes = [c.get("/v1/rules", headers=viewer).status_code for _ in range(15)]
        assert codes[:5] == [200] * 5 and 429 in codes
        r = c.get("/v1/rules", headers=viewer)
        if r.status_code == 429:
            body = r.json()["error"]
            assert body["code"] == "rate_limited" and "DESKFLOW_RATE_LIMIT" in body["message"]
            assert body["details"] == {"limit_per_second": 5} and r.headers["Retry-After"] == "1"
        assert c.get("/v1/keys", headers=admin).status_code == 200     # another key: its own budget
        time.sleep(2.1)                                                  # both windows have passed
        assert c.get("/v1/rules", headers=viewer).status_code == 200


def test_unknown_keys_are_401_not_429(settings: Settings) -> None:
    with TestClient(create_app(dataclasses.replace(settings, rate_limit_per_s=2))) as c:
        codes = {c.get("/v1/rules", headers={"Authorization": "Bearer nope"}).status_code for _ in range(6)}
        assert codes == {401}


@pytest.mark.redis
def test_the_count_is_shared_by_api_processes(redis_url: str) -> None:
    s = Settings(redis_url=redis_url, data_file=None, root_token="test-root-token", rate_limit_per_s=6)
    with TestClient(create_app(s)) as a, TestClient(create_app(s)) as b:
        ws = Workspace(a)
        h = ws.h("viewer")
        codes = [(a if i % 2 else b).get("/v1/rules", headers=h).status_code for i in range(12)]
        assert codes.count(200) <= 7 and 429 in codes   # not 6 per process: one budget


def test_sliding_estimate() -> None:
    assert estimate(cur=3, prev=10, elapsed=0.0) == 13
    assert estimate(cur=3, prev=10, elapsed=0.5) == 8
    assert estimate(cur=3, prev=10, elapsed=0.99) == pytest.approx(3.1)
