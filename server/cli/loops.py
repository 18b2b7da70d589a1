"""The event loop the long-running commands (`serve`, `api`, `worker`) run on.

uvloop (libuv's loop, MagicStack) where it is installed -- a dependency on Linux and macOS -- else
asyncio's own; DESKFLOW_EVENT_LOOP=asyncio chooses asyncio's (=uvloop insists on uvloop). uvicorn
parses HTTP with httptools, also a dependency, where it is installed (its `http="auto"`).

Why: POST-to-applied latency of `serve` (issue 14) when the cores are shared. At 150 events/s
open loop on the 2-core machine at load 3-5 (other processes' test runs), the same tree's p50 /
p99 were 41-66 / 328-431 ms on asyncio's loop with h11 and 5-15 / 97-137 ms on uvloop with
httptools, at the same CPU an event (4.1-4.8 ms); either one alone did not help. On a quiet
machine the gain is not there: at 150/s, p50 3.6-6.7 ms against 3.8-4.0 and p99 9-38 against
12-28 (three rounds each, bench/RESULTS.md, "serve: the event loop and a stage trace").
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

__all__ = ["loop_name", "run"]

T = TypeVar("T")
CHOICES = ("auto", "uvloop", "asyncio")


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def loop_name() -> str:
    """"uvloop" or "asyncio", as DESKFLOW_EVENT_LOOP (default auto) and what is installed say."""
    wanted = os.environ.get("DESKFLOW_EVENT_LOOP", "auto").strip().lower() or "auto"
    if wanted not in CHOICES:
        raise click.UsageError(f"DESKFLOW_EVENT_LOOP must be one of {', '.join(CHOICES)}, "
                               f"not {wanted!r}.")
    if wanted == "uvloop" and not _has_uvloop():
        raise click.UsageError("DESKFLOW_EVENT_LOOP=uvloop, but uvloop is not installed "
                               "(pip install uvloop).")
    if wanted == "auto":
        return "uvloop" if _has_uvloop() else "asyncio"
    return wanted


# How long a thread that computes may keep the GIL while the event loop waits for it (CPython's
# default: 5 ms). The loop waits for the GIL each time it wakes while a thread computes -- a rule
# set's compile (seconds at the rule limits), a pass with regexes or business time -- and a
# request wakes it many times, so another workspace's compile cost a victim's request a multiple
# of 5 ms; at 1 ms the thread gave way five times as soon. At 1 ms, a compile of 1,000 rules of
# business-time conditions (2.5 s of Python, its thread holding the GIL 87% of the time, py-spy)
# still cost another workspace's requests p99 99-186 ms; at 0.2 ms, 6.5-9.3 ms (red team,
# session 18, tests/server/test_redteam18.py). A switch is only forced when a thread waits for
# the GIL, so an idle loop pays nothing: serve_bench's sustained rate 0.91x and 1.03x in two runs
# (noise, bench/RESULTS.md).
SWITCH_INTERVAL_S = 0.0002


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main) on the chosen loop (with the GIL's switch interval at SWITCH_INTERVAL_S)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    if loop_name() == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)
