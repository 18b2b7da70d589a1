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
from pathlib import Path

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
# A node id prefix each, with what it measures. Not here: tests that only take long or start many
# processes but assert no time (test_scale_out.py's 2 APIs + 3 workers check exactly-once and
# order, however slowly they run): they overlap with other tests in the parallel part.
SERIAL = (
    "tests/server/test_tenant_isolation.py",     # victim p99 < 100 ms, applied < 2 s
    "tests/server/test_tenant_isolation_usage.py",  # the same, against usage reads
    "tests/server/test_tenant_cpu_isolation.py",  # the same, against a CPU-bound attacker
    "tests/server/test_time_e2e.py",             # timers fire within 1 s of their due time
    "tests/server/test_attack_usage.py::test_one_workspaces_usage_batch_does_not_hold_the_store",  # < 10 ms
    "tests/server/test_embedded_crash.py",       # > 20 writes in a 1.5-2.5 s load before each kill
    "tests/server/test_lanes.py::test_a_slow_workspace_does_not_hold_another",  # waited < 2 s
    "tests/rules/test_property.py",              # every core, for minutes, with regex time bounds
    "tests/rules/test_long_texts.py::test_a_pass_scanning_a_long_text_leaves_other_threads_the_gil",  # ticks
    # a reader's plan of one rule revision < 50 ms of CPU, pack of a 20,000-field rule set < 0.1 s
    "tests/rules/test_record_plan.py::test_a_plan_does_not_compile_what_it_does_not_need",
    "tests/rules/test_record_plan.py::test_what_pack_stores_of_the_fields_grows_with_what_the_entries_read",
    # the event loop's longest stall < 0.2 s while a ~1 MiB body is scrubbed (0.35 s beside the
    # other worker at load 18, 2026-12-03)
    "tests/sandbox/test_broker_outbound.py::test_a_large_reflecting_body_is_scrubbed_off_the_loop",
    # this thread ticks in half the 50 ms slices of another's 1 s match (79 of 225 beside the other
    # worker at load 14, 2026-12-03)
    "tests/rules/test_regex_bounds.py::test_a_match_releases_the_gil",
    # a pass tried on the event loop moves within ~1 ms (the allowance) of slow regexes, not 250;
    # and once warm none of 200 short-text passes moves (each spends a few us of its 1 ms: one
    # moved beside the other worker in a fresh-clone run, 2026-12-06: wall-clock time, so a pass preempted mid-search is charged for it)
    "tests/rules/test_on_loop.py::test_a_pass_that_stays_on_the_loop_answers_as_one_without_it",
    "tests/rules/test_on_loop.py::test_a_try_on_the_loop_stops_at_its_allowance",
    # a third workspace's check < 5 s while two others' run to their CPU limit
    "tests/server/test_checkpool.py::test_two_workspaces_running_checks_to_their_limit_do_not_hold_a_third",
    # a third workspace's quick script < 2 s while two others' scripts hang
    "tests/sandbox/test_pool_elastic.py::test_two_hanging_workspaces_do_not_starve_a_third",
    "tests/server/test_tenant_isolation_pools.py",   # a third workspace's event applied < 2 s
    "tests/server/test_redteam14_isolation.py",   # victim p99 < 100 ms (or 3x quiet) beside edit loops
    "tests/server/test_redteam17_compile.py",     # victim p99 < 100 ms beside rule compiles
    "tests/server/test_redteam17b.py",            # the same, rules filed under 64 values
    "tests/server/test_redteam18.py",             # the same, several workspaces compiling at once
)


# The parallel part's longest modules (seconds of one test at -n 2, 2026-12-02): run first, so the
# last test a worker takes is a short one and no worker idles while another finishes a 25 s test
# (worksteal can take only tests not yet started). Whole modules move, so module fixtures stay one.
LONG_FIRST = (
    "tests/server/test_scale_out.py",             # 25-40 s a test: 5 processes and a Redis each
    "tests/server/test_schemathesis.py",          # 23-28 s a store
    "tests/server/test_backtest.py",              # 20 s: a maximal backtest beside another workspace
    "tests/server/test_attack_runs.py",           # 14 s
    "tests/server/test_attack_contacts.py",       # 13 s
    "tests/server/test_contact_index.py",         # 6 s a store
    "tests/server/test_outbound_security.py",     # 6 s a store: slowloris receivers
    "tests/sandbox/test_sandbox_limits.py",       # 5-6 s: CPU hogs run to the limit
    "tests/test_docs_curl.py",                    # 5.5 s: serve --demo and the docs' curl lines
)


_SERIAL_FILES = frozenset(prefix.split("::")[0] for prefix in SERIAL)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In `./dev test`'s serial part (DESKFLOW_SERIAL_PART=1, set by ./dev) only the SERIAL files
    are collected: collecting all 3,800 tests to keep 33 took 48 s at load 20, the SERIAL files
    alone 4 s. A file's path is matched relative to the rootdir, as the node ids are."""
    if os.environ.get("DESKFLOW_SERIAL_PART") != "1" or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    try:
        rel = collection_path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return None
    return True if rel not in _SERIAL_FILES else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`serial` goes on the SERIAL tests. `slow` tests (issue 7's full-size runs) are skipped
    unless DESKFLOW_FULL_TESTS=1 or the marker expression asks for them (`-m slow`), so
    `./dev test` fits CI's time budget."""
    for item in items:
        if item.nodeid.startswith(SERIAL):
            item.add_marker(pytest.mark.serial)
    if hasattr(config, "workerinput"):   # an xdist worker: every worker sorts alike (stable sort)
        rank = {path: i for i, path in enumerate(LONG_FIRST)}
        items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
    if os.environ.get("DESKFLOW_FULL_TESTS") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with DESKFLOW_FULL_TESTS=1 ./dev test (or -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

