"""What DESKFLOW_REDIS_WAIT_REPLICAS=1 costs on a Redis Cluster: ingest events/s and latency with
and without WAIT, in the same run, on the same local 3 masters + 3 replicas cluster.

    python bench/cluster_bench.py            # ~1 min on 2 cores
    python bench/cluster_bench.py --quick    # smoke run

Needs the `redis-server` and `redis-cli` binaries (the cluster is started in a temporary
directory, as tests/cluster does, and torn down). What is timed is the store's ingest step,
`store.events.append_events` for one event (the API's 202 path minus HTTP and validation): on a
cluster two rounds (every XADD, then every marker SET NX; store/cluster_ingest.py), each ending
with `WAIT 1 <ms>` per node written when waiting. C concurrent senders, each sending its next
event when the previous one was acknowledged; rounds alternate no-wait / wait to cancel drift,
and the table gives the ratio wait / no-wait of the same run. Replication here is over loopback,
so the figures are a floor of WAIT's cost: on a network it adds one replica round trip more.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE.parent / "tests" / "cluster")]

from cluster_nodes import LocalCluster  # noqa: E402

from server.settings import Settings  # noqa: E402
from server.store.connect import close_store, open_store  # noqa: E402
from server.store.events import append_events  # noqa: E402


async def _round(settings: Settings, tag: str, seconds: float, senders: int) -> tuple[int, list[float]]:
    store = await open_store(settings)
    latencies: list[float] = []
    count = 0
    stop = time.perf_counter() + seconds

    async def sender(k: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < stop:
            event = {"id": f"{tag}-{k}-{i}", "type": "ticket.created",
                     "occurred_at": "2026-11-23T08:00:00Z", "ticket": {"id": f"T-{k}-{i % 50}"}}
            t0 = time.perf_counter()
            [(status, _)] = await append_events(store, "bench", [event])
            latencies.append(time.perf_counter() - t0)
            assert status == "queued", status
            count += 1
            i += 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(sender(k) for k in range(senders)))
        elapsed = time.perf_counter() - started
    finally:
        await close_store(store)
    return int(count / elapsed), latencies


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


async def main(rounds: int, seconds: float, senders: int) -> None:
    with LocalCluster() as cluster:
        base = Settings(redis_url=cluster.url, data_file=None, partitions=16)
        modes = {"no wait": base,
                 "WAIT 1": dataclasses.replace(base, redis_wait_replicas=1, redis_wait_ms=1000)}
        rates: dict[str, list[int]] = {m: [] for m in modes}
        lats: dict[str, list[float]] = {m: [] for m in modes}
        for r in range(rounds):
            for mode, settings in modes.items():
                rate, lat = await _round(settings, f"{mode[:2]}{r}", seconds, senders)
                rates[mode].append(rate)
                lats[mode] += lat
        print(f"\ncluster ingest, 3 masters + 3 replicas on this machine, {senders} senders, "
              f"{rounds} alternated rounds of {seconds:.0f} s\n")
        print("| mode | events/s (median of rounds) | p50 ms | p99 ms | events/s ratio vs no wait |")
        print("|---|---|---|---|---|")
        floor = statistics.median(rates["no wait"])
        for mode in modes:
            med = statistics.median(rates[mode])
            print(f"| {mode} | {med:.0f} | {_pct(lats[mode], 0.5):.2f} | "
                  f"{_pct(lats[mode], 0.99):.2f} | {med / floor:.2f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        asyncio.run(main(rounds=2, seconds=2, senders=8))
    else:
        asyncio.run(main(rounds=4, seconds=6, senders=16))
