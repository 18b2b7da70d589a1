"""server/runrecord.bound_record: a record over the limit is trimmed in order until it fits, and
the size it works from is exact (each trim re-measures only the parts it touched)."""

from __future__ import annotations

import orjson

from server.runrecord import bound_record

LIMIT = 20_000


def _record(ticket: int, logs: int, rules: int) -> dict:
    return {"id": "run_1", "matched": ["r1"],
            "ticket": {"id": "T-1", "version": 3, "description": "d" * ticket},
            "scripts": [{"name": "s", "logs": ["l" * 100] * logs, "updates": {"x": 1}}],
            "changes": {"tags": {"added": ["a"], "removed": []}},
            "rules": [{"id": f"r{i}", "name": "n" * 40, "matched": False, "failed": None}
                      for i in range(rules)]}


def test_a_record_under_the_limit_is_the_same_object():
    rec = _record(100, 1, 1)
    assert bound_record(rec, LIMIT) is rec


def test_trims_stop_as_soon_as_it_fits_and_the_result_fits():
    rec = _record(30_000, 5, 10)   # the ticket copy alone is over
    out = bound_record(rec, LIMIT)
    assert out["trimmed"] == ["ticket (read it at GET /v1/tickets/{id})"]
    assert len(orjson.dumps(out)) <= LIMIT
    assert out["scripts"][0]["logs"] == rec["scripts"][0]["logs"]   # not trimmed: not needed
    assert rec["ticket"]["description"]   # the caller's record is untouched


def test_the_running_size_is_exact_across_several_trims():
    rec = _record(12_000, 250, 10)   # ticket + logs must both go
    out = bound_record(rec, LIMIT)
    assert out["trimmed"][:2] == ["ticket (read it at GET /v1/tickets/{id})", "scripts[].logs"]
    assert len(orjson.dumps(out)) <= LIMIT
    assert "changes" not in out["trimmed"]   # it fitted before the run's own data


def test_an_explain_over_the_limit_trims_everything_else_and_keeps_every_rule():
    rec = _record(5_000, 20, 600)   # `rules` alone ~ 40 KB: never trimmed
    out = bound_record(rec, LIMIT)
    assert len(out["rules"]) == 600 and out["rules"] == rec["rules"]
    assert "changes" in out["trimmed"] and out["changes"] == {"trimmed": True}
    assert out["matched"] == ["r1"] and out["id"] == "run_1"
