"""The worker's batched counters (server/tallies.py): while passes are in flight the usage and
stats batches wait for BATCH_EVERY_S (not every round trip), when none is they go at once, and
either way every fire and event is counted exactly once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from server import tallies as T
from server.metrics import Metrics
from server.settings import Settings

AT = "2026-11-23T08:00:00.5Z"
HOUR = 498_728   # its whole hours since the epoch


class _Pipe:
    """Records what is queued on it, as (command, args)."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.queued.append((name, args))


def _tallies(*, embedded: bool = True) -> T.Tallies:
    store: Any = SimpleNamespace(settings=Settings(redis_url="redis://unused"), embedded=embedded)
    return T.Tallies(store)


def _run(n: int, fired: list[str]) -> dict[str, Any]:
    return {"id": f"run_{n}", "at": AT, "matched": fired, "rules": []}


EVENT = {"id": "e", "type": "ticket.updated", "ticket": {"id": "T-1"}}


def _value(m: Metrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


def _fires(queued: list[tuple[str, tuple[Any, ...]]], rule: str) -> int:
    """The rule's hourly fires in the plain commands queued (the in-process store's form)."""
    return sum(int(args[2]) for name, args in queued
               if name == "hincrby" and args[0].endswith(f":rule-stats:{rule}")
               and args[1] == f"h:{HOUR}")


def test_while_passes_are_in_flight_the_batch_waits_until_due() -> None:
    t = _tallies()
    t.in_flight = 3
    for i in range(5):
        t.add("ws", EVENT, _run(i, ["r1", "r2"] if i % 2 else ["r1"]), {"id": "T-1"}, 0.001)
    p = _Pipe()
    assert t.queue(p) is None and p.queued == []   # a round trip of the passes: not yet
    assert t   # still batched
    t._usage_at -= T.BATCH_EVERY_S                  # due now
    done = t.queue(p)
    assert done is not None
    done(True)
    assert _fires(p.queued, "r1") == 5 and _fires(p.queued, "r2") == 2
    assert any(name == "hincrby" and args[1] == f"e:{HOUR}" and args[2] == 5
               for name, args in p.queued)          # the workspace chart's events, once
    assert not t
    again = _Pipe()
    assert t.queue(again) is None and again.queued == []   # nothing counted twice


def test_with_no_pass_in_flight_the_batch_goes_with_the_next_round_trip() -> None:
    t = _tallies()
    t.add("ws", EVENT, _run(1, ["r1"]), {"id": "T-1"}, 0.001)
    p = _Pipe()
    done = t.queue(p)
    assert done is not None and _fires(p.queued, "r1") == 1


def test_a_batch_not_sent_joins_the_next_one() -> None:
    t = _tallies()
    t.add("ws", EVENT, _run(1, ["r1"]), {"id": "T-1"}, 0.001)
    lost = t.queue(_Pipe())
    assert lost is not None
    lost(False)                                      # the round trip failed
    t.add("ws", EVENT, _run(2, ["r1"]), {"id": "T-1"}, 0.001)
    p = _Pipe()
    done = t.queue(p)
    assert done is not None and _fires(p.queued, "r1") == 2


def test_due_sends_the_batch_though_passes_are_in_flight() -> None:
    t = _tallies()
    t.in_flight = 1
    t.add("ws", EVENT, _run(1, ["r1"]), {"id": "T-1"}, 0.001)
    t.due()   # (shutdown's flush)
    p = _Pipe()
    assert t.queue(p) is not None and _fires(p.queued, "r1") == 1


def test_prometheus_counters_are_added_when_due_and_exactly() -> None:
    t = _tallies()
    m = Metrics(process=False)
    t._counts.metrics = m
    t.in_flight = 2
    for i in range(3):
        t.add("ws", EVENT, _run(i, ["r1"]), {"id": "T-1"}, 0.001)
    t.counted()   # an ack while passes are in flight, not due
    assert _value(m, "deskflow_rule_matches_total", rule="r1") == 0
    t._counts_at -= T.BATCH_EVERY_S
    t.counted()
    assert _value(m, "deskflow_rule_matches_total", rule="r1") == 3
    assert _value(m, "deskflow_events_processed_total", type="ticket.updated") == 3
    t.add("ws", EVENT, _run(9, ["r1"]), {"id": "T-1"}, 0.001)
    t.in_flight = 0
    t.counted()   # no pass in flight: at once
    assert _value(m, "deskflow_rule_matches_total", rule="r1") == 4
