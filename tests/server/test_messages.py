"""Issue 12 item 10: answers speak in the user's words and list every problem at once (allow-list,
webhook; the SLA policy cases are in test_sla_api.py)."""

from __future__ import annotations

from typing import Any

import pytest

from server.api.checks import in_units

TRIVIAL = "def run(event, ticket, ctx):\n    return None\n"


@pytest.mark.parametrize(("timeout", "reason"), [
    ("60s", "timeout 60s is above the maximum 30s"),
    ("2m", "timeout 2m is above the maximum 30s"),
    ("1m30s", "timeout 1m30s is above the maximum 30s"),
    ("45000ms", "timeout 45000ms is above the maximum 30000ms"),
    ("1h", "timeout 1h is above the maximum 30s"),
])
def test_a_script_timeout_above_the_maximum_speaks_in_its_own_units(ws: Any, timeout: str, reason: str) -> None:
    r = ws.client.post("/v1/scripts", json={"name": "slow", "source": TRIVIAL, "timeout": timeout},
                       headers=ws.h("developer"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"] == [{"path": "timeout", "reason": reason}]
    assert "wall_s" not in r.text


def test_in_units_picks_a_whole_unit_the_user_wrote() -> None:
    assert in_units(30, "60s") == "30s" and in_units(120, "5m") == "2m" and in_units(3600, "2h") == "1h"
    assert in_units(0.5, "2s") == "500ms" and in_units(30, "90m") == "30s"


def test_every_bad_allowlist_entry_is_reported(ws: Any) -> None:
    hosts = ["ok.example.com", "127.1", 5, "user@crm.example.com", "fine.example.com:8443", "*.example.com"]
    r = ws.client.put("/v1/allowlist", json={"hosts": hosts}, headers=ws.h("admin"))
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == ["hosts[1]", "hosts[2]", "hosts[3]", "hosts[5]"]
    too_many = [f"h{i}.example.com" for i in range(101)] + ["bad/path"]
    r = ws.client.put("/v1/allowlist", json={"hosts": too_many}, headers=ws.h("admin"))
    assert [d["path"] for d in r.json()["error"]["details"]] == ["hosts", "hosts[101]"]
    assert "the limit is 100" in r.json()["error"]["details"][0]["reason"]
    assert ws.client.get("/v1/allowlist", headers=ws.h("admin")).json()["hosts"] == []


def test_an_import_reports_every_bad_allowlist_entry(ws: Any) -> None:
    doc = {"deskflow": 1, "allowlist": ["127.1", "ok.example.com", "ftp://x.example"]}
    r = ws.client.post("/v1/import", json=doc, headers={**ws.h("admin"), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == ["allowlist[0]", "allowlist[2]"]


def test_every_webhook_problem_is_reported(ws: Any) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "secret": "", "extra": 1}
    r = ws.client.put("/v1/webhook", json=body, headers=ws.h("admin"))
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == ["extra", "secret", "url"]
    assert "allow-list" in r.json()["error"]["details"][2]["reason"]
