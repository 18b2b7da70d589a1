"""Per-run limits: defaults from API.md "Script details", overridable per script within maxima.

`Limits()` is the default set; `Limits.for_script(timeout="10s")` applies a script's own setting
and refuses one above `MAXIMA` (API.md: a timeout over 30 s is a 422). The pool enforces every
field: wall time from the parent, CPU and memory with setrlimit in the worker, the rest by count.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

from .errors import LimitsError

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")

MIB = 1024 * 1024
_ceiling: Limits | None = None     # MAXIMA, once it exists (it is itself a Limits)


@dataclasses.dataclass(frozen=True)
class Limits:
    wall_s: float = 5.0                 # whole run, HTTP waits included; enforced by the parent
    cpu_s: float = 2.0                  # RLIMIT_CPU in the worker: whole seconds, so a run gets
                                        # between cpu_s and cpu_s + 1 s before SIGXCPU
    memory_bytes: int = 128 * MIB       # RLIMIT_AS above the worker's idle size
    http_calls: int = 10                # per run, redirects count as calls
    response_bytes: int = 1 * MIB       # per response body, streamed and cut
    output_bytes: int = 64 * 1024       # the returned updates, as compact JSON
    log_lines: int = 200
    log_line_bytes: int = 1024          # longer lines are cut (marked), not an error
    http_timeout_s: float = 10.0        # default per call; never beyond the run's remaining wall time

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if type(value) not in (int, float) or value <= 0:
                raise LimitsError(f"{field.name} must be a positive number, not {value!r}")
            ceiling = getattr(_ceiling, field.name) if _ceiling is not None else None
            if ceiling is not None and value > ceiling:
                raise LimitsError(f"{field.name} {value} is above the operator maximum {ceiling}")

    @classmethod
    def for_script(cls, timeout: str | float | None = None, **overrides: Any) -> Limits:  # checked in __post_init__
        """The limits for one script: `timeout` is API.md's `"5s"` string (wall time)."""
        if timeout is not None:
            overrides["wall_s"] = parse_seconds(timeout) if isinstance(timeout, str) else timeout
        return dataclasses.replace(DEFAULT_LIMITS, **overrides)

    def as_dict(self) -> dict[str, float]:
        return dict(self.wire)

    @functools.cached_property
    def wire(self) -> dict[str, Any]:
        """The dict sent to workers with every run; computed once per Limits (asdict is slow)."""
        return dataclasses.asdict(self)


def parse_seconds(text: str) -> float:
    """`"5s"`, `"1m30s"`, `"500ms"` -> seconds; LimitsError for anything else or zero."""
    m = _DURATION.match(text) if isinstance(text, str) and text else None
    if m is None:
        raise LimitsError(f"{text!r} is not a duration like \"5s\" or \"500ms\"")
    h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    seconds = h * 3600 + mi * 60 + s + ms / 1000
    if seconds <= 0:
        raise LimitsError(f"{text!r} must be more than zero")
    return seconds


# Operator maxima: a script may ask for less, or for more up to these (API.md: timeout <= 30s).
MAXIMA = Limits(wall_s=30.0, cpu_s=30.0, memory_bytes=512 * MIB, http_calls=50,
                response_bytes=8 * MIB, output_bytes=256 * 1024, log_lines=1000,
                log_line_bytes=4096, http_timeout_s=30.0)
_ceiling = MAXIMA
DEFAULT_LIMITS = Limits()
