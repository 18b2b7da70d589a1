"""What happened to every acknowledged event, read back from the tickets and their run records.

`check_applied` (tests/server/cluster_harness.py) asserts that all of them were applied exactly once
in order; a failover without DESKFLOW_REDIS_WAIT_REPLICAS may lose some, and the kill test has to
*measure* that loss rather than time out on it. `tally` waits until every ticket is complete or
nothing changed for `settle` seconds, then classifies each ticket's applied events against what
was acknowledged: lost (acknowledged, never applied), duplicated, out of order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx


@dataclass
class Tally:
    acked: int = 0
    applied: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"acked={self.acked} applied={self.applied} lost={len(self.lost)} "
                f"duplicated={len(self.duplicated)} out_of_order={len(self.out_of_order)} "
                f"unexpected={len(self.unexpected)}")


def _applied(c: httpx.Client, tid: str) -> tuple[int, list[str]]:
    r = c.get(f"/v1/tickets/{tid}")
    if r.status_code != 200:
        return 0, []
    runs = c.get(f"/v1/tickets/{tid}/runs", params={"limit": 500}).json()["items"]
    return int(r.json()["version"]), [run["event_id"] for run in reversed(runs)]


def tally(url: str, key: str, acked: dict[str, list[str]], *, timeout: float = 90.0,
          settle: float = 6.0) -> Tally:
    h = {"Authorization": f"Bearer {key}"}
    seen: dict[str, tuple[int, list[str]]] = {}
    with httpx.Client(base_url=url, headers=h, timeout=10) as c:
        deadline = time.monotonic() + timeout
        last_change = time.monotonic()
        while time.monotonic() < deadline:
            changed = False
            for tid, ids in acked.items():
                if tid in seen and seen[tid][0] >= len(ids):
                    continue
                got = _applied(c, tid)
                if got != seen.get(tid):
                    seen[tid], changed = got, True
            if changed:
                last_change = time.monotonic()
            if all(tid in seen and seen[tid][0] >= len(ids) for tid, ids in acked.items()):
                break
            if time.monotonic() - last_change > settle:
                break
            time.sleep(0.5)
        out = Tally()
        for tid, ids in acked.items():
            _, applied = _applied(c, tid)
            out.acked += len(ids)
            out.applied += len(applied)
            wanted = set(ids)
            out.unexpected += [e for e in applied if e not in wanted]
            out.duplicated += sorted({e for e in applied if applied.count(e) > 1})
            out.lost += [e for e in ids if e not in set(applied)]
            order = [ids.index(e) for e in applied if e in wanted]
            if order != sorted(order):
                out.out_of_order.append(tid)
    return out
