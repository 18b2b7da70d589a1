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
        got = await asyncio.gather(*(threads.run(fn, batch="ws_a") for fn in fns))
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

        slow_run = asyncio.ensure_future(threads.run(slow, batch="ws_slow"))
        behind = asyncio.ensure_future(threads.run(lambda: "same ws", batch="ws_slow"))
        quick = await asyncio.gather(*(threads.run(lambda: "quick", batch="ws_quick")
                                       for _ in range(3)),
                                     threads.run(lambda: "own thread"))
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

        got = await asyncio.gather(threads.run(boom, batch="w"), threads.run(lambda: 2, batch="w"),
                                   return_exceptions=True)
        assert isinstance(got[0], ValueError) and got[1] == 2
    finally:
        threads.shutdown()
