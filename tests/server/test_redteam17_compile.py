"""Red team, session 17: one workspace's rule compiles felt by another (server/rulecache.py).

tests/server/test_tenant_isolation.py's set-up (one `deskflow serve`, embedded store, one
partition). The attacker uses its own admin key only.

Filing amplification: a rule filed in the value index under a key of N values (`subject in
[N values]`, N <= MAX_LIST_VALUES = 1,000) has its whole condition body written inline in each of
the N per-value functions of the generated source (rules/codegen.py `_emit`), so a 64 KiB rule of
one 1,000-value `in` and ~1,000 short conditions is ~22-24 MB of generated source (~8 s of CPython
compile, ~2 GB RSS), where the 56-condition rules at the limits are 3.6 MB for the whole workspace.
Two such rules are over the compile process's 10 s of CPU (CHECK_TIMEOUT_S): CheckTimeout, and
the rule cache compiles the source in the worker (`compile_source`'s fallback), one C call
holding the GIL for every workspace; three are over MAX_SOURCE_BYTES (64 MiB): PayloadTooLarge,
compiled in the worker at once.
"""
from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from test_tenant_isolation import (P99_MS, APPLY_S, Attack, Served, Tenant, _event,  # noqa: F401
                                   _victim, served)

from server.store.rule_size import MAX_RULE_BYTES


def _fat_rule(i: int, conds: int | None = None) -> dict[str, Any]:
    """A rule filed under 1,000 values with as many short conditions as MAX_RULE_BYTES allows
    (or `conds`): each condition is written once per value in the generated source."""
    base = [{"field": "subject", "op": "in", "value": [f"r{i}v{j}" for j in range(1000)]}]
    leaf = {"field": "subject", "op": "starts_with", "value": "a"}
    rule = {"id": f"f{i}", "name": f"fat {i}", "enabled": True, "triggers": ["ticket.updated"],
            "conditions": {"all": base}, "actions": [{"type": "add_tags", "tags": ["f"]}]}
    n = conds if conds is not None else (MAX_RULE_BYTES - 400 - len(orjson.dumps(rule))) // (
        len(orjson.dumps(leaf)) + 1)
    rule["conditions"]["all"] = base + [leaf] * n
    return rule


def _watch(b: Tenant, tag: str, seconds: float) -> tuple[float, float, list[float]]:
    """B's p99 / max latency (ms) of ordinary requests over `seconds`, and its events' apply
    times (s); a request that times out (10 s client) counts as its time."""
    lat: list[float] = []
    applied: list[float] = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end or len(lat) < 100:
        path = ("/v1/rules", "/v1/tickets?limit=5", "/v1/workspace", "/healthz")[i % 4]
        t0 = time.perf_counter()
        try:
            b.call("GET", path)
        except httpx.TimeoutException:
            pass
        lat.append((time.perf_counter() - t0) * 1000)
        if i % 20 == 10:
            t0 = time.perf_counter()
            try:
                b.call("POST", "/v1/events?wait=true",
                       json=_event(f"{tag}-{i}", f"B-{tag}-{i}", subject="invoice wrong"))
            except httpx.TimeoutException:
                pass
            applied.append(time.perf_counter() - t0)
        i += 1
        time.sleep(0.01)
    lat.sort()
    return lat[int(len(lat) * 0.99) - 1], lat[-1], applied


def _report(tag: str, quiet: tuple[float, float, list[float]],
            attacked: tuple[float, float, list[float]]) -> None:
    print(f"\n[{tag}] quiet p99 {quiet[0]:.0f} ms max {quiet[1]:.0f} ms apply max "
          f"{max(quiet[2]):.2f} s | attacked p99 {attacked[0]:.0f} ms max {attacked[1]:.0f} ms "
          f"apply max {max(attacked[2]):.2f} s ({len(attacked[2])} events)")


def _fat_attack(served: Served, rules: int, tag: str) -> None:
    a, b = served.workspace("attacker", timeout=300), _victim(served)
    quiet = _watch(b, "quiet", 3)
    fat = [_fat_rule(i) for i in range(rules)]
    assert all(len(orjson.dumps(r)) < MAX_RULE_BYTES for r in fat)
    a.ok("POST", "/v1/import", json={"deskflow": 1, "rules": fat})

    def step(n: int) -> None:
        # a new shape every other step (a condition fewer on one rule): a new source each time
        if n % 2:
            k = n % rules
            r = a.call("PATCH", f"/v1/rules/f{k}",
                       json={"conditions": _fat_rule(k, 900 - n % 50)["conditions"]})
        else:
            r = a.call("POST", "/v1/events", json=_event(f"a{n}", "A-fat", "ticket.updated", subject="s"))
        assert r.status_code < 300, r.text[:300]

    with Attack(step, threads=1, pace_s=0.5) as attack:
        attacked = _watch(b, tag, 45)
    _report(tag, quiet, attacked)
    assert not attack.errors, attack.errors[:3]
    assert attacked[0] < P99_MS, f"victim p99 {attacked[0]:.0f} ms (max {attacked[1]:.0f} ms) ({tag})"
    assert max(attacked[2]) < APPLY_S, f"victim events took {attacked[2]} s to apply ({tag})"


@pytest.mark.timeout(900)
def test_two_filing_amplified_rules_time_out_their_process_and_compile_in_the_worker(served: Served) -> None:
    """2 rules of ~126 KB JSON in all: ~47 MB of source, over CHECK_TIMEOUT_S in the process."""
    _fat_attack(served, 2, "fat2")


@pytest.mark.timeout(900)
def test_three_filing_amplified_rules_over_max_source_compile_in_the_worker(served: Served) -> None:
    """3 rules of ~190 KB JSON in all: ~70 MB of source, over MAX_SOURCE_BYTES (PayloadTooLarge)."""
    _fat_attack(served, 3, "fat3")


@pytest.mark.timeout(900)
def test_one_filing_amplified_rule_in_its_process(served: Served) -> None:
    """1 rule (~64 KB): ~23 MB of source, ~8 s in the compile process (no fallback)."""
    _fat_attack(served, 1, "fat1")
