"""The usage windows of GET /v1/rules (server/store/rule_usage.py): the settled hours' sums kept
per rule and moved on with the hour must answer what summing the whole hash answers, hour after
hour, whichever way the hours pass."""

from __future__ import annotations

import random
from typing import Any

import anyio
import fakeredis
import pytest
import redis.asyncio as aredis

from server.settings import Settings
from server.store import keys as K
from server.store import rule_usage
from server.store.connect import Store
from server.store.rule_usage import USAGE_WINDOWS, rule_stats

WS = "ws_usage"


def _oracle(stats: dict[str, str], now: int) -> dict[str, Any]:
    """The windows as the whole hash says them (the read of before: every bucket summed)."""
    def sums(prefix: str) -> dict[str, int]:
        hours = {int(k[2:]): int(v) for k, v in stats.items() if k.startswith(prefix)}
        return {w: sum(n for h, n in hours.items() if now - span < h <= now)
                for w, span in USAGE_WINDOWS.items()}
    checked = sums("c:") if any(k.startswith("c:") for k in stats) else None
    return {"fired": sums("h:"), "checked": checked, "last_fired_at": stats.get("last")}


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def kind(request: pytest.FixtureRequest) -> str:
    """The in-process store reads the fresh fields with a command a rule; Redis with one script."""
    return str(request.param)


def _store(kind: str, url: str | None) -> Store:
    if kind == "embedded":
        return Store(redis=fakeredis.FakeAsyncRedis(decode_responses=True), settings=Settings(), embedded=True)
    return Store(redis=aredis.Redis.from_url(str(url), decode_responses=True), settings=Settings(), embedded=False)


def test_kept_sums_answer_what_the_whole_hash_says_as_the_hours_pass(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_url") if kind == "redis" else None

    async def main() -> None:
        store = _store(kind, url)
        r, rnd = store.redis, random.Random(7)
        now = 500_000
        rules = [{"id": f"r{i}", "created_at": "2026-01-01T00:00:00Z"} for i in range(6)]
        for rule in rules[:5]:   # (r5: no counters at all)
            key = K.rule_stats(WS, rule["id"])
            await r.hset(key, mapping={f"h:{h}": rnd.randint(1, 5) for h in range(now - 800, now + 1)
                                       if rnd.random() < 0.3} | {"last": "2026-11-01T00:00:00Z"})
            if rule["id"] != "r0":   # (r0: never checked)
                await r.hset(key, mapping={f"c:{h}": rnd.randint(1, 9) for h in range(now - 800, now + 1)
                                           if rnd.random() < 0.2})
        steps = [0, 0, 1, 1, 2, 1, 5, 23, 1, 24, 25, 1, 3, 200, 1, 0, 1]
        for n, step in enumerate(steps):
            now += step
            for rule in rules[:4]:   # the worker writes the hour it is and the one before
                key = K.rule_stats(WS, rule["id"])
                await r.hincrby(key, f"h:{now - rnd.randint(0, 1)}", 2)
                if rnd.random() < 0.5:
                    await r.hincrby(key, f"c:{now}", 3)
            await r.incr(K.rule_fires_version(WS))   # (as each writer of the counters does)
            if n == 8:   # r1 deleted and made again: its kept sums are not its own any more
                await r.delete(K.rule_stats(WS, "r1"))
                await r.hset(K.rule_stats(WS, "r1"), f"h:{now - 5}", 1)
                await r.incr(K.rules_rev(WS))
                rules[1] = {**rules[1], "created_at": "2026-02-01T00:00:00Z"}
            got = await rule_stats(store, WS, rules, now)
            for rule in rules:
                whole = await r.hgetall(K.rule_stats(WS, rule["id"]))
                want = _oracle(whole, now)
                usage = got[rule["id"]]["usage"]
                assert (usage["fired"], usage["checked"], usage["last_fired_at"]) == (
                    want["fired"], want["checked"], want["last_fired_at"]), (n, rule["id"])
                assert got[rule["id"]]["fired_24h"] == want["fired"]["24h"]
        await store.redis.aclose()

    anyio.run(main)


def test_a_kept_rule_costs_its_fresh_fields_only(monkeypatch: Any) -> None:
    """Once kept, a rule's read asks for six fields, however many buckets its hash holds, and
    nothing at all while no counter of the workspace was written."""
    async def main() -> None:
        store = Store(redis=fakeredis.FakeAsyncRedis(decode_responses=True), settings=Settings(),
                      embedded=True)
        now = 500_000
        await store.redis.hset(K.rule_stats(WS, "busy"), mapping={f"h:{h}": 1 for h in range(now - 743, now + 1)})
        rule = [{"id": "busy", "created_at": None}]
        await rule_stats(store, WS, rule, now)
        asked: list[tuple[str, int]] = []
        real = store.redis.pipeline

        def counting(*a: Any, **kw: Any) -> Any:
            p = real(*a, **kw)
            for name in ("hgetall", "hmget"):
                orig = getattr(p, name)

                def wrap(*args: Any, _o: Any = orig, _n: str = name) -> Any:
                    asked.append((_n, len(args[1]) if _n == "hmget" else -1))
                    return _o(*args)
                setattr(p, name, wrap)
            return p

        monkeypatch.setattr(store.redis, "pipeline", counting)
        got = await rule_stats(store, WS, rule, now)   # nothing moved: the answer as it was
        assert asked == [] and got["busy"]["usage"]["fired"]["30d"] == 720
        await store.redis.hincrby(K.rule_stats(WS, "busy"), f"h:{now}", 1)   # a batch of fires
        await store.redis.incr(K.rule_fires_version(WS))
        got = await rule_stats(store, WS, rule, now)
        assert asked == [("hmget", 6)] and got["busy"]["usage"]["fired"]["30d"] == 721
        asked.clear()
        got = await rule_stats(store, WS, rule, now + 1)   # the next hour: moved on, not read whole
        assert [n for n, _ in asked] == ["hmget", "hmget"] and max(k for _, k in asked) <= 16
        assert got["busy"]["usage"]["fired"]["30d"] == 720   # (-1 left the window, +0 for now+1)

    anyio.run(main)


def test_the_kept_workspaces_are_bounded(monkeypatch: Any) -> None:
    async def main() -> None:
        store = Store(redis=fakeredis.FakeAsyncRedis(decode_responses=True), settings=Settings(),
                      embedded=True)
        monkeypatch.setattr(rule_usage._kept, "most", 3)   # (MAX_WORKSPACES, as the store keeps it)
        for i in range(10):
            await store.redis.hset(K.rule_stats(f"w{i}", "r"), "h:1", 1)
            await rule_stats(store, f"w{i}", [{"id": "r", "created_at": None}], 2)
        assert rule_usage._kept.keys(store) == ["w7", "w8", "w9"]

    anyio.run(main)


def test_every_writer_of_the_counters_moves_what_a_kept_answer_is_keyed_by() -> None:
    """A check batch and a run's rule error are answered at once, as fires are (the fires'
    batch: test_stats.py)."""
    from server.store.catalog import add_rule_checks

    async def main() -> None:
        store = Store(redis=fakeredis.FakeAsyncRedis(decode_responses=True), settings=Settings(),
                      embedded=True)
        rule = [{"id": "r", "created_at": None}]
        assert (await rule_stats(store, WS, rule, 500_000))["r"]["usage"]["checked"] is None
        await add_rule_checks(store, {(WS, "r", 500_000): 4})
        assert (await rule_stats(store, WS, rule, 500_000))["r"]["usage"]["checked"]["1h"] == 4

    anyio.run(main)
