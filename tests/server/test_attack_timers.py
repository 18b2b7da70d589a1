"""Hostile tenant vs the timer wheel: timers are armed one event at a time (inside the rate
limit), but nothing bounds how many of one workspace come due at the same instant. Snoozing many
tickets to one second turns them into one burst of generated events. Before fair firing, the burst
went into the partition's stream ahead of another workspace's timer due a moment later: 5,000 of
the attacker's made the victim's snooze wake 9.7 s late on a loaded 2-core machine, 20,000 made it
48 s late on a quiet one. Now each workspace has its own due set per partition, a firing round
serves the due workspaces round-robin (a share each), and the worker fires no more per round than
it reads and holds (store/timers.py, server/worker.py _fire_timers); the victim's fired event is
read at once and takes one of the lanes the attacker's share leaves free (server/lanes.py). The
same 20,000 burst; the victim's snooze must wake within WAKE_LATE_S of its due time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from attack_helpers import h, serve, workspace

TICKETS = 20_000   # the burst that made the victim 48 s late before fair firing
WAKE_LATE_S = 2.0   # the victim's snoozed ticket must wake within this of its due time
LEAD_S = 420   # the snoozes are due this long after the test starts: arming 20,000 took 45 s here
# quiet (up to minutes at load 20; before the lanes kept their counts, 436 s, when the test paced
# its posts by the arming)


def _timers_pending(c: httpx.Client) -> int:
    for line in c.get("/metrics").text.splitlines():
        if line.startswith("deskflow_timers_pending "):
            return int(float(line.split()[1]))
    return 0


def _snoozer(c: httpx.Client, keys: dict[str, str], until: str) -> None:
    r = c.post("/v1/rules", headers=h(keys["manager"]), json={
        "name": "snooze", "enabled": True, "triggers": ["ticket.created"],
        "actions": [{"type": "snooze", "until": until}]})
    assert r.status_code == 201, r.text


@pytest.mark.redis
@pytest.mark.slow   # minutes: the timers are armed LEAD_S ahead (DESKFLOW_FULL_TESTS=1 runs it)
@pytest.mark.timeout(1500)
def test_one_workspaces_timer_burst_does_not_delay_anothers_timer(redis_url: str) -> None:
    with serve(redis_url, DESKFLOW_PARTITIONS="1") as url, httpx.Client(base_url=url, timeout=300) as c:
        a, b = workspace(c, "attacker"), workspace(c, "victim")
        due = (datetime.now(UTC) + timedelta(seconds=LEAD_S)).replace(microsecond=0)
        _snoozer(c, a, due.isoformat().replace("+00:00", "Z"))
        victim_due = due + timedelta(seconds=1)
        _snoozer(c, b, victim_due.isoformat().replace("+00:00", "Z"))
        t0 = time.monotonic()
        for start in range(0, TICKETS, 500):   # 40 batch requests, back to back: the whole flood
            r = c.post("/v1/events", headers=h(a["ingest"]), json={"events": [
                {"id": f"a-{i}", "type": "ticket.created", "ticket": {"id": f"A-{i}"}}
                for i in range(start, start + 500)]})
            assert r.status_code == 202, r.text
        r = c.post("/v1/events", headers=h(b["ingest"]),
                   json={"id": "b-1", "type": "ticket.created", "ticket": {"id": "B-1"}})
        assert r.status_code in (200, 202), r.text
        while datetime.now(UTC) < due:   # every snooze armed (the victim's behind the attacker's)
            if _timers_pending(c) >= TICKETS + 1:
                break
            time.sleep(0.5)
        armed_s = time.monotonic() - t0
        assert datetime.now(UTC) < due, f"arming {TICKETS} timers took {armed_s:.0f} s"
        woke = None
        while woke is None and datetime.now(UTC) < victim_due + timedelta(seconds=120):
            t = c.get("/v1/tickets/B-1", headers=h(b["viewer"])).json()
            if not t.get("snoozed_until"):
                woke = datetime.now(UTC)
            time.sleep(0.05)
        assert woke is not None, "the victim's ticket never woke"
        late = (woke - victim_due).total_seconds()
        print(f"victim woke {late:.2f} s after its due time; arming took {armed_s:.0f} s")
        assert late < WAKE_LATE_S, f"the victim's snooze woke {late:.1f} s late ({TICKETS} of the attacker's first)"
