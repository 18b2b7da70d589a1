"""What a master's kill -9 under load loses, without and with DESKFLOW_REDIS_WAIT_REPLICAS=1.

    python bench/cluster_loss.py                 # 3 runs per mode, 60 tickets x 15 events each
    python bench/cluster_loss.py --runs 5 --tickets 100 --per-ticket 20

Each run is tests/cluster/test_cluster_scale.py's kill scenario on a fresh local cluster (3 masters
+ 3 replicas, `--cluster-node-timeout 1000`): 2 `deskflow api` + 3 `deskflow worker` processes, a
load of one-after-the-other events per ticket (503s retried with the same id), and once 30% was
acknowledged, kill -9 of a master holding partition streams (not the seed node); its replica is
promoted and the dead node restarted as a replica. Afterwards every acknowledged (202) event is
looked up in its ticket's run records: lost (never applied), applied twice, out of order. The
modes alternate run by run, so drift hits both; loss is a count of acknowledged events, and its
rate is per acknowledged event.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE.parent / "tests" / "server"),
                str(HERE.parent / "tests" / "cluster")]

from cluster_nodes import LocalCluster  # noqa: E402
from tally import tally  # noqa: E402
from test_cluster_scale import ENV, WAIT_ENV, _under_load, _victim  # noqa: E402


def one_run(env: dict[str, str], tickets: int, per_ticket: int) -> dict[str, object]:
    with LocalCluster() as cluster:
        seed = int(cluster.url.rsplit(":", 1)[1].split("/")[0])
        slot = _victim(cluster, seed)

        def kill() -> dict[str, float]:
            victim = cluster.kill_master_of(slot)
            cluster.restart(victim)
            cluster.wait_replicated()
            return {"port": victim.port}

        svc, key, load, info = _under_load(cluster, tickets, per_ticket, kill, env=env)
        try:
            result = tally(svc.api_urls[0], key, load.acked)
        finally:
            svc.stop()
    return {"acked": result.acked, "applied": result.applied, "lost": len(result.lost),
            "duplicated": len(result.duplicated), "out_of_order": len(result.out_of_order),
            "unexpected": len(result.unexpected), "503s": len(load.unavailable),
            "killed": bool(info.get("result")), "seconds": round(float(info["seconds"]), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tickets", type=int, default=60)
    ap.add_argument("--per-ticket", type=int, default=15)
    args = ap.parse_args()
    modes = {"no wait": ENV, "WAIT 1": WAIT_ENV}
    rows: list[tuple[str, int, dict[str, object]]] = []
    for r in range(args.runs):
        for mode, env in modes.items():
            row = one_run(env, args.tickets, args.per_ticket)
            rows.append((mode, r, row))
            print(mode, r, row, flush=True)
    print(f"\nkill -9 of a master under load, {args.tickets} tickets x {args.per_ticket} events, "
          f"{args.runs} runs per mode (alternated)\n")
    print("| mode | run | acknowledged | applied | lost | applied twice | tickets out of order "
          "| 503s retried | load s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, r, row in rows:
        print(f"| {mode} | {r + 1} | {row['acked']} | {row['applied']} | {row['lost']} | "
              f"{row['duplicated']} | {row['out_of_order']} | {row['503s']} | {row['seconds']} |")
    for mode in modes:
        mine = [row for m, _, row in rows if m == mode]
        lost = sum(int(str(row["lost"])) for row in mine)
        acked = sum(int(str(row["acked"])) for row in mine)
        print(f"\n{mode}: {lost} of {acked} acknowledged events lost over {len(mine)} runs "
              f"({lost / max(acked, 1):.2%})")


if __name__ == "__main__":
    main()
