"""Finding A5 through the API: one workspace's test-runs of a script that calls a hanging URL do
not hold another workspace's script; the attacker's excess runs answer `busy`."""
from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from starlette.testclient import TestClient
from test_pool_shares import HangingServer, hanging  # noqa: F401 - the fixture

from server.app import create_app
from server.settings import Settings

ROOT = "shares-root-token"
HANG = "def run(event, ticket, ctx):\n    ctx.http.get({url!r}, timeout=30)\n    return None\n"
TRIVIAL = "def run(event, ticket, ctx):\n    return {'add_tags': ['served']}\n"


def _workspace(client: TestClient, name: str) -> dict[str, str]:
    r = client.post("/v1/workspaces", json={"name": name}, headers={"Authorization": f"Bearer {ROOT}"})
    assert r.status_code == 201, r.text
    admin = {"Authorization": f"Bearer {r.json()['admin_key']}"}
    key = client.post("/v1/keys", json={"role": "developer", "name": "dev"}, headers=admin).json()["key"]
    return {"admin": admin["Authorization"], "dev": f"Bearer {key}"}


def test_a_hanging_workspace_leaves_the_other_one_served(hanging: HangingServer) -> None:  # noqa: F811
    hanging_url = hanging.url
    settings = Settings(data_file=None, root_token=ROOT, script_workers=2, script_queue_timeout_s=2.0)
    with TestClient(create_app(settings)) as client:
        attacker, victim = _workspace(client, "attacker"), _workspace(client, "victim")
        assert client.put("/v1/allowlist", json={"hosts": [hanging_url]},
                          headers={"Authorization": attacker["admin"]}).status_code == 200
        for keys, name, source, timeout in ((attacker, "hang", HANG.format(url=hanging_url + "/slow"), "30s"),
                                            (victim, "quick", TRIVIAL, "5s")):
            r = client.post("/v1/scripts", json={"name": name, "source": source, "timeout": timeout},
                            headers={"Authorization": keys["dev"]})
            assert r.status_code == 201, r.text

        def test_run(keys: dict[str, str], name: str) -> Any:
            r = client.post(f"/v1/scripts/{name}/test", json={"event": {}}, headers={"Authorization": keys["dev"]})
            assert r.status_code == 200, r.text
            return r.json()

        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            hogs = [ex.submit(test_run, attacker, "hang") for _ in range(4)]
            time.sleep(1.0)
            for _ in range(3):
                started = time.monotonic()
                body = test_run(victim, "quick")
                assert body["error"] is None and body["updates"] == {"add_tags": ["served"]}
                assert time.monotonic() - started < 2.0
            concurrent.futures.wait(hogs, timeout=30, return_when=concurrent.futures.FIRST_COMPLETED)
            deadline = time.monotonic() + 30
            while sum(h.done() for h in hogs) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            finished = [h.result() for h in hogs if h.done()]
            codes = sorted(f["error"]["code"] for f in finished)
            assert codes == ["busy"] * 3, codes       # never sandbox_crash
            assert "try again" in finished[0]["error"]["message"]
            hanging.release()       # the run that held the attacker's share now ends
