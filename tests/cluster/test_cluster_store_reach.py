"""Hostile tenant vs the shared store on a Redis Cluster: the service's URL names one seed node,
and the broker refused only that one. An admin who allow-listed the other nodes' addresses put a
tenant's script or `http_request` rule on the ports of the Redis every workspace lives in. Every
node of the client's slot map is the store's own now (server/selfguard.py note_cluster)."""

from __future__ import annotations

from urllib.parse import urlsplit

from cluster_nodes import LocalCluster
from server_helpers import Workspace
from test_attack_store_reach import _try


def test_every_cluster_node_is_refused_not_only_the_seed(ws: Workspace, local_cluster: LocalCluster,
                                                          cluster_url: str) -> None:
    seed = urlsplit(cluster_url).port
    others = [n.port for n in local_cluster.nodes if n.port != seed]
    assert len(others) >= 5   # 3 masters + 3 replicas
    hosts = [f"http://127.0.0.1:{port}" for port in [seed, *others]]
    r = ws.client.put("/v1/allowlist", json={"hosts": hosts}, headers=ws.h("admin"))
    assert r.status_code == 200, r.text
    calls = _try(ws, [f"{h}/" for h in hosts])
    for call in calls:
        assert "own API or store" in (call.get("refused") or ""), call
