"""Two workspaces on one `deskflow serve` process: while workspace A fires its worst regexes,
templates, YAML imports and business-time rules in a loop, workspace B's ordinary requests keep a
p99 latency under 100 ms and its events are applied within 2 s (issue 13, A1/A2/A3/A6).

A real process, not a TestClient: the point is one event loop and one GIL shared by the API and
the worker, as in production.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from testkit import served_deskflow

ROOT = "isolation-root-token"
P99_LIMIT_S = 0.100
APPLIED_LIMIT_S = 2.0  # B's events, sent with ?wait=true while A attacks
PACE_S = 0.1
ATTEMPTS = 3  # the whole measurement, on a loaded 2-core machine; each attempt must be clean

# A's worst cases of each kind. The first two held the GIL for seconds on the old `re` path.
WORST_REGEXES = ["a*a*a*a*a*a*a*a*b", "a?" * 26 + "a" * 26, "(a|aa)+$", r"(\w|\d)+$", "(x+x+)+y"]
BODY = "a" * 40
HOSTILE_TEMPLATE = "{{" * 8_000          # 16,000 characters: at the template limit
OLD_HOSTILE_TEMPLATE = "{{" * 30_000     # what the old code took (15.5 s a render); refused now
SPARSE = {"timezone": "Europe/Oslo",
          "week": {"mon": [[f"{h:02d}:00", f"{h:02d}:01"] for h in range(0, 24, 2)]},
          "holidays": [f"{y}-12-25" for y in range(1990, 2030)]}
OLD_SPARSE = {"timezone": "Europe/Oslo",
              "week": {"mon": [[f"{m // 60:02d}:{m % 60:02d}", f"{(m + 1) // 60:02d}:{(m + 1) % 60:02d}"]
                               for m in range(0, 1438, 2)]}}  # 719 one-minute windows: refused now


def _bomb(levels: int = 24) -> str:
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)]
    return "\n".join(lines) + "\nrules: []\n"


@pytest.fixture
def served(tmp_path: Path, redis_url: str) -> Iterator[str]:
    """`deskflow serve` (API and worker in one process) on the real Redis, as in production (the
    embedded store would put every store operation's CPU on the shared loop too)."""
    with served_deskflow({"DESKFLOW_REDIS_URL": redis_url, "DESKFLOW_ROOT_TOKEN": ROOT},
                         start_s=30) as url:
        yield url


def _workspace(c: httpx.Client, name: str) -> dict[str, str]:
    r = c.post("/v1/workspaces", json={"name": name}, headers={"Authorization": f"Bearer {ROOT}"})
    assert r.status_code == 201, r.text
    admin = r.json()["admin_key"]
    keys = {"admin": admin}
    for role in ("manager", "ingest", "viewer"):
        k = c.post("/v1/keys", json={"role": role, "name": role}, headers={"Authorization": f"Bearer {admin}"})
        assert k.status_code == 201, k.text
        keys[role] = k.json()["key"]
    return keys


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _arm_attacker(c: httpx.Client, keys: dict[str, str]) -> list[str]:
    """A's rules: every worst case that the API accepts (today's limits refuse some: fine)."""
    ids = []
    candidates: list[dict[str, Any]] = []
    for i, pattern in enumerate(WORST_REGEXES * 6):
        candidates.append({"name": f"regex-{i}", "triggers": ["message.received"],
                           "conditions": {"field": "message.body", "op": "matches", "value": pattern},
                           "actions": [{"type": "add_tags", "tags": [f"r{i}"]}]})
    for name, template in (("tmpl", HOSTILE_TEMPLATE), ("old-tmpl", OLD_HOSTILE_TEMPLATE)):
        candidates.append({"name": name, "triggers": ["message.received"],
                           "actions": [{"type": "send_message", "template": template}]})
    for name, cal in (("biz", SPARSE), ("old-biz", OLD_SPARSE)):
        for span in ("1h", "2000h", "100000h"):
            candidates.append({"name": f"{name}-{span}", "triggers": ["message.received"],
                               "conditions": {"field": "custom.at", "op": "older_than_business",
                                              "value": span, "calendar": cal},
                               "actions": [{"type": "add_tags", "tags": ["old"]}]})
    for rule in candidates:
        r = c.post("/v1/rules", json={**rule, "enabled": True}, headers=_h(keys["manager"]))
        if r.status_code == 201:
            ids.append(r.json()["id"])
    assert ids
    return ids


def _attack(url: str, keys: dict[str, str], rule_ids: list[str], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=120) as c:
        n = 0
        while not stop.is_set():
            n += 1
            event = {"id": f"atk-{n}", "type": "message.received",
                     "ticket": {"id": f"A-{n % 4}", "subject": BODY,
                                "custom": {"at": "0001-01-01T00:00:00Z" if n % 2 else "1990-01-01T00:00:00Z"}},
                     "message": {"body": BODY, "author": "customer"}}
            c.post("/v1/events", json=event, headers=_h(keys["ingest"]))
            c.post(f"/v1/rules/{rule_ids[n % len(rule_ids)]}/test", json={"event": event},
                   headers=_h(keys["manager"]))
            c.post("/v1/import", content=_bomb().encode(),
                   headers={**_h(keys["admin"]), "Content-Type": "application/yaml"})
            # Paced, so that what is measured is each hostile request's worst case, not a flood
            # (floods are the rate limits' business): on the old code a single one of these held
            # the process for seconds.
            stop.wait(PACE_S)


def _events_applied(url: str, keys: dict[str, str], n: int = 5) -> float:
    """The slowest of n of B's events, sent with ?wait=true (answered once applied)."""
    worst = 0.0
    with httpx.Client(base_url=url, timeout=120) as c:
        for i in range(n):
            t0 = time.perf_counter()
            r = c.post("/v1/events?wait=true", headers=_h(keys["ingest"]),
                       json={"id": f"b-{time.monotonic_ns()}", "type": "ticket.created",
                             "ticket": {"id": f"B-{i}", "subject": "hello"}})
            worst = max(worst, time.perf_counter() - t0)
            assert r.status_code == 200 and r.json()["status"] == "processed", r.text
            assert "x" in r.json()["ticket"]["tags"]
    return worst


def _measure(url: str, keys: dict[str, str], n: int = 100) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=120) as c:
        for i in range(n):
            t0 = time.perf_counter()
            r = c.get("/v1/rules", headers=_h(keys["viewer"])) if i % 2 else \
                c.get("/v1/tickets", headers=_h(keys["viewer"]))
            out.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
            time.sleep(0.01)
    return sorted(out)


@pytest.mark.redis
@pytest.mark.timeout(600)
def test_one_workspace_cannot_stall_another(served: str) -> None:
    with httpx.Client(base_url=served, timeout=60) as c:
        a, b = _workspace(c, "attacker"), _workspace(c, "bystander")
        c.post("/v1/rules", json={"name": "plain", "enabled": True, "triggers": ["ticket.created"],
                                  "actions": [{"type": "add_tags", "tags": ["x"]}]}, headers=_h(b["manager"]))
        rule_ids = _arm_attacker(c, a)
    _measure(served, b, 10)  # warm up B's path
    results = []
    for _ in range(ATTEMPTS):
        stop = threading.Event()
        attacker = threading.Thread(target=_attack, args=(served, a, rule_ids, stop), daemon=True)
        attacker.start()
        try:
            time.sleep(1.0)  # let A's load reach the worker
            lat = _measure(served, b)
            applied = _events_applied(served, b)
        finally:
            stop.set()
            attacker.join(180)
        p99 = lat[int(len(lat) * 0.99) - 1]
        results.append((p99, lat[-1], lat[len(lat) // 2], applied))
        if p99 < P99_LIMIT_S and applied < APPLIED_LIMIT_S:
            break
    p99, _, _, applied = results[-1]
    assert p99 < P99_LIMIT_S and applied < APPLIED_LIMIT_S, \
        f"B's (p99, max, median latency, slowest event applied) per attempt: {results}"
