"""Prometheus metrics: the metric objects, typed helpers to record them, and the HTTP middleware.

Everything lives in one `CollectorRegistry` per `Metrics` object -- never prometheus_client's
global default -- so tests can build registries side by side. `METRICS` is the process's own;
the helpers below (`count_event_received`, `observe_event_applied`, ...) record into it, and are
what the rest of the code calls: one name per fact, label values checked here so that a stray
value cannot blow up the number of series (an unknown event type is counted as "other").

Queue lag and pending timers are not counted as they happen: they are read from the store at
scrape time (server/metrics_scrape.py, which renders the scrape).

With uvicorn `--workers N` (or several API containers) each process has its own counters and a
scrape sees one process: scrape each process (one per container), as Prometheus expects.

Tenants (issue 13 A7, B13): `/metrics` needs no key unless DESKFLOW_METRICS_TOKEN is set, and one
process serves every workspace. Without a token the scrape therefore shows no per-workspace
identifier: rule ids and broker hosts are summed into `rule="all"` / `host="all"` (`public`).
With a token the scrape is the operator's and shows them. Even then a broker host label is only
a host the call was allowed to reach (on that workspace's allow-list); refused calls, whose URL
the script chose, count under `other`, and at most MAX_HOST_LABELS distinct hosts get a series.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import (
    CollectorRegistry,
    Metric,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rules import TRIGGERS

__all__ = [
    "Metrics", "METRICS", "MetricsMiddleware",
    "count_event_received", "observe_event_applied", "count_event_failed", "count_rule_matches",
    "observe_script_run", "count_broker_call", "count_broker_calls", "observe_timer_lateness",
    "count_webhook_delivery", "observe_applied", "AppliedCounts", "count_rule_compile_failure",
]

# `_created` series double every counter for a timestamp nobody graphs here.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Label vocabularies: anything else is folded into "other" so a bug or odd input cannot create
# unbounded series. Event types are the engine's triggers (every type a worker applies).
_EVENT_TYPES = frozenset(TRIGGERS)
_RECEIVED = frozenset({"queued", "duplicate"})
# "ok", or the run's error code (sandbox/child.py, sandbox/pool.py, server/scripting.py)
_SCRIPT_OUTCOMES = frozenset({
    "ok", "script_error", "timeout", "cpu_limit", "memory_limit", "sandbox_crash", "invalid_output",
    "output_size_limit", "http_calls_limit", "log_limit", "response_size_limit", "script_not_found",
    "busy"})
_WEBHOOK_STATES = frozenset({"delivered", "retrying", "failed", "dead"})
# Latency buckets (seconds): an event applies in ~1-50 ms, a script may take up to its 30 s limit.
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LATE = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
# How long a scrape may spend reading the store before it gives up (store_up 0).
MAX_HOST_LABELS = 200     # distinct broker host label values per process; more count as "other"
# family -> the label that names a workspace's own things (summed away in the public scrape)
_TENANT_LABELS = {"deskflow_rule_matches": "rule", "deskflow_broker_calls": "host"}


def _pick(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else "other"


class Metrics:
    """A registry with every deskflow metric. One per process in production (`METRICS`)."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.public = _Public(self.registry)
        self.hosts: set[str] = set()
        r = self.registry
        if process:  # CPU, memory, open fds, start time of this process (Linux /proc)
            ProcessCollector(registry=r)
        self.http_requests = Counter(
            "deskflow_http_requests", "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"], registry=r)
        self.http_seconds = Histogram(
            "deskflow_http_request_seconds", "Time to answer an HTTP request, by route.",
            ["route"], buckets=_FAST, registry=r)
        self.events_received = Counter(
            "deskflow_events_received", "Events accepted by POST /v1/events, by type and "
            "status (queued, or duplicate of an event id already seen).",
            ["type", "status"], registry=r)
        self.events_processed = Counter(
            "deskflow_events_processed", "Events applied by the workers of this process, by type.",
            ["type"], registry=r)
        self.events_failed = Counter(
            "deskflow_events_failed", "Stream entries a worker could not apply (a bug or a poison "
            "entry; logged with its ids), by type.", ["type"], registry=r)
        self.event_seconds = Histogram(
            "deskflow_event_apply_seconds", "Time to load, automate and store one event, by type.",
            ["type"], buckets=_FAST, registry=r)
        self.rule_compile_failures = Counter(
            "deskflow_rule_compile_failures", "A workspace's rule compiles that failed (its events "
            "wait and the compile is tried again; logged with the workspace), by reason: timeout, "
            "too_large, unavailable (the compile process stopped) or error.", ["reason"], registry=r)
        self.rule_matches = Counter(
            "deskflow_rule_matches", "Times a rule matched an event, by rule id.", ["rule"],
            registry=r)
        self.script_seconds = Histogram(
            "deskflow_script_run_seconds", "Script runs by outcome and duration (its _count is the "
            "number of runs per outcome).", ["outcome"], buckets=_FAST, registry=r)
        self.broker_calls = Counter(
            "deskflow_broker_calls", "HTTP calls made for scripts and http_request actions, by "
            "host and status (the HTTP status, or the reason no answer came: refused, timeout, "
            "error).", ["host", "status"], registry=r)
        self.timer_lateness = Histogram(
            "deskflow_timer_lateness_seconds", "How long after its due time a timer's event was "
            "applied.", buckets=_LATE, registry=r)
        self.webhook_deliveries = Counter(
            "deskflow_webhook_deliveries", "Webhook delivery attempts by resulting state.",
            ["state"], registry=r)

    # -- compatibility: the call sites written before prometheus-client -------------------------

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Old call sites (`METRICS.inc("deskflow_events_processed_total")`) keep working; new code
        calls the typed helpers, which also know the event type."""
        etype = _pick(labels.get("type", "other"), _EVENT_TYPES)
        if name == "deskflow_events_ingested_total":
            self.events_received.labels(etype, "queued").inc(amount)
        elif name == "deskflow_events_duplicate_total":
            self.events_received.labels(etype, "duplicate").inc(amount)
        elif name == "deskflow_events_processed_total":
            self.events_processed.labels(etype).inc(amount)
        elif name == "deskflow_events_failed_total":
            self.events_failed.labels(etype).inc(amount)
        else:
            raise KeyError(f"unknown metric {name!r}: use a helper of server/metrics.py")

    def observe(self, name: str, seconds: float) -> None:
        if name != "deskflow_event_apply_seconds":
            raise KeyError(f"unknown metric {name!r}: use a helper of server/metrics.py")
        self.event_seconds.labels("other").observe(seconds)


class _Public:
    """The registry as an unauthenticated scrape may see it: tenant labels summed into "all"."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def restricted_registry(self, names: Iterable[str]) -> _Public:
        """prometheus_client's `?name[]=` filter (start_http_server asks for it)."""
        return _Public(self.registry.restricted_registry(names))

    def collect(self) -> Iterable[Metric]:
        for family in self.registry.collect():
            label = _TENANT_LABELS.get(family.name)
            if label is None:
                yield family
                continue
            sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            for sample in family.samples:
                key = (sample.name, tuple(sorted({**sample.labels, label: "all"}.items())))
                sums[key] = sums.get(key, 0.0) + sample.value
            merged = Metric(family.name, family.documentation, family.type)
            for (name, labels), value in sums.items():
                merged.add_sample(name, dict(labels), value)
            yield merged


METRICS = Metrics()


# -- typed helpers (the API the rest of the code calls) -----------------------------------------


def count_event_received(event_type: str, status: str, *, metrics: Metrics = METRICS) -> None:
    """One event answered by POST /v1/events: status "queued" or "duplicate"."""
    metrics.events_received.labels(_pick(event_type, _EVENT_TYPES), _pick(status, _RECEIVED)).inc()


def observe_event_applied(event_type: str, seconds: float, *, metrics: Metrics = METRICS) -> None:
    """One event applied by a worker (not a skipped redelivery), and how long it took."""
    etype = _pick(event_type, _EVENT_TYPES)
    metrics.events_processed.labels(etype).inc()
    metrics.event_seconds.labels(etype).observe(seconds)


def count_event_failed(event_type: str, *, metrics: Metrics = METRICS) -> None:
    metrics.events_failed.labels(_pick(event_type, _EVENT_TYPES)).inc()


_COMPILE_FAILURES = frozenset({"timeout", "too_large", "unavailable", "error"})


def count_rule_compile_failure(reason: str, *, metrics: Metrics = METRICS) -> None:
    metrics.rule_compile_failures.labels(_pick(reason, _COMPILE_FAILURES)).inc()


def count_rule_matches(rule_ids: Iterable[str], *, metrics: Metrics = METRICS) -> None:
    """The rules that matched one event (a run's `matched` list)."""
    for rule_id in rule_ids:
        metrics.rule_matches.labels(str(rule_id)).inc()


def observe_script_run(outcome: str, seconds: float, *, metrics: Metrics = METRICS) -> None:
    """One script run: outcome "ok" or its error code (timeout, memory_limit, script_error...)."""
    metrics.script_seconds.labels(_pick(outcome, _SCRIPT_OUTCOMES)).observe(seconds)


def count_broker_call(host: str, status: int | str, *, metrics: Metrics = METRICS) -> None:
    """One HTTP call through the broker: its host and the HTTP status (or refused/timeout/error).
    The caller passes an allow-listed host (or "other"); past MAX_HOST_LABELS distinct hosts every
    new one is "other", so no input can grow the series without bound."""
    label = host.lower()[:253] or "other"
    if label != "other" and label not in metrics.hosts:
        if len(metrics.hosts) >= MAX_HOST_LABELS:
            label = "other"
        else:
            metrics.hosts.add(label)
    metrics.broker_calls.labels(label, str(status) if str(status).isdigit() or status in (
        "refused", "error", "timeout") else "other").inc()


def count_broker_calls(calls: Iterable[Mapping[str, Any]], *, metrics: Metrics = METRICS) -> None:
    """The broker's call records (a run's `http_calls`, a script entry's `http_calls`): each has a
    `url` and a `status`, or `refused` / `error` when no answer came. A refused call's URL is
    whatever the script wrote: its host is never a label ("other"); a call that got an answer or
    failed after the allow-list check was to an allow-listed host."""
    for call in calls:
        status = call.get("status")
        if status is None:
            status = "refused" if "refused" in call else "error"
        host = "other"
        if status != "refused" and not str(call.get("error", "")).startswith("internal error"):
            try:
                host = urlsplit(str(call.get("url", ""))).hostname or "other"
            except ValueError:
                host = "other"
        count_broker_call(host, status, metrics=metrics)


def observe_timer_lateness(seconds: float, *, metrics: Metrics = METRICS) -> None:
    """A timer's generated event was applied `seconds` after its due time."""
    metrics.timer_lateness.observe(max(0.0, seconds))


def count_webhook_delivery(state: str, *, metrics: Metrics = METRICS) -> None:
    """One webhook delivery attempt ended in `state`: delivered, retrying, failed or dead."""
    metrics.webhook_deliveries.labels(_pick(state, _WEBHOOK_STATES)).inc()


def observe_applied(event: Mapping[str, Any], run: Mapping[str, Any] | None, seconds: float, *,
                    now: datetime | None = None, metrics: Metrics = METRICS) -> None:
    """Everything one applied event tells, in one call: the event by type and its latency; from
    its run record the rules that matched, each script run and every broker call; and for a
    timer's event, how late it was applied (`now` - the timer's due_at)."""
    counts = AppliedCounts(metrics)
    counts.add(event, run, seconds, now=now)
    counts.flush()


class AppliedCounts:
    """observe_applied for a batch of events (the worker's): the counters are added up in memory
    and written by `flush`, once per partition round, instead of one `labels().inc()` per fired
    rule per event (about 14 per event in the apply benchmark). Histograms (latency, script
    runs, timer lateness) are observed as each event comes; a scrape sees the counters at most a
    round late."""

    def __init__(self, metrics: Metrics = METRICS) -> None:
        self.metrics = metrics
        self._rules: collections.Counter[str] = collections.Counter()
        self._types: collections.Counter[str] = collections.Counter()
        self._latency: dict[str, Any] = {}   # event type -> its event_seconds child (labels() once)

    def add(self, event: Mapping[str, Any], run: Mapping[str, Any] | None, seconds: float, *,
            now: datetime | None = None) -> None:
        m = self.metrics
        etype = _pick(str(event.get("type", "")), _EVENT_TYPES)
        self._types[etype] += 1
        latency = self._latency.get(etype)
        if latency is None:
            latency = self._latency[etype] = m.event_seconds.labels(etype)
        latency.observe(seconds)
        if run:
            self._rules.update(map(str, run.get("matched") or ()))
            scripts, calls = run.get("scripts"), run.get("http_calls")
            if scripts or calls:
                calls = list(calls or [])
                for script in scripts or []:
                    error = script.get("error")
                    outcome = (str(error.get("code", "script_error")) if isinstance(error, dict)
                               else "ok")
                    observe_script_run(outcome, float(script.get("duration_ms") or 0) / 1000,
                                       metrics=m)
                    calls += script.get("http_calls") or []
                count_broker_calls(calls, metrics=m)
        timer = event.get("timer")
        if isinstance(timer, Mapping) and isinstance(timer.get("due_at"), str):
            try:
                due = datetime.fromisoformat(timer["due_at"].replace("Z", "+00:00"))
            except ValueError:
                return
            observe_timer_lateness(((now or datetime.now(UTC)) - due).total_seconds(), metrics=m)

    def flush(self) -> None:
        m = self.metrics
        types, rules, self._types, self._rules = self._types, self._rules, collections.Counter(), \
            collections.Counter()
        for etype, n in types.items():
            m.events_processed.labels(etype).inc(n)
        for rule_id, n in rules.items():
            m.rule_matches.labels(rule_id).inc(n)


# -- HTTP requests ------------------------------------------------------------------------------


class MetricsMiddleware:
    """Pure ASGI: counts every HTTP answer by method, route template and status, and times it.
    The route is the matched route's path template (`/v1/tickets/{id}`), never the raw path, so
    ids do not become series; an unmatched path is "unmatched"."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics = METRICS) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            self.metrics.http_requests.labels(scope["method"], name, str(status)).inc()
            self.metrics.http_seconds.labels(name).observe(time.perf_counter() - started)
