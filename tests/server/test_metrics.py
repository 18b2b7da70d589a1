"""/metrics: prometheus-client exposition, the typed helpers, queue gauges read at scrape time, and
a scrape that answers quickly when Redis is refused or hangs."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_helpers import Workspace, event
from starlette.testclient import TestClient

from server import metrics as M
from server import metrics_scrape as S
from server.app import create_app
from server.settings import Settings
from server.store import keys as K
from server.store.connect import close_store, open_store
from testkit import free_port


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels): parsing also proves the format."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(reg: M.Metrics, name: str, **labels: str) -> float:
    return reg.registry.get_sample_value(name, labels) or 0.0


def test_helpers_record_with_bounded_labels() -> None:
    m = M.Metrics(process=False)
    M.count_event_received("ticket.created", "queued", metrics=m)
    M.count_event_received("made.up", "queued", metrics=m)
    M.observe_event_applied("message.received", 0.02, metrics=m)
    M.count_event_failed("ticket.updated", metrics=m)
    M.count_rule_matches(["rule_a", "rule_b", "rule_a"], metrics=m)
    M.observe_script_run("timeout", 5.0, metrics=m)
    M.observe_script_run("weird", 0.1, metrics=m)
    M.observe_script_run("memory_limit", 0.2, metrics=m)
    M.count_broker_call("CRM.example.com", 200, metrics=m)
    M.count_broker_call("crm.example.com", "refused", metrics=m)
    M.observe_timer_lateness(0.3, metrics=m)
    M.count_webhook_delivery("delivered", metrics=m)

    assert _value(m, "deskflow_events_received_total", type="ticket.created", status="queued") == 1
    assert _value(m, "deskflow_events_received_total", type="other", status="queued") == 1
    assert _value(m, "deskflow_events_processed_total", type="message.received") == 1
    assert _value(m, "deskflow_event_apply_seconds_count", type="message.received") == 1
    assert _value(m, "deskflow_event_apply_seconds_bucket", type="message.received", le="0.025") == 1
    assert _value(m, "deskflow_event_apply_seconds_bucket", type="message.received", le="0.01") == 0
    assert _value(m, "deskflow_events_failed_total", type="ticket.updated") == 1
    assert _value(m, "deskflow_rule_matches_total", rule="rule_a") == 2
    assert _value(m, "deskflow_rule_matches_total", rule="rule_b") == 1
    assert _value(m, "deskflow_script_run_seconds_count", outcome="timeout") == 1
    assert _value(m, "deskflow_script_run_seconds_sum", outcome="timeout") == 5.0
    assert _value(m, "deskflow_script_run_seconds_count", outcome="other") == 1
    assert _value(m, "deskflow_script_run_seconds_count", outcome="memory_limit") == 1
    assert _value(m, "deskflow_broker_calls_total", host="crm.example.com", status="200") == 1
    assert _value(m, "deskflow_broker_calls_total", host="crm.example.com", status="refused") == 1
    assert _value(m, "deskflow_timer_lateness_seconds_bucket", le="0.5") == 1
    assert _value(m, "deskflow_webhook_deliveries_total", state="delivered") == 1


def test_observe_applied_reads_the_run_record() -> None:
    m = M.Metrics(process=False)
    event = {"id": "time_rules@1", "type": "time.reached", "ticket": {"id": "T-1"},
             "timer": {"reason": "time_rules", "due_at": "2026-11-23T08:00:00.000Z"}}
    run = {"matched": ["rule_1", "rule_2"],
           "http_calls": [{"method": "GET", "url": "https://crm.example.com/a?x=1", "status": 200}],
           "scripts": [
               {"name": "s", "error": None, "duration_ms": 12.0,
                "http_calls": [{"method": "GET", "url": "https://crm.example.com/b", "status": 503},
                               {"method": "GET", "url": "http://10.0.0.1/", "refused": "private"}]},
               {"name": "t", "error": {"code": "timeout", "message": "5 s"}, "duration_ms": 5000.0,
                "http_calls": []}]}
    now = datetime(2026, 11, 23, 8, 0, 1, 500000, tzinfo=UTC)
    M.observe_applied(event, run, 0.004, now=now, metrics=m)
    M.observe_applied({"type": "ticket.created"}, None, 0.002, metrics=m)
    assert _value(m, "deskflow_events_processed_total", type="time.reached") == 1
    assert _value(m, "deskflow_events_processed_total", type="ticket.created") == 1
    assert _value(m, "deskflow_rule_matches_total", rule="rule_2") == 1
    assert _value(m, "deskflow_script_run_seconds_count", outcome="ok") == 1
    assert _value(m, "deskflow_script_run_seconds_sum", outcome="timeout") == 5.0
    assert _value(m, "deskflow_broker_calls_total", host="crm.example.com", status="200") == 1
    assert _value(m, "deskflow_broker_calls_total", host="crm.example.com", status="503") == 1
    # a refused call's host is the script's choice: never a label of its own
    assert _value(m, "deskflow_broker_calls_total", host="10.0.0.1", status="refused") == 0
    assert _value(m, "deskflow_broker_calls_total", host="other", status="refused") == 1
    assert _value(m, "deskflow_timer_lateness_seconds_count") == 1
    assert _value(m, "deskflow_timer_lateness_seconds_sum") == 1.5


def test_registries_are_independent_and_old_call_sites_still_count() -> None:
    a, b = M.Metrics(process=False), M.Metrics(process=False)  # no "duplicated timeseries" error
    a.inc("deskflow_events_processed_total")
    a.inc("deskflow_events_ingested_total", type="ticket.created")
    a.inc("deskflow_events_duplicate_total")
    a.observe("deskflow_event_apply_seconds", 0.5)
    assert _value(a, "deskflow_events_processed_total", type="other") == 1
    assert _value(a, "deskflow_events_received_total", type="ticket.created", status="queued") == 1
    assert _value(a, "deskflow_events_received_total", type="other", status="duplicate") == 1
    assert _value(a, "deskflow_event_apply_seconds_sum", type="other") == 0.5
    assert _value(b, "deskflow_events_processed_total", type="other") == 0
    with pytest.raises(KeyError):
        a.inc("deskflow_no_such_metric_total")


def test_scrape_counts_requests_by_route_and_reports_every_partition(
        settings: Settings, client: TestClient, ws: Workspace) -> None:
    before = _value(M.METRICS, "deskflow_http_requests_total", method="GET",
                    route="/v1/tickets/{ticket_id}", status="200")
    ws.send(event("m-1", tid="T-77"))
    for _ in range(3):
        assert client.get("/v1/tickets/T-77", headers=ws.h("viewer")).status_code == 200
    assert client.get("/v1/tickets/T-77", headers={"Authorization": "Bearer nope"}).status_code == 401

    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = _samples(r.text)
    key = ("deskflow_http_requests_total",
           (("method", "GET"), ("route", "/v1/tickets/{ticket_id}"), ("status", "200")))
    assert got[key] - before == 3
    assert got[("deskflow_http_requests_total",
                (("method", "GET"), ("route", "unmatched"), ("status", "401")))] >= 1
    assert got[("deskflow_store_up", ())] == 1
    for n in range(settings.partitions):
        assert ("deskflow_queue_length", (("partition", str(n)),)) in got
        assert ("deskflow_queue_oldest_age_seconds", (("partition", str(n)),)) in got
    # the worker applied m-1: nothing left, no lag
    assert sum(v for (name, _), v in got.items() if name == "deskflow_queue_length") == 0
    assert ("deskflow_timers_pending", ()) in got
    assert ("process_resident_memory_bytes", ()) in got


@pytest.mark.anyio
async def test_queue_gauges_show_length_pending_and_lag(settings: Settings) -> None:
    store = await open_store(settings)
    try:
        from server.store import events

        await events.ensure_groups(store)
        # An entry from long ago (explicit id: 1 s after the epoch) and a fresh one, partition 1
        await store.redis.xadd(K.stream(1), {"w": "x", "e": "{}"}, id="1000-0")
        await store.redis.xadd(K.stream(1), {"w": "x", "e": "{}"})
        await store.redis.xadd(K.stream(2), {"w": "x", "e": "{}"})
        got = await events.read_entries(store, "c1", [2], count=10, block_ms=None)
        assert len(got[2]) == 1  # delivered, not acked: pending
        await store.redis.zadd(K.timers(3), {"a": 1, "b": 2})
        text = (await S.render(store, metrics=M.Metrics(process=False))).decode()
    finally:
        await close_store(store)
    got2 = _samples(text)
    assert got2[("deskflow_store_up", ())] == 1
    assert got2[("deskflow_queue_length", (("partition", "1"),))] == 2
    assert got2[("deskflow_queue_pending", (("partition", "1"),))] == 0
    assert got2[("deskflow_queue_pending", (("partition", "2"),))] == 1
    assert got2[("deskflow_queue_oldest_age_seconds", (("partition", "1"),))] > time.time() - 10
    assert got2[("deskflow_queue_oldest_age_seconds", (("partition", "0"),))] == 0
    assert got2[("deskflow_timers_pending", ())] == 2


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a hung Redis."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


@pytest.mark.anyio
async def test_scrape_gives_up_on_a_hung_store(silent_server: int) -> None:
    # redis_cluster=False: a single Redis, said outright; the "is it a cluster?" probe would wait
    # 20 s on the silent port at open, before the scrape this test times
    settings = Settings(redis_url=f"redis://127.0.0.1:{silent_server}/0", data_file=None,
                        partitions=4, redis_cluster=False)
    store = await open_store(settings)
    try:
        started = time.monotonic()
        text = (await S.render(store, metrics=M.Metrics(process=False), timeout=0.3)).decode()
        assert time.monotonic() - started < 2
    finally:
        await store.redis.aclose()
    got = _samples(text)
    assert got[("deskflow_store_up", ())] == 0
    assert not any(name == "deskflow_queue_length" for name, _ in got)


def test_scrape_with_redis_refused_is_200_and_store_down() -> None:
    down = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", data_file=None, partitions=4)
    with TestClient(create_app(down)) as c:
        started = time.monotonic()
        r = c.get("/metrics")
        assert time.monotonic() - started < 3
        assert r.status_code == 200
        got = _samples(r.text)
        assert got[("deskflow_store_up", ())] == 0
        assert c.get("/readyz").status_code == 503


# -- issue 13 A7 / B13: no attacker-chosen or per-workspace label values ---------------------------

def test_refused_hosts_share_one_label_and_hosts_are_capped() -> None:
    m = M.Metrics(process=False)
    M.count_broker_calls([{"method": "GET", "url": f"http://h{i}.evil.example/", "refused": "no"}
                          for i in range(5000)], metrics=m)
    M.count_broker_calls([{"method": "GET", "url": f"https://ok{i}.example/", "status": 200}
                          for i in range(M.MAX_HOST_LABELS + 300)], metrics=m)
    M.count_broker_call("x.example", "<script>", metrics=m)
    hosts = {s.labels["host"] for f in m.registry.collect() if f.name == "deskflow_broker_calls"
             for s in f.samples}
    assert len(hosts) <= M.MAX_HOST_LABELS + 1 and "other" in hosts
    assert _value(m, "deskflow_broker_calls_total", host="other", status="refused") == 5000
    assert _value(m, "deskflow_broker_calls_total", host="other", status="200") == 300
    statuses = {s.labels["status"] for f in m.registry.collect() if f.name == "deskflow_broker_calls"
                for s in f.samples}
    assert statuses == {"refused", "200", "other"}


def test_the_public_scrape_shows_no_rule_ids_or_hosts() -> None:
    m = M.Metrics(process=False)
    M.count_rule_matches(["rule_secret_a", "rule_secret_b", "rule_secret_a"], metrics=m)
    M.count_broker_call("crm.tenant-a.example", 200, metrics=m)
    M.count_broker_call("crm.tenant-b.example", 200, metrics=m)
    import asyncio
    public = asyncio.run(S.render(None, metrics=m)).decode()
    assert "rule_secret" not in public and "tenant-a" not in public
    got = _samples(public)
    assert got[("deskflow_rule_matches_total", (("rule", "all"),))] == 3
    assert got[("deskflow_broker_calls_total", (("host", "all"), ("status", "200")))] == 2
    detailed = asyncio.run(S.render(None, metrics=m, detailed=True)).decode()
    assert 'rule="rule_secret_a"' in detailed and 'host="crm.tenant-b.example"' in detailed


def test_metrics_over_http_hide_rule_ids_without_a_token(client: TestClient, ws: Workspace) -> None:
    rule = ws.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["x"]}])
    ws.send(event("mt-1", tid="T-mt"))
    text = client.get("/metrics").text
    assert rule["id"] not in text and 'rule="all"' in text


def test_metrics_with_a_token_show_rule_ids(settings: Settings) -> None:
    from dataclasses import replace
    with TestClient(create_app(replace(settings, metrics_token="m-tok"), worker=True)) as c:
        w = Workspace(c)
        rule = w.rule(name="tag", triggers=["ticket.created"], actions=[{"type": "add_tags", "tags": ["x"]}])
        w.send(event("mt-2", tid="T-mt2"))
        assert c.get("/metrics").status_code == 401
        text = c.get("/metrics", headers={"Authorization": "Bearer m-tok"}).text
        assert f'rule="{rule["id"]}"' in text
