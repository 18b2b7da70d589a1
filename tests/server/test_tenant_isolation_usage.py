"""No tenant may slow another, through its rules' usage: GET /v1/rules with each rule's fires and
checks over 1 h / 24 h / 7 d / 30 d (tests/server/test_tenant_isolation.py's set-up and bounds:
one `deskflow serve`, an attacker and a victim workspace, the victim's p99 < 100 ms).

A month of a busy workspace leaves each rule's stats hash with 744 hourly fire buckets and as many
check buckets (written here straight to the embedded store: a month of fires cannot be run in a
test). `?unused_for=30d` (the managers' page asks for it on every visit) read and summed every
rule's whole hash, `?limit=500` every shown rule's: at 1,000 such rules ~2 s of the event loop
every workspace shares, a request."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import redis
from test_tenant_isolation import Attack, Served, _assert_unfelt, _victim, served  # noqa: F401

RULES = 1000


def _busy_month(socket: Path, workspace: str, ids: list[str]) -> None:
    """Every rule fired and was checked every hour of the last 31 days, and of the next hour: a
    read after the hour turns (the test takes minutes) still finds each window full (the 30 d
    window was 1,438 fires, not 1,440, for a test that wrote at 01:59 and read at 02:00)."""
    hour = int(time.time() // 3600)
    hours = range(hour - 743, hour + 2)
    with redis.Redis(unix_socket_path=str(socket), decode_responses=True) as r:
        for start in range(0, len(ids), 50):
            with r.pipeline(transaction=False) as p:
                for rid in ids[start:start + 50]:
                    fields: dict[str, str | int] = {f"h:{h}": 2 for h in hours}
                    fields.update({f"c:{h}": 5 for h in hours})
                    fields["last"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    p.hset(f"df:{{ws:{workspace}}}:rule-stats:{rid}", mapping=fields)
                p.execute()
        # ~150 MB written at once set off the store's AOF rewrite (a fork and a copy, seconds
        # of both cores): the set-up's cost, not the attack's; the attack starts after it
        deadline = time.monotonic() + 120
        while (info := r.info("persistence"))["aof_rewrite_in_progress"] or info.get("aof_rewrite_scheduled"):
            assert time.monotonic() < deadline, "the store's AOF rewrite did not end"
            time.sleep(0.1)


def test_rule_usage_reads_of_one_workspace_do_not_stall_another(served: Served, tmp_path: Path) -> None:
    a, b = served.workspace("attacker", timeout=120), _victim(served)
    ids = [f"r{i:04d}" for i in range(RULES)]
    a.ok("POST", "/v1/import", json={"deskflow": 1, "rules": [
        {"id": rid, "name": rid, "enabled": True, "triggers": ["ticket.updated"],
         "actions": [{"type": "add_tags", "tags": ["x"]}]} for rid in ids]})
    _busy_month(tmp_path / "d" / "redis.sock", a.ok("GET", "/v1/workspace")["id"], ids)

    def step(n: int) -> None:
        """(orjson: 500 rules of JSON parsed by the stdlib in these threads held the GIL the
        victim's client in this process needs, a latency of the test's own)"""
        if n % 2:
            r = a.call("GET", "/v1/rules?unused_for=30d&limit=500")
            assert r.status_code == 200 and orjson.loads(r.content)["items"] == [], r.text[:300]
        else:
            r = a.call("GET", "/v1/rules?limit=500")
            assert r.status_code == 200, r.text[:300]
            items = orjson.loads(r.content)["items"]
            assert len(items) == 500 and items[0]["usage"]["fired"]["30d"] == 2 * 720, items[0]
            assert items[0]["usage"]["checked"]["24h"] == 5 * 24

    with Attack(step, threads=3) as attack:
        _assert_unfelt(b, "rule usage reads", attack)
