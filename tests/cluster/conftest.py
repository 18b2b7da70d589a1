"""Fixtures of the Redis Cluster tests (issue 16): a real 3 masters + 3 replicas cluster.

* `local_cluster` (session): started once from the `redis-server` binary (tests/cluster/
  cluster_nodes.py), torn down at the end; tests that kill or reshard nodes start their own with
  `fresh_cluster` instead, so the shared one stays whole.
* `cluster_url`: the shared cluster, emptied (FLUSHALL on every master) before the test.
* `store_kind` / `settings` / `client` / `ws`: the service fixtures of tests/conftest.py and
  tests/server/conftest.py, pointed at the cluster, so server tests imported into this folder run
  unchanged against it (test_cluster_core.py).

The server tests' helpers (server_helpers, webhook_receiver, cluster_harness) are imported from
tests/server, which is put on sys.path here.
"""
from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "server"))

from cluster_nodes import LocalCluster, flush  # noqa: E402
from server_helpers import Workspace  # noqa: E402

from server.settings import Settings  # noqa: E402

ROOT_TOKEN = "test-root-token"

pytestmark = pytest.mark.redis


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        skip = pytest.mark.skip(reason="needs redis-server and redis-cli to start a cluster")
        for item in items:
            if "tests/cluster/" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as cluster:
        yield cluster


@pytest.fixture
def fresh_cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as cluster:
        yield cluster


@pytest.fixture
def cluster_url(local_cluster: LocalCluster) -> str:
    local_cluster.wait_ok()
    flush(local_cluster)
    return local_cluster.url


@pytest.fixture
def store_kind() -> str:
    return "cluster"


@pytest.fixture
def settings(cluster_url: str) -> Settings:
    return Settings(redis_url=cluster_url, data_file=None, root_token=ROOT_TOKEN, partitions=4,
                    reclaim_idle_ms=1500, block_ms=100, wait_timeout_s=10)


@pytest.fixture
def ws(client: TestClient) -> Workspace:
    return Workspace(client)
