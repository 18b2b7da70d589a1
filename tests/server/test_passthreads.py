"""Passes handed to threads (server/passthreads.py): a workspace's computing passes asked for in
one turn of the loop share a thread, another workspace's never wait for them, and a pass that
waits on scripts or HTTP has a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from server.passthreads import BATCH, PassThreads

pytestmark = pytest.mark.anyio


async def test_one_workspaces_passes_of_one_turn_share_a_thread() -> None:
    """BATCH + 1 passes asked for at once: the first BATCH run one after another in one thread,
    the last in another, at the same time (the first pass waits for it)."""
    threads = PassThreads(16)
    last_ran = threading.Event()
    try:
        def first() -> tuple[int, bool]:
            return threading.get_ident(), last_ran.wait(30)

        def last() -> tuple[int, bool]:
            last_ran.set()
            return threading.get_ident(), True

        fns = [first, *[lambda: (threading.get_ident(), True)] * (BATCH - 1), last]
        got = await asyncio.gather(*(threads.run(fn, "ws_a", computes=True) for fn in fns))
        assert all(ok for _, ok in got)
        assert len({ident for ident, _ in got[:BATCH]}) == 1 and got[-1][0] != got[0][0]
    finally:
        last_ran.set()
        threads.shutdown()


async def test_another_workspace_does_not_wait_for_a_slow_pass() -> None:
    """ws_slow's pass holds its thread until ws_quick's passes are done: were they in its batch,
    or behind it, they could not be."""
    threads = PassThreads(16)
    release = threading.Event()
    try:
        def slow() -> str:
            assert release.wait(30), "the quick workspace's passes never ran"
            return "slow"

        slow_run = asyncio.ensure_future(threads.run(slow, "ws_slow", computes=True))
        behind = asyncio.ensure_future(threads.run(lambda: "same ws", "ws_slow", computes=True))
        quick = await asyncio.gather(*(threads.run(lambda: "quick", "ws_quick", computes=True)
                                       for _ in range(3)),
                                     threads.run(lambda: "own thread", "ws_quick"))
        assert quick == ["quick"] * 3 + ["own thread"]
        assert not behind.done()   # its workspace's own batch: after the slow pass
        release.set()
        assert await slow_run == "slow" and await behind == "same ws"
    finally:
        release.set()
        threads.shutdown()


async def test_a_pass_that_raises_gets_its_error_and_the_batch_goes_on() -> None:
    threads = PassThreads(4)
    try:
        def boom() -> Any:
            raise ValueError("bug")

        got = await asyncio.gather(threads.run(boom, "w", computes=True), threads.run(lambda: 2, "w", computes=True),
                                   return_exceptions=True)
        assert isinstance(got[0], ValueError) and got[1] == 2
    finally:
        threads.shutdown()


async def test_a_workspace_holds_at_most_its_share_and_waits_in_order_holding_none() -> None:
    """Passes of one workspace past its share wait on the loop, not in the pool's queue, and
    start in the order asked as its threads come free; another workspace still gets a thread."""
    threads = PassThreads(8, share=2, extra=0)
    gates = [threading.Event() for _ in range(4)]
    order: list[int] = []
    try:
        def held(i: int) -> Any:
            def fn() -> int:
                order.append(i)
                assert gates[i].wait(30)
                return i
            return fn

        runs = [asyncio.ensure_future(threads.run(held(i), "ws_a")) for i in range(4)]
        await asyncio.sleep(0.05)
        assert threads.held("ws_a") == 2 and threads.busy == 2 and order == [0, 1]
        assert await threads.run(lambda: "b", "ws_b") == "b"
        gates[1].set()
        assert await runs[1] == 1
        await asyncio.sleep(0.05)
        assert order == [0, 1, 2] and threads.held("ws_a") == 2
        for g in gates:
            g.set()
        assert await asyncio.gather(*runs) == [0, 1, 2, 3]
        assert threads.held("ws_a") == 0 and threads.busy == 0
    finally:
        for g in gates:
            g.set()
        threads.shutdown()


async def test_with_every_pool_thread_held_a_workspace_holding_none_gets_an_extra_one() -> None:
    """Two workspaces hold the whole pool (their share is the pool's half): a third, holding
    none, runs on an extra thread at once; a fourth waits once the extras are used up."""
    threads = PassThreads(4, share=2, extra=1)
    release = threading.Event()
    try:
        def wait() -> str:
            assert release.wait(30)
            return "slow"

        slow = [asyncio.ensure_future(threads.run(wait, ws)) for ws in ("a1", "a2") for _ in range(3)]
        await asyncio.sleep(0.05)
        assert threads.busy == 4 and threads.held("a1") == threads.held("a2") == 2
        assert await asyncio.wait_for(threads.run(lambda: "third", "victim"), 5) == "third"
        assert threads.extra == 0   # its extra thread ended with its pass
        hold = asyncio.ensure_future(threads.run(wait, "victim"))
        await asyncio.sleep(0.05)
        assert threads.extra == 1
        fourth = asyncio.ensure_future(threads.run(lambda: "fourth", "late"))
        await asyncio.sleep(0.1)
        assert not fourth.done()   # no extra left: it waits in the pool's queue
        release.set()
        assert await fourth == "fourth" and await hold == "slow"
        assert await asyncio.gather(*slow) == ["slow"] * 6
        assert threads.busy == threads.extra == 0
    finally:
        release.set()
        threads.shutdown()
