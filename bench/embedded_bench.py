"""What crash safety costs: events/s of `deskflow serve` on the embedded store, before and after.

Before: the in-process fakeredis saved on a clean shutdown only (DESKFLOW_EMBEDDED_SERVER=none).
After: the managed redis-server with its append-only file fsynced every second (the default).
Each round starts a fresh `serve` of each kind (alternating, so load bursts on this shared
machine hit both), posts EVENTS events in batches of BATCH from THREADS threads, and times from
the first post until /metrics says the worker applied them all (ingest + apply, end to end).
The table gives the median over the rounds and the ratio after / before from the same run.

    python bench/embedded_bench.py [--rounds 3] [--events 600]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from testkit import free_port, wait_answering  # noqa: E402 -- the tests' own start-up wait

ROOT = "bench-root"


def _processed(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("deskflow_events_processed_total"))


def one_run(engine: str, events: int, batch: int, threads: int) -> float:
    tmp = tempfile.mkdtemp(prefix="deskflow-bench-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKFLOW_")}
    env.update(DESKFLOW_DATA_FILE=f"{tmp}/data.json", DESKFLOW_ROOT_TOKEN=ROOT,
               DESKFLOW_SECRETS_KEY_FILE=f"{tmp}/secrets.key", DESKFLOW_RATE_LIMIT="0",
               DESKFLOW_EMBEDDED_SERVER=engine, DESKFLOW_LOG_LEVEL="warning")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
                            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_answering(url, path="/readyz", proc=proc, timeout=60, what=f"serve ({engine})")
        ws = httpx.post(f"{url}/v1/workspaces", headers={"Authorization": f"Bearer {ROOT}"},
                        json={"name": "bench"}).json()
        admin = {"Authorization": f"Bearer {ws['admin_key']}"}
        httpx.post(f"{url}/v1/rules", headers=admin, json={
            "name": "tag billing", "enabled": True, "triggers": ["ticket.created"],
            "conditions": {"all": [{"field": "tags", "op": "includes", "value": "billing"}]},
            "actions": [{"type": "add_tags", "tags": ["routed"]}]})
        base = _processed(url)
        per_thread = events // threads

        def post(t: int) -> None:
            with httpx.Client(base_url=url, headers=admin, timeout=30) as c:
                for start in range(0, per_thread, batch):
                    body = {"events": [{"id": f"e{t}-{i}", "type": "ticket.created",
                                        "ticket": {"id": f"T-{t}-{i % 50}", "tags": ["billing"]}}
                                       for i in range(start, min(start + batch, per_thread))]}
                    c.post("/v1/events", json=body).raise_for_status()

        t0 = time.perf_counter()
        workers = [threading.Thread(target=post, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        total = per_thread * threads
        while _processed(url) - base < total:
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("the worker did not apply every event within 300 s")
            time.sleep(0.02)
        return total / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--events", type=int, default=600)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    figures: dict[str, list[float]] = {"none": [], "auto": []}
    for r in range(a.rounds):
        for engine in (("none", "auto") if r % 2 == 0 else ("auto", "none")):
            figures[engine].append(one_run(engine, a.events, a.batch, a.threads))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("| embedded store | rounds | events/s (median) | each round | × before |")
    print("|---|---:|---:|---|---:|")
    before = statistics.median(figures["none"])
    for engine, label in (("none", "before: fakeredis, snapshot on clean shutdown"),
                          ("auto", "after: managed redis-server, AOF everysec")):
        med = statistics.median(figures[engine])
        rounds = ", ".join(f"{x:.0f}" for x in figures[engine])
        print(f"| {label} | {a.rounds} | {med:.0f} | {rounds} | {med / before:.2f} |")


if __name__ == "__main__":
    main()
