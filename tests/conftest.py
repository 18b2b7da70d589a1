"""Shared fixtures.

* `redis_url`: a real Redis DB of 1-11 that no other test holds (a lock key in the DB, so
  concurrent pytest runs on one machine do not flush each other's data), flushed before and after
  (DB 12 is the ingest benchmark's).
* `store_kind`: "embedded" and "redis" (the latter marked `redis`): parametrizes `settings`, so a
  test that asks for `settings`, `client` or `ws` runs on both stores.
* `client`: a starlette TestClient over create_app(settings, worker=True), lifespan running; its
  worker reads `worker_clock` (testkit.ShiftedClock), so a test crosses a timer's due time with
  `worker_clock.advance(s)` instead of sleeping.
(tests/server/conftest.py adds `ws`, a fresh workspace on `client` with keys of every role.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from testkit import ShiftedClock, claim_redis_db, service_settings

from server.app import create_app
from server.settings import Settings

@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis DB of 1-11 that no other test holds (testkit.claim_redis_db)."""
    with claim_redis_db() as url:
        yield url


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(store_kind: str, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("redis_url") if store_kind == "redis" else None
    return service_settings(url)


@pytest.fixture
def worker_clock() -> ShiftedClock:
    """The `client` worker's clock: the real time until a test calls `worker_clock.advance(s)`."""
    return ShiftedClock()


@pytest.fixture
def client(settings: Settings, worker_clock: ShiftedClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, worker=True, worker_clock=worker_clock)) as c:
        yield c


# Tests that assert a wall-clock bound (a victim's p99 latency, a timer's lateness, a lane's wait)
# or load every core themselves: marked `serial` here, in one place, so `./dev test` on several
# xdist workers runs them after the parallel part, one at a time (tests/README.md, "Parallel runs").
# A node id prefix each, with what it measures.
SERIAL = (
    "tests/server/test_tenant_isolation.py",     # victim p99 < 100 ms, applied < 2 s
    "tests/server/test_tenant_cpu_isolation.py",  # the same, against a CPU-bound attacker
    "tests/server/test_time_e2e.py",             # timers fire within 1 s of their due time
    "tests/server/test_scale_out.py",            # 2 APIs + 3 workers + a private Redis
    "tests/server/test_embedded_crash.py",       # > 20 writes in a 1.5-2.5 s load before each kill
    "tests/server/test_lanes.py::test_a_slow_workspace_does_not_hold_another",  # waited < 2 s
    "tests/rules/test_property.py",              # every core, for minutes, with regex time bounds
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`serial` goes on the SERIAL tests. `slow` tests (issue 7's full-size runs) are skipped
    unless DESKFLOW_FULL_TESTS=1 or the marker expression asks for them (`-m slow`), so
    `./dev test` fits CI's time budget."""
    for item in items:
        if item.nodeid.startswith(SERIAL):
            item.add_marker(pytest.mark.serial)
    if os.environ.get("DESKFLOW_FULL_TESTS") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with DESKFLOW_FULL_TESTS=1 ./dev test (or -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

