"""The scrape of /metrics: this process's metrics (server/metrics.py), then the store's gauges.

Queue lag and pending timers are not counted as they happen: they are read from the store at
scrape time (`collect_store_gauges`, bounded by a short timeout), because any process -- an API
process that never runs a worker included -- can then report the shared queue. A scrape never
hangs or fails when Redis is down: it answers with `deskflow_store_up 0` and the process counters.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from redis.exceptions import RedisError

from server.metrics import METRICS, Metrics
from server.store import keys as K
from server.store import timers as timer_store
from server.store.cluster_metrics import render_cluster
from server.store.connect import Store
from server.store.errors import StoreUnavailable

__all__ = ["CONTENT_TYPE", "SCRAPE_TIMEOUT_S", "collect_store_gauges", "render"]

# generate_latest writes the classic text format (our names need no escaping): say so.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_TIMEOUT_S = 1.0


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


async def _read_queue(store: Store) -> list[tuple[int, int, int, int | None, int]]:
    """Per partition: (n, stream length, pending, oldest entry ms or None, timers). One pipeline of
    single-key commands (each in its own partition's slot, so it works on Redis Cluster); the timers
    per partition from store/timers.pending (a set per workspace)."""
    parts = store.settings.partitions
    async with store.redis.pipeline(transaction=False) as p:
        for n in range(parts):
            p.xlen(K.stream(n))
            p.xpending(K.stream(n), K.GROUP)
            p.xrange(K.stream(n), count=1)
        replies = await p.execute(raise_on_error=False)
    out = []
    for n in range(parts):
        length, pending, first = replies[3 * n: 3 * n + 3]
        if isinstance(length, Exception):
            raise length
        # NOGROUP (a stream not created yet) is an empty partition, not an outage
        npending = 0 if isinstance(pending, Exception) else int(pending["pending"])
        oldest = None if isinstance(first, Exception) or not first else _entry_ms(first[0][0])
        out.append((n, int(length), npending, oldest, await timer_store.pending(store, n)))
    return out


async def collect_store_gauges(store: Store, *, timeout: float = SCRAPE_TIMEOUT_S) -> CollectorRegistry:
    """A fresh registry with the store's gauges: queue length, pending and lag per partition,
    timers pending, and whether the store answered within `timeout` at all."""
    reg = CollectorRegistry(auto_describe=True)
    up = Gauge("deskflow_store_up", "1 if the store answered this scrape in time, else 0.",
               registry=reg)
    try:
        rows = await asyncio.wait_for(_read_queue(store), timeout)
    except (StoreUnavailable, RedisError, OSError, TimeoutError):
        up.set(0)
        return reg
    up.set(1)
    length = Gauge("deskflow_queue_length", "Events in the partition's stream not yet applied "
                   "(applied entries are deleted).", ["partition"], registry=reg)
    pending = Gauge("deskflow_queue_pending", "Events read by a worker and not yet acknowledged.",
                    ["partition"], registry=reg)
    lag = Gauge("deskflow_queue_oldest_age_seconds", "Age of the partition's oldest event not yet "
                "applied (0 when empty): the queue lag.", ["partition"], registry=reg)
    timers = Gauge("deskflow_timers_pending", "Timers set and not yet fired (all partitions).",
                   registry=reg)
    now_ms = time.time() * 1000
    for n, size, npending, oldest, ntimers in rows:
        length.labels(str(n)).set(size)
        pending.labels(str(n)).set(npending)
        lag.labels(str(n)).set(max(0.0, (now_ms - oldest) / 1000) if oldest is not None else 0.0)
        timers.inc(ntimers)
    return reg


async def render(store: Store | None, *, metrics: Metrics = METRICS,
                 timeout: float = SCRAPE_TIMEOUT_S, detailed: bool | None = None) -> bytes:
    """The text exposition: this process's metrics, then the store's gauges (if a store). Rule ids
    and hosts appear only when `detailed` — by default, when the scrape needs a metrics token."""
    if detailed is None:
        detailed = bool(store is not None and store.settings.metrics_token)
    text = generate_latest(metrics.registry if detailed else metrics.public)
    if store is not None:
        text += generate_latest(await collect_store_gauges(store, timeout=timeout))
        text += render_cluster(store.redis)   # per-node errors and failover retries (cluster)
    return text
