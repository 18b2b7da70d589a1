"""Record a pass's script runs and HTTP calls, and replay them when the pass runs again.

Why: an event's pass is computed on a loaded snapshot and committed with a check-and-set
(store/tickets.py). When the check fails (a contact changed meanwhile) only the pure pass runs
again, on the fresh snapshot -- but a script run or an outbound request is a side effect on the
world outside the store, and must happen at most once per event. So the first pass records each
handler call (which handler, the action it was called for, what it returned or raised, and the
run-record entries it produced); a later pass of the same event gets the recorded result for the
same call, in order, without running it. Only a call no earlier pass made (the fresh snapshot took
another branch of the rules) runs for real.

A call is "the same" when the handler and the action (as the rule states it) are the same: the
ticket and vars passed along may differ between passes (that is why the pass runs again), and a
script that already ran with the earlier view is not run a second time with the later one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Recorder", "PassView"]


@dataclass
class _Call:
    key: tuple[str, bytes]
    result: Any = None
    error: BaseException | None = None
    scripts: list[dict[str, Any]] = field(default_factory=list)      # run-record script entries
    http_calls: list[dict[str, Any]] = field(default_factory=list)   # broker calls it made


@dataclass
class PassView:
    """One pass's handlers and what the pass's calls produced (recorded or replayed alike)."""

    handlers: dict[str, Callable[..., Any]]
    scripts: list[dict[str, Any]] = field(default_factory=list)
    http_calls: list[dict[str, Any]] = field(default_factory=list)
    replayed: int = 0
    ran: int = 0


def _key(name: str, action: Any) -> tuple[str, bytes]:
    try:
        return name, orjson.dumps(action, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return name, repr(action).encode()


class Recorder:
    """Wraps an event's real handlers. `real` are the handlers (run_script, http_request); the
    lists `scripts` and `calls` are those the real handlers append their run-record entries to.
    Not thread-safe: one pass of an event runs at a time."""

    def __init__(self, real: dict[str, Callable[..., Any]] | None,
                 scripts: list[dict[str, Any]] | None = None,
                 calls: list[dict[str, Any]] | None = None, *, threaded: bool = False) -> None:
        self.threaded = threaded  # whether passes must run off the loop (the handlers wait on it)
        self._real = dict(real or {})
        self._scripts = scripts if scripts is not None else []
        self._calls = calls if calls is not None else []
        self._tape: list[_Call] = []

    @property
    def calls_made(self) -> int:
        """How many handler calls ran for real (over every pass)."""
        return len(self._tape)

    def start_pass(self) -> PassView:
        used: set[int] = set()
        view = PassView(handlers={})

        def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
            def handler(action: Any, *args: Any) -> Any:
                key = _key(name, action)
                for i, call in enumerate(self._tape):
                    if i not in used and call.key == key:
                        used.add(i)
                        view.replayed += 1
                        return self._play(call, view)
                call = _Call(key)
                s0, c0 = len(self._scripts), len(self._calls)
                try:
                    call.result = real(action, *args)
                except Exception as exc:  # the engine records it; replay raises it again
                    call.error = exc
                call.scripts = list(self._scripts[s0:])
                call.http_calls = list(self._calls[c0:])
                self._tape.append(call)
                used.add(len(self._tape) - 1)
                view.ran += 1
                return self._play(call, view)
            return handler

        view.handlers = {name: wrap(name, fn) for name, fn in self._real.items()}
        return view

    @staticmethod
    def _play(call: _Call, view: PassView) -> Any:
        view.scripts.extend(call.scripts)
        view.http_calls.extend(call.http_calls)
        if call.error is not None:
            raise call.error
        return copy.deepcopy(call.result)  # the engine's copy, never the tape's
