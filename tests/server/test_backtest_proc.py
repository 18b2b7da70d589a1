"""The backtest's checking runs in a worker process of its own (server/backtest_proc.py): the
process is not the API's, is reused, is killed when it does not answer past the deadline, and a
killed or crashed process gives the API a truncated answer, never a 500."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import orjson
import pytest
from server_helpers import Workspace, event

from server import backtest_proc as P
from server.api import backtest as B

RULE = {"name": "refunds", "enabled": True, "triggers": ["ticket.created"],
        "conditions": {"all": [{"field": "subject", "op": "contains", "value": "refund"}]},
        "actions": [{"type": "set", "field": "priority", "value": "low"}]}


def _record(i: int, subject: str) -> bytes:
    return orjson.dumps({"id": f"run_{i}", "event_id": f"e{i}", "ticket_id": f"T-{i}",
                         "event_type": "ticket.created", "at": "2026-12-02T10:00:00.000Z",
                         "matched": [], "ticket": {"id": f"T-{i}", "subject": subject, "version": 1},
                         "changes": {}})


READS = {"needs_message": False, "needs_previous": False, "ticket_runs": {}, "history": {},
         "previous_runs": {}}


def test_a_job_checks_in_another_process_that_the_pool_keeps() -> None:
    async def run() -> tuple[int, int, dict[str, Any], list[dict[str, Any]]]:
        job = await P.Job.start(RULE, None, {}, 5.0)
        first = job._proc.pid
        runs = await job.parse([_record(1, "refund please"), _record(2, "hello"), None])
        tally = await job.check(READS, {})
        job.finish()
        again = await P.Job.start(RULE, None, {}, 5.0)
        second = again._proc.pid
        again.finish()
        return first, second, tally, runs

    first, second, tally, runs = asyncio.run(run())
    assert first != os.getpid() and second == first          # not this process; reused
    assert [r["id"] for r in runs] == ["run_1", "run_2"]
    assert (tally["checked"], tally["fired"], tally["skipped"]) == (2, 1, {"expired": 1})
    assert tally["hits"][0]["changes"] == {"priority": [None, "low"]}


def test_a_silent_process_is_killed_past_the_deadline() -> None:
    async def run() -> tuple[Any, float, Exception | None]:
        job = await P.Job.start(RULE, None, {}, 0.2)
        proc = job._proc
        os.kill(proc.pid, signal.SIGSTOP)       # a child that never answers
        t0 = time.monotonic()
        try:
            await job.parse([_record(1, "refund")])
        except P.BacktestProcessError as exc:
            return proc, time.monotonic() - t0, exc
        finally:
            job.finish()
        return proc, time.monotonic() - t0, None

    proc, took, err = asyncio.run(run())
    assert err is not None and "did not answer" in str(err)
    assert took < 0.2 + 3 * P.GRACE_S + 2       # the deadline, its grace, and a loaded machine
    with pytest.raises(ValueError):
        proc.is_alive()                        # killed, reaped and closed


def test_a_dead_backtest_process_answers_truncated_not_500(ws: Workspace, monkeypatch: Any) -> None:
    ws.send(event("e1", tid="T-1", ticket={"subject": "refund"}))
    real = P.Job.parse

    async def dies(self: P.Job, raws: list[Any]) -> list[dict[str, Any]]:
        os.kill(self._proc.pid, signal.SIGKILL)
        return await real(self, raws)

    monkeypatch.setattr(P.Job, "parse", dies)
    r = ws.client.post("/v1/rules/backtest", json={"rule": RULE}, headers=ws.h("manager"))
    assert r.status_code == 200, r.text
    assert r.json()["truncated"] is True and r.json()["checked"] == 0
    monkeypatch.setattr(P.Job, "parse", real)
    again = ws.client.post("/v1/rules/backtest", json={"rule": RULE}, headers=ws.h("manager"))
    assert again.json()["fired"] == 1 and again.json()["truncated"] is False
    assert B._RUNNING == set()
