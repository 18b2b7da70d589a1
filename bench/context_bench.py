"""ctx.history / ctx.customer benchmark (issue 19): the worker's apply path, events/s, with and
without history-using scripts, in one run, rounds interleaved.

    python bench/context_bench.py                 # embedded store, 4 rounds of 300 events each
    python bench/context_bench.py --redis         # real Redis (DESKFLOW_CONTEXT_BENCH_REDIS_URL,
                                                  #  default redis://127.0.0.1:6379/11; only this
                                                  #  run's workspaces' keys are deleted after)

Workloads, each a fresh workspace, the same events (message.received over 60 tickets of 20
contacts, 10 events per ticket in order, tickets applied concurrently) through
server/apply.Applier.handle -- load, pure pass, commit, timers -- as the worker runs it:

  rules-off   a rule-only rule set with issue 19's commit writes switched off (the peer: what the
              apply path cost before this issue)
  rules       the same rules with them (history entry, count deltas, indexes in the same EVAL)
  script      + a rule running a script that names neither ctx.history nor ctx.customer
  history     + the same rule running a script that reads ctx.history and ctx.customer

Ratios: rules / rules-off is what the feature costs a pass that uses none of it (extra commands
in the commit, one HGETALL in the load pipeline: no extra round trip); history / script is what
loading the history and customer summary costs a script pass that uses them.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.apply import Applier  # noqa: E402
from server.scripting import Scripting  # noqa: E402
from server.settings import Settings  # noqa: E402
from server.store import catalog, scripts as script_store, tickets  # noqa: E402
from server.store import keys as K  # noqa: E402
from server.store.connect import close_store, open_store  # noqa: E402

URL = os.environ.get("DESKFLOW_CONTEXT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
TICKETS, CONTACTS, PER_TICKET = 60, 20, 5

PLAIN = "def run(event, ticket, ctx):\n    return {'custom': {'seen': len(event['message']['body'])}}\n"
USES = ("def run(event, ticket, ctx):\n"
        "    waiting = sum(1 for h in ctx.history if h['message'] and h['message']['author'] == 'customer')\n"
        "    c = ctx.customer\n"
        "    return {'custom': {'seen': waiting + (c['open_tickets'] if c else 0)}}\n")
RULES = [{"name": f"r{i}", "triggers": ["message.received"],
          "conditions": {"all": [{"field": "message.body", "op": "contains", "value": f"w{i}"}]},
          "actions": [{"type": "add_tags", "tags": [f"t{i}"]}]} for i in range(20)]
RULES.append({"name": "busy", "triggers": ["message.received"],
              "conditions": {"all": [{"field": "contact.open_tickets", "op": "gte", "value": 3}]},
              "actions": [{"type": "add_tags", "tags": ["busy"]}]})


def _events(tag: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for t in range(TICKETS):
        tid = f"T-{t}"
        out[tid] = [{"id": f"{tag}-{t}-{n}", "type": "message.received",
                     "occurred_at": f"2026-11-23T08:{n:02d}:00Z",
                     "ticket": {"id": tid, "status": "open", "subject": f"s{t}",
                                "contact": {"id": f"C-{t % CONTACTS}"}},
                     "message": {"author": "customer", "body": f"hello w{n % 20} " * 20,
                                 "channel": "email"}} for n in range(PER_TICKET)]
    return out


async def _workspace(store: Any, kind: str) -> str:
    ws, _ = await catalog.create_workspace(store, f"bench-{kind}-{secrets.token_hex(3)}")
    wid = ws["id"]
    rules = list(RULES)
    if kind in ("script", "history"):
        await script_store.add_version(store, wid, "s", PLAIN if kind == "script" else USES, None,
                                       "bench")
        rules.append({"name": "s", "triggers": ["message.received"],
                      "actions": [{"type": "run_script", "script": "s"}]})
    for i, rule in enumerate(rules):
        await catalog.put_rule(store, wid, {**rule, "id": f"rule_{i}", "enabled": True,
                                            "position": i, "revision": 1})
    return wid


async def _run(store: Any, scripting: Scripting, kind: str) -> tuple[float, str]:
    wid = await _workspace(store, kind)
    applier = Applier(store=store, handlers=None, scripting=scripting,
                      clock=lambda: datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    by_ticket = _events(kind)
    original = tickets.context_writes
    if kind == "rules-off":
        tickets.context_writes = lambda *a: []   # type: ignore[assignment]

    async def one_ticket(events: list[dict[str, Any]]) -> None:
        for e in events:
            await applier.handle(0, f"0-{e['id']}", {"w": wid, "e": orjson.dumps(e).decode(),
                                                     "k": e["id"]})
    try:
        started = time.perf_counter()
        await asyncio.gather(*(one_ticket(evs) for evs in by_ticket.values()))
        took = time.perf_counter() - started
    finally:
        tickets.context_writes = original   # type: ignore[assignment]
        applier.close()
    return TICKETS * PER_TICKET / took, wid


async def main(args: argparse.Namespace) -> None:
    settings = Settings(redis_url=URL if args.redis else None, data_file=None, script_workers=2)
    store = await open_store(settings)
    scripting = Scripting(store, settings)
    kinds = ("rules-off", "rules", "script", "history")
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    made: list[str] = []
    try:
        await _run(store, scripting, "history")   # warm: sandbox workers, compile caches
        for r in range(args.rounds):
            for kind in (kinds if r % 2 == 0 else tuple(reversed(kinds))):
                rate, wid = await _run(store, scripting, kind)
                rates[kind].append(rate)
                made.append(wid)
    finally:
        await scripting.aclose()
        if args.redis:
            for wid in made:
                async for key in store.redis.scan_iter(match=K.ws_meta(wid).rsplit(":", 1)[0] + ":*"):
                    await store.redis.delete(key)
        await close_store(store)
    med = {k: statistics.median(v) for k, v in rates.items()}
    store_name = "Redis" if args.redis else "embedded"
    print(f"context_bench ({store_name}, {TICKETS * PER_TICKET} events per round, "
          f"{args.rounds} rounds interleaved; median events/s)")
    print("| workload | events/s | ratio |")
    print("| --- | --- | --- |")
    print(f"| rules-off (peer) | {med['rules-off']:.0f} | 1.00 |")
    print(f"| rules | {med['rules']:.0f} | {med['rules'] / med['rules-off']:.2f} of rules-off |")
    print(f"| script | {med['script']:.0f} | 1.00 |")
    print(f"| history | {med['history']:.0f} | {med['history'] / med['script']:.2f} of script |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--rounds", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
